//! `gpu-runner new-model`: write a random-weight model in the Hugging Face layout.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use gpu_runner::student::new_model::{write_new_model, Preset};

/// Model architectures `new-model` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Arch {
    /// `XLMRobertaForSequenceClassification` (the student).
    XlmRoberta,
}

/// Size presets of the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Hidden 32, 2 layers, with a small generated tokenizer.
    Tiny,
    /// The shapes of BAAI/bge-reranker-v2-m3 (568M parameters).
    #[value(name = "bge-reranker-v2-m3")]
    BgeRerankerV2M3,
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
    /// tokenizer.json to copy in (tiny generates its own when absent).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `new-model`, dispatching on the architecture.
pub fn run(args: NewModelArgs) -> anyhow::Result<()> {
    match args.arch {
        Arch::XlmRoberta => {
            let preset = match args.preset {
                PresetArg::Tiny => Preset::Tiny,
                PresetArg::BgeRerankerV2M3 => Preset::BgeRerankerV2M3,
            };
            let cfg = write_new_model(preset, &args.out, args.tokenizer.as_deref(), args.seed)?;
            tracing::info!(
                "wrote {} (hidden {}, {} layers, vocab {})",
                args.out.display(),
                cfg.hidden_size,
                cfg.num_hidden_layers,
                cfg.vocab_size
            );
        }
    }
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
        assert_eq!(names, vec!["tiny", "bge-reranker-v2-m3"]);
        assert_eq!(Arch::from_str("xlm-roberta", false), Ok(Arch::XlmRoberta));
    }
}
