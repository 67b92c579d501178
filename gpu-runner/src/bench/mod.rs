//! `gpu-runner bench`: throughput, MFU and peak memory of the pipeline's GPU workloads, on
//! random-weight models of the real shapes made on the device.
//!
//! Brief overview: each workload module ([`teacher`], [`student`]) returns [`BenchRow`]s;
//! [`render_table`] prints them in one table.
//! FLOPs count only the work on real (unpadded) tokens, so padding lowers MFU; MFU is relative to
//! [`PEAK_BF16_FLOPS`], the bf16 matmul rate measured on the lent H100 (the PyTorch reference
//! benchmark uses the same figure).

pub mod student;
pub mod teacher;
pub mod triplets;

use serde::Serialize;

/// Dense bf16 matmul FLOP/s used as the MFU denominator (measured ~790 TFLOP/s on the H100;
/// the datasheet says 989).
pub const PEAK_BF16_FLOPS: f64 = 790e12;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// Workload, e.g. `teacher`.
    pub workload: String,
    /// Variant, e.g. `query_prefix_reuse`.
    pub mode: String,
    /// Items (pairs) per batch.
    pub batch: usize,
    /// Items processed in the timed run.
    pub items: usize,
    /// Wall seconds of the timed run.
    pub seconds: f64,
    /// Items per second.
    pub items_per_s: f64,
    /// Model FLOPs of the timed run over wall time, divided by [`PEAK_BF16_FLOPS`].
    pub mfu: f64,
    /// Peak GPU memory in use during the run (weights included), in GiB; `None` off CUDA.
    pub peak_gib: Option<f64>,
}

/// A fixed-width text table of `rows`.
pub fn render_table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<13} {:<22} {:>6} {:>7} {:>9} {:>11} {:>6} {:>9}\n",
        "workload", "mode", "batch", "items", "seconds", "items/s", "MFU", "peak GiB"
    );
    for r in rows {
        let peak = r
            .peak_gib
            .map_or_else(|| "-".to_string(), |g| format!("{g:.2}"));
        out.push_str(&format!(
            "{:<13} {:<22} {:>6} {:>7} {:>9.3} {:>11.1} {:>5.1}% {:>9}\n",
            r.workload,
            r.mode,
            r.batch,
            r.items,
            r.seconds,
            r.items_per_s,
            100.0 * r.mfu,
            peak
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_a_header_and_one_line_per_row() {
        let row = BenchRow {
            workload: "teacher".into(),
            mode: "no_reuse".into(),
            batch: 64,
            items: 640,
            seconds: 2.0,
            items_per_s: 320.0,
            mfu: 0.5,
            peak_gib: None,
        };
        let table = render_table(&[row.clone(), row]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("items/s"));
        assert!(lines[1].contains("320.0") && lines[1].contains("50.0%"));
    }
}
