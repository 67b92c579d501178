//! `gpu-runner bench`: the pipeline's own stages, measured, on generated inputs of the real
//! shapes, so a number in the table is a number a launched run gets.
//!
//! [`inputs`] writes a StackOverflow-shaped data set ([`crate::demo::DemoOptions::stackoverflow_shaped`])
//! and random-weight teacher and student folders of the chosen presets; [`run`] runs the whole
//! pipeline on them through [`crate::pipeline::run_through_with`] (what `gpu-runner work` calls
//! for every stage job) and turns each stage's [`StageStats`] into a [`BenchRow`] with the
//! reference workload's projected time. `bench/gpu_e2e.sh` measures the same stages through the
//! server instead and renders the server's stage list with [`rows_from_stages`].

pub mod triplets;

use std::path::{Path, PathBuf};

use candle_core::Device;
use distillery_api::{RunConfig, Stage, StageKind, StageStats};
use serde::Serialize;

use crate::demo::{write_demo_data, DemoOptions};
use crate::observe::StageContext;
use crate::pipeline::{self, Outcome};
use crate::{Error, Result};

/// Items of each stage in the reference workload: StackOverflowDupQuestions scored by
/// Qwen3-Reranker-8B (683k pairs, 89k of them the test split's), 623k triplets for one epoch,
/// 2,967 test queries.
pub fn reference_items(kind: StageKind) -> u64 {
    match kind {
        StageKind::ScoreTrain => 683_000 - 89_000,
        StageKind::ScoreTest => 89_000,
        StageKind::TripletsTrain | StageKind::Train => 623_000,
        StageKind::EvalBefore | StageKind::EvalAfter => 89_000,
        StageKind::TripletsTest | StageKind::EvalTeacher | StageKind::Compare => 2_967,
    }
}

/// One measured stage.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub stage: StageKind,
    pub stats: StageStats,
    /// Seconds the reference workload's items would take at this stage's rate, plus its setup
    /// (model loading) once.
    pub projected_s: f64,
}

impl BenchRow {
    /// The row of a stage that measured `stats`.
    pub fn new(stage: StageKind, stats: StageStats) -> BenchRow {
        let projected_s = stats.projected(reference_items(stage));
        BenchRow {
            stage,
            stats,
            projected_s,
        }
    }
}

/// A fixed-width table of `rows` and the projected total.
pub fn render_table(rows: &[BenchRow]) -> String {
    let mut out = format!(
        "{:<15} {:>9} {:>8} {:>8} {:<9} {:>10} {:>7} {:>8} {:>11}\n",
        "stage",
        "seconds",
        "setup s",
        "items",
        "unit",
        "items/s",
        "cached",
        "peak GiB",
        "projected s"
    );
    for r in rows {
        let s = &r.stats;
        let cached = s.from_cache.map_or_else(|| "-".into(), |n| n.to_string());
        let peak = s.peak_gib.map_or_else(|| "-".into(), |g| format!("{g:.1}"));
        out.push_str(&format!(
            "{:<15} {:>9.1} {:>8.1} {:>8} {:<9} {:>10.1} {:>7} {:>8} {:>11.0}\n",
            r.stage.as_str(),
            s.seconds,
            s.setup_seconds,
            s.items,
            s.unit,
            s.per_s(),
            cached,
            peak,
            r.projected_s
        ));
    }
    let total: f64 = rows.iter().map(|r| r.projected_s).sum();
    out.push_str(&format!(
        "reference workload (683k teacher pairs, 623k triplets x 1 epoch, 2 x 89k eval pairs) \
         projected: {total:.0} s = {:.1} min\n",
        total / 60.0
    ));
    out
}

/// The rows of a server's stage list (`GET /api/v1/runs/{id}/stages`): the stages that
/// reported stats, in pipeline order.
pub fn rows_from_stages(stages: &[Stage]) -> Vec<BenchRow> {
    let mut rows: Vec<BenchRow> = stages
        .iter()
        .filter_map(|s| Some(BenchRow::new(s.kind, s.stats.clone()?)))
        .collect();
    rows.sort_by_key(|r| StageKind::ALL.iter().position(|&k| k == r.stage));
    rows
}

