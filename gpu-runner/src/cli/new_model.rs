//! `gpu-runner new-model`: write a random-weight model in the Hugging Face layout.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gpu_runner::student::new_model::{write_new_model, Preset};
use gpu_runner::teacher::new_model as teacher_model;

/// Model architectures `new-model` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// `XLMRobertaForSequenceClassification` (the student).
    XlmRoberta,
    /// `Qwen3ForCausalLM` scored as a reranker (the teacher), in the sharded HF layout.
    Qwen3Reranker,
}

/// Size presets of the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Hidden 32, 2 layers, with a small generated tokenizer.
    Tiny,
    /// The shapes of BAAI/bge-reranker-v2-m3 (568M parameters).
    #[value(name = "bge-reranker-v2-m3")]
    BgeRerankerV2M3,
    /// The shapes of Qwen/Qwen3-Reranker-0.6B (bf16).
    #[value(name = "qwen3-reranker-0.6b")]
    Qwen3Reranker0_6b,
    /// The shapes of Qwen/Qwen3-Reranker-8B (bf16).
    #[value(name = "qwen3-reranker-8b")]
    Qwen3Reranker8b,
}

/// Arguments of `new-model`.
#[derive(Debug, Args)]
pub struct NewModelArgs {
    /// Architecture to write.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// Size preset.
    #[arg(long, value_enum)]
    pub preset: PresetArg,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// tokenizer.json to copy in (the student's tiny preset generates its own when absent;
    /// the teacher needs the real Qwen3 tokenizer).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `new-model`, dispatching on the architecture.
pub fn run(args: NewModelArgs) -> anyhow::Result<()> {
    match args.arch {
        Arch::XlmRoberta => write_student(&args),
        Arch::Qwen3Reranker => write_teacher(&args),
    }
}

fn write_student(args: &NewModelArgs) -> anyhow::Result<()> {
    let preset = match args.preset {
        PresetArg::Tiny => Preset::Tiny,
        PresetArg::BgeRerankerV2M3 => Preset::BgeRerankerV2M3,
        other => anyhow::bail!(
            "--preset {other:?} is not an xlm-roberta preset: use tiny or bge-reranker-v2-m3"
        ),
    };
    let cfg = write_new_model(preset, &args.out, args.tokenizer.as_deref(), args.seed)?;
    tracing::info!(
        "wrote {} (hidden {}, {} layers, vocab {})",
        args.out.display(),
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.vocab_size
    );
    Ok(())
}

fn write_teacher(args: &NewModelArgs) -> anyhow::Result<()> {
    let preset = match args.preset {
        PresetArg::Tiny => teacher_model::Preset::Tiny,
        PresetArg::Qwen3Reranker0_6b => teacher_model::Preset::Qwen3Reranker0_6b,
        PresetArg::Qwen3Reranker8b => teacher_model::Preset::Qwen3Reranker8b,
        other => anyhow::bail!(
            "--preset {other:?} is not a qwen3-reranker preset: use tiny, qwen3-reranker-0.6b or qwen3-reranker-8b"
        ),
    };
    let tokenizer = args.tokenizer.as_deref().ok_or_else(|| {
        anyhow::anyhow!("--arch qwen3-reranker needs --tokenizer (the real Qwen3 tokenizer.json)")
    })?;
    teacher_model::write(preset, tokenizer, &args.out, args.seed)?;
    tracing::info!(out = %args.out.display(), preset = %preset, "wrote teacher model");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_are_the_issue_spelling() {
        let names: Vec<String> = PresetArg::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        assert_eq!(
            names,
            vec![
                "tiny",
                "bge-reranker-v2-m3",
                "qwen3-reranker-0.6b",
                "qwen3-reranker-8b"
            ]
        );
        assert_eq!(Arch::from_str("xlm-roberta", false), Ok(Arch::XlmRoberta));
        assert_eq!(
            Arch::from_str("qwen3-reranker", false),
            Ok(Arch::Qwen3Reranker)
        );
    }
}
