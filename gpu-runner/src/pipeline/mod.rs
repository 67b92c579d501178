//! The run as a DAG of content-addressed stages (`gpu-runner pipeline`).
//!
//! Each stage's key is the sha256 of its kind, its parameters and its inputs' hashes; its
//! outputs live in `RUNDIR/stages/<kind>-<key prefix>/`, written to a temporary directory and
//! renamed into place when complete, so a stage whose directory exists is skipped and reused.
//! The run writes `manifest.json` (hashes, config, versions, device, stages) and `report.json`
//! (before/after/teacher metrics and the paired comparison).

pub mod identity;
pub mod manifest;
pub mod query_detail;
pub mod shards;
pub mod stages;

use std::path::{Path, PathBuf};

use candle_core::Device;
use distillery_api::{RunConfig, StageKind};
use serde::Serialize;

use distillery_api::StageStats;
use serde_json::Value;

use crate::data::read_samples;

use crate::io::AtomicFile;
use crate::observe::StageContext;
use crate::{Error, Result};
use manifest::{hash_path, stage_key, Manifest, StageRecord};

/// The final report of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The student before training, on the test split ([`crate::metrics::Summary`]).
    pub before: Value,
    /// The trained student on the test split.
    pub after: Value,
    /// The teacher on the test split (the upper bound).
    pub teacher: Value,
    /// Paired before/after changes with bootstrap CIs ([`crate::compare::Comparison`]).
    pub compare: Value,
    /// The per-query detail file ([`query_detail`]).
    pub query_detail: PathBuf,
    /// What each stage did (as in `manifest.json`; not part of `report.json`).
    #[serde(skip)]
    pub stages: Vec<StageRecord>,
}

impl Report {
    /// The comparison's CI of the change and p-value per metric, as the server takes them.
    pub fn metric_comparisons(&self) -> Result<Vec<distillery_api::MetricComparison>> {
        serde_json::from_value(self.compare["metrics"].clone())
            .map_err(|e| Error::Other(format!("compare.json: metrics: {e}")))
    }
}

/// Writes a value as pretty JSON, atomically.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(&mut file, value)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    file.commit()
}

/// Reads a run configuration from TOML and validates it.
pub fn read_config(path: &Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let cfg: RunConfig =
        toml::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    cfg.validate().map_err(|errs| {
        let msgs: Vec<String> = errs
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        Error::Other(format!("{}: {}", path.display(), msgs.join("; ")))
    })?;
    Ok(cfg)
}

/// What a stage's work went through, for its [`StageStats`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Work {
    pub items: u64,
    pub unit: &'static str,
    /// Teacher scores taken from the score cache.
    pub from_cache: Option<u64>,
    /// Seconds before the first item (model loading, parity checks).
    pub setup_seconds: f64,
}

impl Work {
    /// `items` of `unit`, no cache.
    pub fn new(items: u64, unit: &'static str) -> Work {
        Work {
            items,
            unit,
            from_cache: None,
            setup_seconds: 0.0,
        }
    }

    /// This work with `seconds` of setup.
    pub fn after_setup(self, seconds: f64) -> Work {
        Work {
            setup_seconds: seconds,
            ..self
        }
    }
}

/// Runs `work` on `device` and measures it: wall time, items and, on CUDA, peak memory.
pub fn measured(device: &Device, work: impl FnOnce() -> Result<Work>) -> Result<StageStats> {
    let pool = crate::cuda_mem::MemoryPool::of(device)?;
    pool.reset_peak()?;
    let started = std::time::Instant::now();
    let done = work()?;
    Ok(StageStats {
        seconds: started.elapsed().as_secs_f64(),
        items: done.items,
        unit: done.unit.to_string(),
        from_cache: done.from_cache,
        peak_gib: pool.peak_bytes()?.map(|b| b as f64 / (1u64 << 30) as f64),
        setup_seconds: done.setup_seconds,
        jobs: 1,
    })
}

struct Runner<'a> {
    dir: &'a Path,
    device: &'a Device,
    records: Vec<StageRecord>,
    stop_after: Option<StageKind>,
}

/// How far [`run_through`] went.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It stopped after this stage (its record).
    Stopped(StageRecord),
    /// Every stage ran or was reused.
    Done(Report),
}

