//! `gpu-runner score`: teacher scores for every flattened (query, passage) pair of a data file.

use std::path::PathBuf;

use anyhow::Context;
use gpu_runner::teacher::cache::CacheAt;
use gpu_runner::teacher::job::{self, JobOptions};
use gpu_runner::teacher::prompt::{PromptVariant, DEFAULT_INSTRUCTION, DEFAULT_MAX_LENGTH};
use gpu_runner::teacher::{self, bm25, Batching, Teacher, TeacherOptions};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `score`.
#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// Teacher kind: the Qwen3 reranker model, or BM25 (lexical, no model; used by the demo).
    #[arg(long, value_enum, default_value_t = TeacherKind::Qwen3Reranker)]
    pub kind: TeacherKind,
    /// Teacher model directory (config.json, safetensors shards, tokenizer.json); not used by bm25.
    #[arg(long, required_if_eq("kind", "qwen3-reranker"))]
    pub teacher: Option<PathBuf>,
    /// Samples `{query, positive, negative}` as .jsonl or .jsonl.gz.
    #[arg(long)]
    pub input: PathBuf,
    /// Score file to write, one `{query, passage, score}` line per pair.
    #[arg(long)]
    pub output: PathBuf,
    /// Padded tokens per batch (length-bucketed); the default batching.
    #[arg(long, conflicts_with = "batch_size")]
    pub batch_tokens: Option<usize>,
    /// Pairs per batch instead of a token budget.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Score only shard i of n (0-based) of the flattened pairs, e.g. 0/4.
    #[arg(long, value_parser = job::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// f32, bf16 or f16 (default: bf16 on cuda, f32 on cpu).
    #[arg(long)]
    pub dtype: Option<String>,
    /// official, or seed-compat (the reference pipeline's duplicated <|im_end|>).
    #[arg(long, default_value = "official")]
    pub prompt: PromptVariant,
    /// Task instruction of the prompt.
    #[arg(long, default_value = DEFAULT_INSTRUCTION)]
    pub instruction: String,
    /// Maximum prompt length in tokens; only the query/document part is truncated.
    #[arg(long, default_value_t = DEFAULT_MAX_LENGTH)]
    pub max_length: usize,
    /// Score cache file (default: teacher-score-cache.jsonl beside the output).
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Do not read or write the score cache.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// Most pairs written and synced at a time (the resume granularity: a crash loses at most
    /// one window); windows are an eighth of the data set's pairs up to this, cut at query ends,
    /// and `--shard` cuts on them.
    #[arg(long, default_value_t = gpu_runner::teacher::job::MAX_WINDOW)]
    pub window: usize,
}

/// Teacher kinds of `score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TeacherKind {
    /// Qwen3-Reranker (a model directory).
    Qwen3Reranker,
    /// Okapi BM25 over the data file's passages.
    Bm25,
}

/// Runs `score`.
pub fn run(args: ScoreArgs) -> anyhow::Result<()> {
    let Some(teacher_dir) = args
        .teacher
        .clone()
        .filter(|_| args.kind == TeacherKind::Qwen3Reranker)
    else {
        let n = bm25::score_file_shard(
            &args.input,
            &args.output,
            bm25::Bm25Params::default(),
            args.shard,
        )?;
        tracing::info!(pairs = n, output = %args.output.display(), "BM25 scores written");
        return Ok(());
    };
    let device = gpu_runner::device::parse_device(&args.device)?;
    let default_dtype = if device.is_cuda() { "bf16" } else { "f32" };
    let dtype = teacher::parse_dtype(args.dtype.as_deref().unwrap_or(default_dtype))?;
    let options = TeacherOptions {
        prompt: args.prompt,
        instruction: args.instruction.clone(),
        max_length: args.max_length,
        dtype,
        device,
    };
    let teacher = Teacher::load(&teacher_dir, options)
        .with_context(|| format!("loading teacher {}", teacher_dir.display()))?;
    tracing::info!(identity = %&teacher.identity()[..16], "teacher loaded");

    let canary = teacher.canary()?;
    tracing::info!(relevant = ?canary.relevant, irrelevant = ?canary.irrelevant, "canary scores");
    if !canary.separates() {
        tracing::warn!("canary: relevant pairs do not outscore irrelevant ones (expected only of random weights)");
    }

    let samples = gpu_runner::data::read_samples(&args.input)?;
    let plan = job::shard_plan(&samples, args.shard, args.window);
    let pairs = plan.pairs;
    tracing::info!(pairs = pairs.len(), shard = ?args.shard, "scoring");

    let batching = match (args.batch_size, args.batch_tokens) {
        (Some(n), _) => Batching::Size(n),
        (None, Some(t)) => Batching::Tokens(t),
        (None, None) => Batching::Tokens(job::BATCH_TOKENS),
    };
    let cache = if args.no_cache {
        None
    } else {
        Some(CacheAt::File(args.cache.clone().unwrap_or_else(|| {
            args.output.with_file_name("teacher-score-cache.jsonl")
        })))
    };
    let job_options = JobOptions {
        batching,
        window: plan.window,
        cache,
    };
    let bar = ProgressBar::new(pairs.len() as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} pairs  {per_sec}  ETA {eta}  {msg}",
    )?);
    let report = job::run(&teacher, &pairs, &args.output, &job_options, &bar)?;
    bar.finish();
    tracing::info!(
        total = report.total,
        resumed = report.resumed,
        from_cache = report.from_cache,
        computed = report.computed,
        output = %args.output.display(),
        "scores written"
    );
    Ok(())
}
