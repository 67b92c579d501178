//! The work of each stage: library calls that read inputs and write files into a stage directory.

use std::path::Path;

use candle_core::{DType, Device};
use distillery_api::RunConfig;

use crate::compare::{compare, CompareOptions, Comparison};
use crate::data::{read_samples, Sample};
use crate::metrics::{self, evaluate_score_file, write_per_query, MetricOptions, Summary};
use crate::observe::{with_bar, StageContext};
use crate::pipeline::query_detail;
use crate::pipeline::Work;
use crate::scores::read_scores_per_sample;
use crate::student::predict::{predict_samples, PredictConfig};
use crate::student::Student;
use crate::teacher::bm25::{self, Bm25Params};
use crate::teacher::cache::CacheAt;
use crate::teacher::job::{self, JobOptions};
use crate::teacher::{self, Teacher, TeacherOptions};
use crate::train::{train_observed, TrainConfig, TrainHooks};
use crate::triplets::{run_triplets, Sampling, TripletOptions};
use crate::{Error, Result};

/// Scores every pair of `data` with the configured teacher into `out`, or only shard `i` of
/// `n` of them ([`job::shard_ranges`]) when `shard` is given.
pub fn score(
    cfg: &RunConfig,
    data: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
    shard: Option<(usize, usize)>,
) -> Result<Work> {
    if cfg.teacher_kind == "bm25" {
        let n = bm25::score_file_shard(data, out, Bm25Params::default(), shard)? as u64;
        ctx.observer.progress(n, n, "pairs");
        return Ok(Work::new(n, "pairs"));
    }
    let dtype = teacher::parse_dtype(if device.is_cuda() { "bf16" } else { "f32" })?;
    let options = TeacherOptions {
        prompt: cfg.prompt.parse().map_err(Error::Other)?,
        instruction: cfg.instruction.clone(),
        max_length: cfg.teacher_max_length as usize,
        dtype,
        device: device.clone(),
    };
    let plan = job::shard_plan(&read_samples(data)?, shard, job::MAX_WINDOW);
    let pairs = plan.pairs;
    if pairs.is_empty() {
        // A shard past the last window (fewer windows than shards): nothing to load the
        // teacher for.
        crate::scores::ScoreWriter::create(out)?.commit()?;
        return Ok(Work::new(0, "pairs"));
    }
    let started = std::time::Instant::now();
    let teacher = Teacher::load(Path::new(&cfg.teacher), options)?;
    teacher.canary()?.check()?;
    let setup = started.elapsed().as_secs_f64();
    let options = JobOptions {
        window: plan.window,
        cache: ctx.score_cache.map(|dir| CacheAt::Dir(dir.to_path_buf())),
        ..JobOptions::production()
    };
    let report = with_bar(ctx.observer, pairs.len() as u64, "pairs", |bar| {
        job::run(&teacher, &pairs, out, &options, bar)
    })?;
    if ctx.score_cache.is_some() {
        tracing::info!(
            "{} of {} pairs from the score cache, {} scored, {} resumed",
            report.from_cache,
            report.total,
            report.computed,
            report.resumed
        );
    }
    Ok(Work {
        from_cache: Some(report.from_cache as u64),
        ..Work::new(report.total as u64, "pairs").after_setup(setup)
    })
}

/// Builds margin triplets from a score file.
pub fn triplets(cfg: &RunConfig, scores: &Path, out: &Path) -> Result<Work> {
    let sampling = match cfg.sampling.as_str() {
        "hard" => Sampling::Hard,
        "random" => Sampling::Random,
        "mixed" => Sampling::Mixed,
        other => return Err(Error::Other(format!("unknown sampling {other:?}"))),
    };
    let opts = TripletOptions {
        top_k: cfg.top_k as usize,
        num_negatives: cfg.num_negatives as usize,
        sampling,
        seed: cfg.seed,
    };
    let report = run_triplets(scores, out, &opts, false)?;
    Ok(Work::new(report.build.triplets as u64, "triplets"))
}

