//! The work of each stage: library calls that read inputs and write files into a stage directory.

use std::path::Path;

use candle_core::{DType, Device};
use distillery_api::RunConfig;

use crate::compare::{compare, CompareOptions, Comparison};
use crate::data::read_samples;
use crate::metrics::{self, evaluate_score_file, write_per_query, MetricOptions, Summary};
use crate::observe::{with_bar, StageContext};
use crate::pipeline::query_detail;
use crate::scores::read_scores_per_sample;
use crate::student::predict::{predict_file, PredictConfig};
use crate::teacher::bm25::{self, Bm25Params};
use crate::teacher::job::{self, JobOptions};
use crate::teacher::{self, Batching, Teacher, TeacherOptions};
use crate::train::{train_observed, TrainConfig, TrainHooks};
use crate::triplets::{run_triplets, Sampling, TripletOptions};
use crate::{Error, Result};

/// Scores every pair of `data` with the configured teacher into `out`, or only shard `i` of
/// `n` of them ([`job::shard_range`]) when `shard` is given.
pub fn score(
    cfg: &RunConfig,
    data: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
    shard: Option<(usize, usize)>,
) -> Result<()> {
    if cfg.teacher_kind == "bm25" {
        let n = bm25::score_file_shard(data, out, Bm25Params::default(), shard)? as u64;
        ctx.observer.progress(n, n, "pairs");
        return Ok(());
    }
    let dtype = teacher::parse_dtype(if device.is_cuda() { "bf16" } else { "f32" })?;
    let options = TeacherOptions {
        prompt: cfg.prompt.parse().map_err(Error::Other)?,
        instruction: cfg.instruction.clone(),
        max_length: cfg.teacher_max_length as usize,
        dtype,
        device: device.clone(),
    };
    let teacher = Teacher::load(Path::new(&cfg.teacher), options)?;
    teacher.canary()?.check()?;
    let pairs = job::shard_pairs(&read_samples(data)?, shard);
    let options = JobOptions {
        batching: Batching::Tokens(16_384),
        window: 1024,
        cache: None,
    };
    with_bar(ctx.observer, pairs.len() as u64, "pairs", |bar| {
        job::run(&teacher, &pairs, out, &options, bar)
    })?;
    Ok(())
}

/// Builds margin triplets from a score file.
pub fn triplets(cfg: &RunConfig, scores: &Path, out: &Path) -> Result<()> {
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
    run_triplets(scores, out, &opts, false)?;
    Ok(())
}

/// Student logits for every pair of `data`.
pub fn predict(
    cfg: &RunConfig,
    model: &Path,
    data: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<()> {
    // f32, as the reference evaluates (`predict` outside autocast, spec §C.5).
    let pc = PredictConfig {
        batch_size: 64,
        max_length: Some(cfg.max_length as usize),
        dtype: DType::F32,
    };
    let total: u64 = read_samples(data)?.iter().map(|s| s.n_pairs() as u64).sum();
    let mut done = 0u64;
    predict_file(model, data, out, &pc, device, |n| {
        done += n as u64;
        ctx.observer.progress(done.min(total), total, "pairs");
    })?;
    Ok(())
}

/// Trains the student on `triplets` (evaluating on `eval`) into `out`.
pub fn train_student(
    cfg: &RunConfig,
    triplets: &Path,
    eval: &Path,
    out: &Path,
    device: &Device,
    ctx: &StageContext<'_>,
) -> Result<()> {
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
    train_observed(&tc, device, hooks)?;
    Ok(())
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
