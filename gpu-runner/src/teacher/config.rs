//! The Qwen3 `config.json` fields the teacher reads, and the settings it supports.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{hf_config, Error, Result};

/// The fields of a Qwen3 `config.json` that the scorer uses, named like the JSON keys of the
/// form [`hf_config::normalize`] gives: a transformers 5 `rope_parameters` is read as
/// `rope_theta`, and only the `default` RoPE type gets this far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    /// The RoPE base; 10,000 when the file names none, as in transformers 4.x and 5.x.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    /// The dtype the checkpoint declares (`dtype`, or `torch_dtype` before transformers 4.56).
    /// Informational: weights are cast to the teacher's compute dtype at load. Not serialised:
    /// `new-model` writes `torch_dtype` itself.
    #[serde(default, skip_serializing)]
    pub dtype: Option<String>,
}

fn default_hidden_act() -> String {
    "silu".to_string()
}

fn default_rope_theta() -> f64 {
    10_000.0
}

impl Config {
    /// Reads the `config.json` bytes at `path` in either transformers form and validates them;
    /// errors name the file.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config> {
        let cfg: Config = hf_config::parse(path, bytes, "a Qwen3 config")?;
        cfg.validate().map_err(|message| Error::Model {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    /// Rejects settings this implementation does not support, with the reason.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only silu)",
                self.hidden_act
            ));
        }
        if self.attention_bias {
            return Err("attention_bias = true is not supported".into());
        }
        if self.use_sliding_window {
            return Err("use_sliding_window = true is not supported".into());
        }
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads {} must be a positive multiple of num_key_value_heads {}",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} must be even for RoPE", self.head_dim));
        }
        Ok(())
    }
}