/// Largest |bf16 − f32| logit difference the evaluation's parity gate accepts, relative to
/// `1 + |f32 logit|` (bf16 keeps 8 bits of mantissa; 24 layers of it stay well inside this).
pub const EVAL_BF16_TOLERANCE: f64 = 0.05;

/// Pairs of the data that the evaluation's parity gate scores in both precisions.
const GATE_PAIRS: usize = 64;

/// The matmul dtype the evaluation stages use on `device` for `cfg.eval_dtype`.
pub fn eval_dtype(cfg: &RunConfig, device: &Device) -> Result<DType> {
    match cfg.eval_dtype.as_str() {
        "auto" if device.is_cuda() => Ok(DType::BF16),
        "auto" | "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        other => Err(Error::Other(format!(
            "eval_dtype {other:?}: use auto, f32 or bf16"
        ))),
    }
}

/// The parity gate of bf16 evaluation: scores the first pairs of `samples` (read from `data`)
/// with `exact` (f32) and `fast` (bf16, the model that will predict) and fails, naming the
/// setting, when they differ by more than `tolerance` (relative to `1 + |f32|`). Returns the
/// largest relative difference.
pub fn bf16_parity_gate(
    exact: &Student,
    fast: &Student,
    samples: &[Sample],
    data: &Path,
    tolerance: f64,
) -> Result<f64> {
    let pairs: Vec<(&str, &str)> = samples
        .iter()
        .flat_map(|s| s.pairs())
        .take(GATE_PAIRS)
        .collect();
    let (exact, fast) = (
        exact.score_pairs(&pairs, GATE_PAIRS)?,
        fast.score_pairs(&pairs, GATE_PAIRS)?,
    );
    let worst = exact
        .iter()
        .zip(&fast)
        .map(|(&a, &b)| f64::from((a - b).abs()) / (1.0 + f64::from(a.abs())))
        // A NaN logit is as far off as it gets (f64::max would skip it).
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    if worst.is_nan() || worst > tolerance {
        return Err(Error::Other(format!(
            "eval_dtype = bf16 refused: on {} canary pairs of {} the bf16 logits differ from f32 \
             by up to {worst:.4} (relative), over the tolerance {tolerance}; set eval_dtype = \
             \"f32\" in the run config",
            pairs.len(),
            data.display()
        )));
    }
    tracing::info!(
        "bf16 evaluation parity gate passed: max relative difference {worst:.2e} on {} pairs",
        pairs.len()
    );
    Ok(worst)
}