impl Runner<'_> {
    /// The last stage's record, when the run should stop after it.
    fn halt(&self) -> Option<StageRecord> {
        self.records
            .last()
            .filter(|r| Some(r.stage) == self.stop_after)
            .cloned()
    }

    /// Whether the run needs stage `kind`: all stages, or `stop_after` and what it depends on.
    fn needs(&self, kind: StageKind) -> bool {
        fn reaches(target: StageKind, kind: StageKind) -> bool {
            target == kind || target.depends_on().iter().any(|&d| reaches(d, kind))
        }
        self.stop_after.is_none_or(|target| reaches(target, kind))
    }

    /// Runs `work` into a fresh stage directory unless one with the same key exists. A stage
    /// the run does not need (not a dependency of `stop_after`) is only named: its key and
    /// directory feed later stages' keys.
    fn stage(
        &mut self,
        kind: StageKind,
        params: &str,
        inputs: &[&str],
        work: impl FnOnce(&Path) -> Result<Work>,
    ) -> Result<(PathBuf, String)> {
        let key = stage_key(kind.as_str(), params, inputs);
        let name = stage_name(kind, &key);
        let dir = self.dir.join("stages").join(&name);
        if !self.needs(kind) {
            return Ok((dir, key));
        }
        let reused = dir.is_dir();
        let stats;
        if !reused {
            // A leftover temporary directory is kept: it holds what an interrupted attempt
            // wrote (training checkpoints); every stage's work overwrites its files atomically.
            let tmp = self.dir.join("stages").join(format!(".{name}.tmp"));
            std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            tracing::info!(stage = kind.as_str(), "running");
            let measured = measured(self.device, || work(&tmp)).map_err(|e| match e {
                Error::Stopped(m) => Error::Stopped(format!("stage {}: {m}", kind.as_str())),
                e => Error::Other(format!("stage {}: {e}", kind.as_str())),
            })?;
            tracing::info!(
                stage = kind.as_str(),
                "{} {} in {:.1} s ({:.1}/s)",
                measured.items,
                measured.unit,
                measured.seconds,
                measured.per_s()
            );
            write_json(&tmp.join(STATS_FILE), &measured)?;
            stats = Some(measured);
            std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        } else {
            tracing::info!(stage = kind.as_str(), "reused");
            // What the stage measured when it ran (older stage directories have no file).
            stats = std::fs::read_to_string(dir.join(STATS_FILE))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
        }
        self.records.push(StageRecord {
            stage: kind,
            key: key.clone(),
            dir: format!("stages/{name}"),
            reused,
            stats,
        });
        Ok((dir, key))
    }
}

/// The stats file a stage directory keeps (what its work measured when it ran).
pub const STATS_FILE: &str = "stage_stats.json";

/// The directory name of stage `kind` with key `key`.
fn stage_name(kind: StageKind, key: &str) -> String {
    format!("{}-{}", kind.as_str(), &key[..16])
}

/// The hash of the teacher model directory (empty for the BM25 teacher, which has none).
fn teacher_hash(cfg: &RunConfig) -> Result<String> {
    match cfg.teacher_kind.as_str() {
        "bm25" => Ok(String::new()),
        _ => hash_path(Path::new(&cfg.teacher)),
    }
}

/// The parameters that key a teacher-scoring stage. Not the sharding: the shards concatenate
/// to the same file.
fn teacher_params(cfg: &RunConfig) -> String {
    format!(
        "{}|{}|{}|{}",
        cfg.teacher_kind, cfg.prompt, cfg.instruction, cfg.teacher_max_length
    )
}

/// The data file that the teacher-scoring stage `kind` of `cfg` scores, and the name of its
/// content-addressed stage directory.
pub fn scoring_stage(cfg: &RunConfig, kind: StageKind) -> Result<(PathBuf, String)> {
    let data = match kind {
        StageKind::ScoreTrain => PathBuf::from(&cfg.train_data),
        StageKind::ScoreTest => PathBuf::from(&cfg.test_data),
        other => {
            return Err(Error::Other(format!(
                "{} is not a teacher-scoring stage",
                other.as_str()
            )))
        }
    };
    let key = stage_key(
        kind.as_str(),
        &teacher_params(cfg),
        &[&teacher_hash(cfg)?, &hash_path(&data)?],
    );
    Ok((data, stage_name(kind, &key)))
}

/// Runs every stage of `cfg` into `rundir` on `device` and returns the report.
pub fn run(cfg: &RunConfig, rundir: &Path, device: &Device) -> Result<Report> {
    match run_through(cfg, rundir, device, None)? {
        Outcome::Done(report) => Ok(report),
        Outcome::Stopped(rec) => Err(Error::Other(format!("run stopped after {:?}", rec.stage))),
    }
}

/// Runs the stages in dependency order up to and including `stop_after` (all when `None`),
/// reusing finished ones.
pub fn run_through(
    cfg: &RunConfig,
    rundir: &Path,
    device: &Device,
    stop_after: Option<StageKind>,
) -> Result<Outcome> {
    run_through_with(cfg, rundir, device, stop_after, StageContext::silent())
}

