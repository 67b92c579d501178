//! How a running stage tells its caller what it does (progress, metric points, checkpoints) and
//! learns that it should stop: the seam between the stages and the worker that streams them.
//!
//! The CLI passes [`Silent`]; `gpu-runner work` passes an observer that reports to the server.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;

/// Receives what a stage reports while it runs. Every method has a do-nothing default.
pub trait Observer: Sync {
    /// `done` of `total` units (`updates`, `pairs`) are finished.
    fn progress(&self, _done: u64, _total: u64, _unit: &str) {}
    /// One point of a metric series (`loss`, `lr`, `grad_norm` per optimizer update).
    fn metric(&self, _name: &str, _step: u64, _value: f64) {}
    /// A complete checkpoint of update `step` was written to `dir`. Returns whether it is
    /// acknowledged, i.e. whoever takes the stage over resumes from it (always, without a
    /// server): older checkpoints than the last acknowledged one may then be pruned.
    fn checkpoint(&self, _step: u64, _dir: &Path) -> bool {
        true
    }
    /// Whether the stage should stop at its next safe point (cancelled, or the runner stops).
    fn should_stop(&self) -> bool {
        false
    }
}

/// An observer that ignores everything and never stops the stage.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// What a stage run needs beyond its configuration: who observes it and how it checkpoints.
#[derive(Clone, Copy)]
pub struct StageContext<'a> {
    pub observer: &'a dyn Observer,
    /// Checkpoint the training every this many updates.
    pub checkpoint_every: Option<usize>,
    /// Resume the training only from a checkpoint at or before this update (the last one a
    /// server acknowledged; 0 starts afresh); `None` resumes from the latest one on disk.
    pub resume_max_step: Option<usize>,
    /// Where the shards of a sharded teacher scoring come from; without one, a stage that
    /// needs the scores computes them here.
    pub shards: Option<&'a dyn crate::pipeline::shards::ShardSource>,
    /// The runner's cross-run teacher-score cache (a directory), if any.
    pub score_cache: Option<&'a std::path::Path>,
}

impl StageContext<'static> {
    /// No observer, no periodic checkpoints, resume from the latest checkpoint, no shard
    /// source.
    pub fn silent() -> Self {
        StageContext {
            observer: &Silent,
            checkpoint_every: None,
            resume_max_step: None,
            shards: None,
            score_cache: None,
        }
    }
}

/// Runs `work` with a hidden progress bar of `total` units and forwards the bar's position to
/// `observer` twice a second while it runs, and once at the end.
pub fn with_bar<T>(
    observer: &dyn Observer,
    total: u64,
    unit: &str,
    work: impl FnOnce(&ProgressBar) -> T,
) -> T {
    let bar = ProgressBar::hidden();
    bar.set_length(total);
    let finished = AtomicBool::new(false);
    let out = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            while !finished.load(Ordering::Relaxed) {
                std::thread::park_timeout(Duration::from_millis(500));
                observer.progress(bar.position().min(total), total, unit);
            }
        });
        let out = work(&bar);
        finished.store(true, Ordering::Relaxed);
        poller.thread().unpark();
        out
    });
    observer.progress(bar.position().min(total), total, unit);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<(u64, u64)>>);

    impl Observer for Record {
        fn progress(&self, done: u64, total: u64, _unit: &str) {
            self.0.lock().unwrap().push((done, total));
        }
    }

    #[test]
    fn with_bar_reports_the_final_position() {
        let record = Record::default();
        let n = with_bar(&record, 10, "pairs", |bar| {
            bar.inc(7);
            7
        });
        assert_eq!(n, 7);
        assert_eq!(record.0.lock().unwrap().last(), Some(&(7, 10)));
    }
}