/// Student logits for every pair of `data`: in f32 (the reference's `predict` outside
/// autocast, spec §C.5) or, with `eval_dtype` bf16 (the CUDA default), on the packed bf16 path
/// once the parity gate passed. The model that predicts is the one the gate checked.
pub fn predict(
    cfg: &RunConfig,
    model: &Path,
    data: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<Work> {
    let started = std::time::Instant::now();
    let dtype = eval_dtype(cfg, device)?;
    let pc = PredictConfig {
        batch_size: if dtype == DType::BF16 { 256 } else { 64 },
        max_length: Some(cfg.max_length as usize),
        dtype,
    };
    let samples = read_samples(data)?;
    let total: u64 = samples.iter().map(|s| s.n_pairs() as u64).sum();
    let student = Student::load_with_dtype(model, device, pc.max_length, pc.dtype)?;
    if dtype == DType::BF16 {
        let exact = Student::load_with_dtype(model, device, pc.max_length, DType::F32)?;
        bf16_parity_gate(&exact, &student, &samples, data, EVAL_BF16_TOLERANCE)?;
    }
    let setup = started.elapsed().as_secs_f64();
    let mut done = 0u64;
    let n = predict_samples(&student, &samples, out, &pc, |n| {
        done += n as u64;
        ctx.observer.progress(done.min(total), total, "pairs");
    })?;
    Ok(Work::new(n as u64, "pairs").after_setup(setup))
}

/// The training's triplets per forward/backward pass for `cfg` on `device` (`None`: the
/// reference's `batch_size`): `micro_batch` when set, else 128 on CUDA where it divides the
/// effective batch.
pub fn micro_batch(cfg: &RunConfig, device: &Device) -> Option<usize> {
    let effective = cfg.batch_size as usize * cfg.grad_accum as usize;
    match cfg.micro_batch as usize {
        0 if device.is_cuda() => {
            let m = 128.min(effective);
            (m > cfg.batch_size as usize && effective.is_multiple_of(m)).then_some(m)
        }
        0 => None,
        m => Some(m),
    }
}

/// Trains the student on `triplets` (evaluating on `eval`) into `out`.
pub fn train_student(
    cfg: &RunConfig,
    triplets: &Path,
    eval: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<Work> {
    let tc = TrainConfig {
        eval: Some(eval.to_path_buf()),
        epochs: cfg.epochs as usize,
        batch_size: cfg.batch_size as usize,
        grad_accum: cfg.grad_accum as usize,
        lr: cfg.lr,
        warmup_ratio: cfg.warmup_ratio,
        weight_decay: cfg.weight_decay,
        max_grad_norm: cfg.max_grad_norm,
        max_length: cfg.max_length as usize,
        seed: cfg.seed,
        bf16: cfg.bf16,
        micro_batch: micro_batch(cfg, device),
        sort_by_length: cfg.sort_by_length,
        progress: false,
        save_steps: ctx.checkpoint_every,
        resume: true,
        ..TrainConfig::new(
            cfg.student.clone().into(),
            triplets.to_path_buf(),
            out.to_path_buf(),
        )
    };
    let hooks = TrainHooks {
        observer: ctx.observer,
        resume_max_step: ctx.resume_max_step,
    };
    let summary = train_observed(&tc, device, hooks)?;
    Ok(Work::new(summary.triplets_seen as u64, "triplets").after_setup(summary.setup_seconds))
}

/// The metric options of a run.
pub fn metric_options(cfg: &RunConfig) -> MetricOptions {
    MetricOptions {
        at_k: cfg.at_k as usize,
        ..MetricOptions::default()
    }
}

/// Evaluates a score file on `data`, writes `summary.json` and `per_query.jsonl` into `dir`.
pub fn evaluate(cfg: &RunConfig, data: &Path, scores: &Path, dir: &Path) -> Result<Summary> {
    let samples = read_samples(data)?;
    let evaluation = evaluate_score_file(&samples, scores, &metric_options(cfg))?;
    write_per_query(&dir.join("per_query.jsonl"), &evaluation.per_query)?;
    crate::pipeline::write_json(&dir.join("summary.json"), &evaluation.summary)?;
    Ok(evaluation.summary)
}

/// The score files the compare stage reads, all on the test data.
pub struct CompareInputs<'a> {
    pub teacher: &'a Path,
    pub before: &'a Path,
    pub after: &'a Path,
}

/// Paired before/after comparison of the student's score files on `data` (`compare.json`) and
/// the per-query detail for the dashboard ([`query_detail::FILE_NAME`]), both into `dir`.
pub fn compare_scores(
    cfg: &RunConfig,
    data: &Path,
    inputs: &CompareInputs,
    dir: &Path,
) -> Result<Comparison> {
    let samples = read_samples(data)?;
    let opts = metric_options(cfg);
    let teacher = read_scores_per_sample(&samples, inputs.teacher)?;
    let before = read_scores_per_sample(&samples, inputs.before)?;
    let after = read_scores_per_sample(&samples, inputs.after)?;
    let comparison = compare(
        &metrics::evaluate(&samples, &before, &opts)?,
        &metrics::evaluate(&samples, &after, &opts)?,
        &CompareOptions {
            resamples: 2000,
            seed: cfg.seed,
            at_k: opts.at_k,
        },
    )?;
    crate::pipeline::write_json(&dir.join("compare.json"), &comparison)?;
    let scores = query_detail::ModelScores {
        teacher: &teacher,
        before: &before,
        after: &after,
    };
    let details = query_detail::build(&samples, &scores, &opts)?;
    query_detail::write(&dir.join(query_detail::FILE_NAME), &details)?;
    Ok(comparison)
}
