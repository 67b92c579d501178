//! Min/max-preserving downsampling of metric series, so that a chart of a 1M-point curve
//! stays fast while every spike stays visible.

/// The default and largest number of points a series endpoint returns.
pub const DEFAULT_MAX_POINTS: usize = 2000;
pub const LIMIT_MAX_POINTS: usize = 100_000;

/// Reduces `(step, value)` points, sorted by step, to at most `max_points` (at least 2).
///
/// The points are cut into `max_points / 2` buckets of consecutive points, and each bucket
/// keeps its minimum and its maximum, in step order. So the global minimum and maximum, and
/// every bucket's extremes, survive; a series already short enough is returned unchanged.
pub fn downsample(steps: &[i64], values: &[f64], max_points: usize) -> (Vec<i64>, Vec<f64>) {
    let n = steps.len().min(values.len());
    let max_points = max_points.max(2);
    if n <= max_points {
        return (steps[..n].to_vec(), values[..n].to_vec());
    }
    let n_buckets = max_points / 2;
    let mut out_steps = Vec::with_capacity(max_points);
    let mut out_values = Vec::with_capacity(max_points);
    for b in 0..n_buckets {
        let start = b * n / n_buckets;
        let end = (b + 1) * n / n_buckets;
        if start >= end {
            continue;
        }
        let (mut lo, mut hi) = (start, start);
        for i in start..end {
            if values[i] < values[lo] {
                lo = i;
            }
            if values[i] > values[hi] {
                hi = i;
            }
        }
        let (first, second) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        out_steps.push(steps[first]);
        out_values.push(values[first]);
        if second != first {
            out_steps.push(steps[second]);
            out_values.push(values[second]);
        }
    }
    (out_steps, out_values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(n: usize) -> (Vec<i64>, Vec<f64>) {
        let steps: Vec<i64> = (0..n as i64).collect();
        let values = steps
            .iter()
            .map(|&s| ((s as f64) * 0.37).sin() / (1.0 + s as f64 * 1e-3))
            .collect();
        (steps, values)
    }

    #[test]
    fn short_series_is_unchanged() {
        let (s, v) = curve(10);
        assert_eq!(downsample(&s, &v, 2000), (s, v));
    }

    #[test]
    fn long_series_is_bounded_sorted_and_keeps_extremes() {
        for (n, max_points) in [(1_000_000, 2000), (20_001, 2000), (5_000, 7), (30, 4)] {
            let (mut s, mut v) = curve(n);
            // A single spike in the middle must survive.
            v[n / 2] = 50.0;
            v[n / 3] = -50.0;
            s[0] = 0;
            let (ds, dv) = downsample(&s, &v, max_points);
            assert!(ds.len() <= max_points, "{n}: {} > {max_points}", ds.len());
            assert_eq!(ds.len(), dv.len());
            assert!(
                ds.windows(2).all(|w| w[0] < w[1]),
                "{n}: steps not increasing"
            );
            assert!(
                dv.contains(&50.0) && dv.contains(&-50.0),
                "{n}: lost an extreme"
            );
            for (step, value) in ds.iter().zip(&dv) {
                assert_eq!(v[*step as usize], *value, "points are real points");
            }
        }
    }

    #[test]
    fn every_bucket_keeps_its_min_and_max() {
        let steps: Vec<i64> = (0..8).collect();
        let values = [3.0, 1.0, 2.0, 9.0, 5.0, 4.0, 7.0, 6.0];
        let (ds, dv) = downsample(&steps, &values, 4);
        assert_eq!(ds, [1, 3, 5, 6]);
        assert_eq!(dv, [1.0, 9.0, 4.0, 7.0]);
    }
}