/// [`run_through`] with an observer and checkpoint settings: what a worker calls for one stage
/// job.
pub fn run_through_with(
    cfg: &RunConfig,
    rundir: &Path,
    device: &Device,
    stop_after: Option<StageKind>,
    ctx: StageContext<'_>,
) -> Result<Outcome> {
    use stages::*;
    std::fs::create_dir_all(rundir.join("stages")).map_err(|e| Error::io(rundir, e))?;
    let train_data = Path::new(&cfg.train_data);
    let test_data = Path::new(&cfg.test_data);
    let student = Path::new(&cfg.student);
    let teacher_hash = teacher_hash(cfg)?;
    let (h_train, h_test, h_student) = (
        hash_path(train_data)?,
        hash_path(test_data)?,
        hash_path(student)?,
    );
    let teacher_params = teacher_params(cfg);
    let triplet_params = format!(
        "{}|{}|{}|{}",
        cfg.top_k, cfg.num_negatives, cfg.sampling, cfg.seed
    );
    // The training's key holds the whole config but not how the teacher scoring was split:
    // a sharded run trains on the same triplets as an unsharded one.
    let unsharded = RunConfig {
        teacher_shards: 1,
        ..cfg.clone()
    };
    let cfg_json = serde_json::to_string(&unsharded).map_err(|e| Error::Other(e.to_string()))?;
    let mut r = Runner {
        dir: rundir,
        device,
        records: Vec::new(),
        stop_after,
    };

    let (s_train, k_s_train) = r.stage(
        StageKind::ScoreTrain,
        &teacher_params,
        &[&teacher_hash, &h_train],
        |d| {
            let out = d.join("scores.jsonl");
            shards::score_split(cfg, StageKind::ScoreTrain, train_data, &out, device, &ctx)
        },
    )?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (s_test, k_s_test) = r.stage(
        StageKind::ScoreTest,
        &teacher_params,
        &[&teacher_hash, &h_test],
        |d| {
            let out = d.join("scores.jsonl");
            shards::score_split(cfg, StageKind::ScoreTest, test_data, &out, device, &ctx)
        },
    )?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (t_train, k_t_train) = r.stage(
        StageKind::TripletsTrain,
        &triplet_params,
        &[&k_s_train],
        |d| {
            triplets(
                cfg,
                &s_train.join("scores.jsonl"),
                &d.join("triplets.jsonl"),
            )
        },
    )?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (t_test, k_t_test) = r.stage(
        StageKind::TripletsTest,
        &triplet_params,
        &[&k_s_test],
        |d| triplets(cfg, &s_test.join("scores.jsonl"), &d.join("triplets.jsonl")),
    )?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    // The evaluation's precision is part of its key: bf16 and f32 logits differ by rounding.
    // The resolved one: `auto` is bf16 on CUDA and f32 elsewhere.
    let ml = format!("{}|{:?}", cfg.max_length, stages::eval_dtype(cfg, device)?);
    let (before, k_before) = r.stage(StageKind::EvalBefore, &ml, &[&h_student, &h_test], |d| {
        let work = predict(
            cfg,
            student,
            test_data,
            &d.join("scores.jsonl"),
            device,
            &ctx,
        )?;
        evaluate(cfg, test_data, &d.join("scores.jsonl"), d)?;
        Ok(work)
    })?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (trained, k_train) = r.stage(
        StageKind::Train,
        &cfg_json,
        &[&h_student, &k_t_train, &k_t_test],
        |d| {
            train_student(
                cfg,
                &t_train.join("triplets.jsonl"),
                &t_test.join("triplets.jsonl"),
                &d.join("model"),
                device,
                &ctx,
            )
        },
    )?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let model = trained.join("model");
    let (after, k_after) = r.stage(StageKind::EvalAfter, &ml, &[&k_train, &h_test], |d| {
        let work = predict(
            cfg,
            &model,
            test_data,
            &d.join("scores.jsonl"),
            device,
            &ctx,
        )?;
        evaluate(cfg, test_data, &d.join("scores.jsonl"), d)?;
        Ok(work)
    })?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (teacher_eval, _) = r.stage(StageKind::EvalTeacher, &ml, &[&k_s_test, &h_test], |d| {
        let summary = evaluate(cfg, test_data, &s_test.join("scores.jsonl"), d)?;
        Ok(Work::new(summary.queries as u64, "queries"))
    })?;
    if let Some(rec) = r.halt() {
        return Ok(Outcome::Stopped(rec));
    }
    let (cmp, _) = r.stage(
        StageKind::Compare,
        &cfg.seed.to_string(),
        &[&k_before, &k_after, &k_s_test],
        |d| {
            let inputs = CompareInputs {
                teacher: &s_test.join("scores.jsonl"),
                before: &before.join("scores.jsonl"),
                after: &after.join("scores.jsonl"),
            };
            compare_scores(cfg, test_data, &inputs, d)?;
            Ok(Work::new(read_samples(test_data)?.len() as u64, "queries"))
        },
    )?;

    let report = Report {
        before: read_json(&before.join("summary.json"))?,
        after: read_json(&after.join("summary.json"))?,
        teacher: read_json(&teacher_eval.join("summary.json"))?,
        compare: read_json(&cmp.join("compare.json"))?,
        query_detail: cmp.join(query_detail::FILE_NAME),
        stages: r.records.clone(),
    };
    write_json(&rundir.join("report.json"), &report)?;
    let manifest = Manifest {
        runner_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: manifest::GIT_COMMIT.into(),
        candle_version: manifest::CANDLE_VERSION.into(),
        device: crate::device::describe(device),
        config: cfg.clone(),
        teacher_hash,
        student_hash: h_student,
        train_data_hash: h_train,
        test_data_hash: h_test,
        stages: r.records,
    };
    write_json(&rundir.join("manifest.json"), &manifest)?;
    Ok(Outcome::Done(report))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Other(format!("{}: {e}", path.display())))
}