/// What to generate and run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub device: Device,
    /// Inputs (kept, and reused when present) and the run directory.
    pub workdir: PathBuf,
    pub teacher: crate::teacher::new_model::Preset,
    /// The tokenizer the teacher folder gets (the real Qwen3 one for real shapes).
    pub teacher_tokenizer: PathBuf,
    pub student: crate::student::new_model::Preset,
    pub train_queries: usize,
    pub test_queries: usize,
    /// Run-config fields set on top of the reference defaults (`micro_batch`, `eval_dtype`).
    pub config: RunConfig,
}

/// The generated inputs under `opts.workdir`, written unless already there: `data/`,
/// `teacher/`, `student/`. Returns the run configuration over them (`opts.config` with the
/// paths filled in).
pub fn inputs(opts: &BenchOptions) -> Result<RunConfig> {
    let w = &opts.workdir;
    let data = w.join(format!(
        "data-so-{}-{}",
        opts.train_queries, opts.test_queries
    ));
    if !data.join("test.jsonl").is_file() {
        let shape = DemoOptions::stackoverflow_shaped(opts.train_queries, opts.test_queries);
        write_demo_data(&data, &shape)?;
    }
    let teacher = w.join(format!("teacher-{}", opts.teacher));
    if !teacher.join("config.json").is_file() {
        tracing::info!("writing the random-weight {} teacher", opts.teacher);
        crate::teacher::new_model::write(opts.teacher, &opts.teacher_tokenizer, &teacher, 0)?;
    }
    let student = w.join(format!("student-{:?}", opts.student));
    if !student.join("config.json").is_file() {
        tracing::info!("writing the random-weight {:?} student", opts.student);
        crate::student::new_model::write_new_model(opts.student, &student, None, 0)?;
    }
    let path = |p: PathBuf| p.display().to_string();
    Ok(RunConfig {
        teacher_kind: "qwen3-reranker".into(),
        teacher: path(teacher),
        student: path(student),
        train_data: path(data.join("train.jsonl")),
        test_data: path(data.join("test.jsonl")),
        ..opts.config.clone()
    })
}

/// Runs every stage of `cfg` into a fresh run directory under `workdir` and returns a row per
/// stage, from the stats the stages recorded in the run's manifest.
pub fn run(cfg: &RunConfig, workdir: &Path, device: &Device) -> Result<Vec<BenchRow>> {
    let rundir = workdir.join(format!(
        "run-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    match pipeline::run_through_with(cfg, &rundir, device, None, StageContext::silent())? {
        Outcome::Done(_) => {}
        Outcome::Stopped(rec) => {
            return Err(Error::Other(format!(
                "the run stopped after {:?}",
                rec.stage
            )))
        }
    }
    let path = rundir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: pipeline::manifest::Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    Ok(manifest
        .stages
        .into_iter()
        .filter_map(|r| Some(BenchRow::new(r.stage, r.stats?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(seconds: f64, items: u64) -> StageStats {
        StageStats {
            seconds,
            items,
            unit: "pairs".into(),
            from_cache: Some(0),
            peak_gib: None,
            setup_seconds: 1.0,
            jobs: 1,
        }
    }

    #[test]
    fn rows_project_the_reference_workload() {
        let rows = vec![
            BenchRow::new(StageKind::ScoreTest, stats(11.0, 8_900)),
            BenchRow::new(StageKind::Train, stats(7.23, 6_230)),
        ];
        // 890 pairs/s after 1 s of loading: 89k pairs in 100 s, plus the loading once.
        assert!((rows[0].projected_s - 101.0).abs() < 1e-9);
        assert!((rows[1].projected_s - 624.0).abs() < 1e-9);
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[1].starts_with("score_test") && lines[1].contains("890.0"));
        assert!(lines[3].contains("725 s = 12.1 min"), "{}", lines[3]);
    }
}
