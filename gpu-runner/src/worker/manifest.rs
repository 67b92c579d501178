//! What a runner adds to its run's manifest on the server: where and with what each stage ran,
//! the hashes it keyed the stages on, and each stage's record (key, reuse, wall time and
//! throughput).

use candle_core::Device;
use distillery_api::RunConfig;
use serde_json::{Map, Value};

use crate::pipeline::manifest::{hash_path, CANDLE_VERSION, GIT_COMMIT};
use crate::pipeline::Outcome;
use crate::{Error, Result};

/// The runner's versions and device.
pub fn environment(device: &Device) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("runner_version".into(), env!("CARGO_PKG_VERSION").into());
    m.insert("git_commit".into(), GIT_COMMIT.into());
    m.insert("candle_version".into(), CANDLE_VERSION.into());
    m.insert("device".into(), crate::device::describe(device).into());
    m
}

/// [`environment`], the input hashes (remembered, so cheap) and the record of the stage the job
/// ran, under `stage.<kind>`.
pub fn facts(cfg: &RunConfig, device: &Device, outcome: &Outcome) -> Result<Map<String, Value>> {
    let mut m = environment(device);
    let hash = |p: &str| hash_path(std::path::Path::new(p));
    if cfg.teacher_kind != "bm25" {
        m.insert("teacher_hash".into(), hash(&cfg.teacher)?.into());
    }
    m.insert("student_hash".into(), hash(&cfg.student)?.into());
    m.insert("train_data_hash".into(), hash(&cfg.train_data)?.into());
    m.insert("test_data_hash".into(), hash(&cfg.test_data)?.into());
    let last = match outcome {
        Outcome::Stopped(rec) => Some(rec),
        Outcome::Done(report) => report.stages.last(),
    };
    if let Some(rec) = last {
        let value = serde_json::to_value(rec).map_err(|e| Error::Other(e.to_string()))?;
        m.insert(format!("stage.{}", rec.stage.as_str()), value);
    }
    Ok(m)
}
