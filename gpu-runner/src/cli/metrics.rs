//! `gpu-runner metrics`: MAP, MRR@k and NDCG@k of a score file on MTEB data (spec §A).

use std::path::PathBuf;

use gpu_runner::data::read_samples;
use gpu_runner::metrics::{
    evaluate_score_file, write_per_query, MetricOptions, ScoreSpace, Summary, Variant,
};
use serde_json::{json, Map, Value};

/// Arguments shared by `metrics` and `compare`: how scores become metrics.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricArgs {
    /// Cut-off of MRR@k and NDCG@k.
    #[arg(long, default_value_t = 10)]
    pub at_k: usize,
    /// Compare scores as float32 sigmoids (sentence-transformers) or as raw logits.
    #[arg(long, value_enum, default_value_t = ScoreSpace::SigmoidF32)]
    pub score_space: ScoreSpace,
    /// `st`: sentence-transformers v5 (no sample skipped); `mteb`: mteb 1.x (skips samples
    /// without positives or negatives).
    #[arg(long, value_enum, default_value_t = Variant::St)]
    pub variant: Variant,
}

impl MetricArgs {
    /// The library options.
    pub fn options(&self) -> MetricOptions {
        MetricOptions {
            at_k: self.at_k,
            score_space: self.score_space,
            variant: self.variant,
        }
    }
}

/// Arguments of `gpu-runner metrics`.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// MTEB reranking data (`.jsonl` or `.jsonl.gz`).
    #[arg(long)]
    pub data: PathBuf,
    /// Score file, one `{"query", "passage", "score"}` line per pair in flattened order.
    #[arg(long)]
    pub scores: PathBuf,
    #[command(flatten)]
    pub metric: MetricArgs,
    /// Also write each query's metrics and document ranks here (JSON lines).
    #[arg(long)]
    pub per_query: Option<PathBuf>,
}

/// The summary as one JSON object, with metric keys named like the evaluator's (`mrr@10`).
pub fn summary_json(summary: &Summary, opts: &MetricOptions) -> Value {
    let k = opts.at_k;
    let mut obj = Map::new();
    obj.insert("map".into(), json!(summary.map));
    obj.insert(format!("mrr@{k}"), json!(summary.mrr));
    obj.insert(format!("ndcg@{k}"), json!(summary.ndcg));
    obj.insert("queries".into(), json!(summary.queries));
    obj.insert("skipped".into(), json!(summary.skipped));
    obj.insert(
        "relevant_irrelevant_ties".into(),
        json!(summary.relevant_ties),
    );
    obj.insert("score_space".into(), json!(opts.score_space));
    obj.insert("variant".into(), json!(opts.variant));
    obj.insert("at_k".into(), json!(k));
    Value::Object(obj)
}

/// Evaluates and prints the summary on stdout.
pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let opts = args.metric.options();
    let samples = read_samples(&args.data)?;
    let evaluation = evaluate_score_file(&samples, &args.scores, &opts)?;
    if let Some(path) = &args.per_query {
        write_per_query(path, &evaluation.per_query)?;
    }
    println!("{}", summary_json(&evaluation.summary, &opts));
    Ok(())
}
