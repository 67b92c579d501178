//! The configuration of a run, with the reference pipeline's defaults and validation.
//!
//! Validation lives here so that the server (which rejects bad launches with a 400 naming the
//! field) and the app (which shows the same message inline) agree on every rule.

use serde::{Deserialize, Serialize};

/// The reference pipeline's default instruction for the Qwen3 reranker prompt.
pub const DEFAULT_INSTRUCTION: &str =
    "Given a web search query, retrieve relevant passages that answer the query";

/// The most shards a teacher-scoring stage may be cut into.
pub const MAX_TEACHER_SHARDS: u32 = 256;

/// Everything that determines a run. `Default` is the reference pipeline (§1 of the spec).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// `qwen3-reranker` (a model directory) or `bm25` (a lexical teacher, used by the demo).
    pub teacher_kind: String,
    /// Teacher model directory (ignored for `bm25`).
    pub teacher: String,
    /// Student model directory (an HF cross-encoder).
    pub student: String,
    /// Training data in MTEB reranking format (`.jsonl` or `.jsonl.gz`).
    pub train_data: String,
    /// Held-out test data in MTEB reranking format.
    pub test_data: String,
    pub top_k: u32,
    pub num_negatives: u32,
    /// `hard`, `random` or `mixed` negative sampling.
    pub sampling: String,
    pub epochs: u32,
    pub batch_size: u32,
    pub grad_accum: u32,
    pub lr: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    /// Student max sequence length.
    pub max_length: u32,
    /// Teacher max prompt length.
    pub teacher_max_length: u32,
    /// `official` or `seed-compat`.
    pub prompt: String,
    pub instruction: String,
    pub seed: u64,
    pub bf16: bool,
    pub at_k: u32,
    /// Teacher scoring of each split is cut into this many shards, each a job that any runner
    /// may take (1: one job per split). The scores do not depend on it.
    pub teacher_shards: u32,
    /// Triplets per forward/backward pass of the training (0: automatic, 128 on CUDA where it
    /// divides the effective batch, else `batch_size`). The update stays `batch_size ×
    /// grad_accum` triplets with the same arithmetic.
    pub micro_batch: u32,
    /// Sort each update's triplets by length before cutting them into passes.
    pub sort_by_length: bool,
    /// Precision of the student evaluations: `auto` (bf16 packed inference on CUDA behind a
    /// parity gate, f32 elsewhere), `f32` (the reference's) or `bf16`.
    pub eval_dtype: String,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            teacher_kind: "qwen3-reranker".into(),
            teacher: String::new(),
            student: String::new(),
            train_data: String::new(),
            test_data: String::new(),
            top_k: 8,
            num_negatives: 4,
            sampling: "hard".into(),
            epochs: 1,
            batch_size: 16,
            grad_accum: 32,
            lr: 2e-5,
            warmup_ratio: 0.05,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            max_length: 512,
            teacher_max_length: 8192,
            prompt: "official".into(),
            instruction: DEFAULT_INSTRUCTION.into(),
            seed: 42,
            bf16: true,
            at_k: 10,
            teacher_shards: 1,
            micro_batch: 0,
            sort_by_length: false,
            eval_dtype: "auto".into(),
        }
    }
}

/// One failed rule, naming the config field it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl RunConfig {
    /// Checks every rule and returns all violations, in field order.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, message: &str| {
            errs.push(ValidationError {
                field: field.into(),
                message: message.into(),
            })
        };
        if !matches!(self.teacher_kind.as_str(), "qwen3-reranker" | "bm25") {
            bad("teacher_kind", "must be qwen3-reranker or bm25");
        }
        if self.teacher_kind == "qwen3-reranker" && self.teacher.trim().is_empty() {
            bad("teacher", "a teacher model directory is required");
        }
        if self.student.trim().is_empty() {
            bad("student", "a student model directory is required");
        }
        if self.train_data.trim().is_empty() {
            bad("train_data", "a training data file is required");
        }
        if self.test_data.trim().is_empty() {
            bad("test_data", "a test data file is required");
        }
        if self.top_k == 0 {
            bad("top_k", "must be at least 1");
        }
        if self.num_negatives == 0 {
            bad("num_negatives", "must be at least 1");
        }
        if !matches!(self.sampling.as_str(), "hard" | "random" | "mixed") {
            bad("sampling", "must be hard, random or mixed");
        }
        if self.epochs == 0 || self.epochs > 100 {
            bad("epochs", "must be between 1 and 100");
        }
        if self.batch_size == 0 || self.batch_size > 4096 {
            bad("batch_size", "must be between 1 and 4096");
        }
        if self.grad_accum == 0 || self.grad_accum > 4096 {
            bad("grad_accum", "must be between 1 and 4096");
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            bad("lr", "must be a number in (0, 1)");
        }
        if !(self.warmup_ratio.is_finite() && (0.0..=1.0).contains(&self.warmup_ratio)) {
            bad("warmup_ratio", "must be in [0, 1]");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bad("weight_decay", "must be a non-negative number");
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            bad(
                "max_grad_norm",
                "must be a non-negative number (0 disables clipping)",
            );
        }
        if self.max_length < 8 || self.max_length > 8192 {
            bad("max_length", "must be between 8 and 8192");
        }
        if self.teacher_max_length < 64 || self.teacher_max_length > 32768 {
            bad("teacher_max_length", "must be between 64 and 32768");
        }
        if !matches!(self.prompt.as_str(), "official" | "seed-compat") {
            bad("prompt", "must be official or seed-compat");
        }
        if self.instruction.trim().is_empty() {
            bad("instruction", "must not be empty");
        }
        if self.at_k == 0 || self.at_k > 1000 {
            bad("at_k", "must be between 1 and 1000");
        }
        if self.teacher_shards == 0 || self.teacher_shards > MAX_TEACHER_SHARDS {
            bad("teacher_shards", "must be between 1 and 256");
        }
        let effective = u64::from(self.batch_size) * u64::from(self.grad_accum);
        if self.micro_batch > 4096
            || (self.micro_batch > 0 && effective % u64::from(self.micro_batch) != 0)
        {
            bad(
                "micro_batch",
                "must be 0 (automatic) or divide batch_size × grad_accum, at most 4096",
            );
        }
        if !matches!(self.eval_dtype.as_str(), "auto" | "f32" | "bf16") {
            bad("eval_dtype", "must be auto, f32 or bf16");
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The config as flat `(field, value)` pairs, in declaration order, for CSV and diffs.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("teacher_kind", self.teacher_kind.clone()),
            ("teacher", self.teacher.clone()),
            ("student", self.student.clone()),
            ("train_data", self.train_data.clone()),
            ("test_data", self.test_data.clone()),
            ("top_k", self.top_k.to_string()),
            ("num_negatives", self.num_negatives.to_string()),
            ("sampling", self.sampling.clone()),
            ("epochs", self.epochs.to_string()),
            ("batch_size", self.batch_size.to_string()),
            ("grad_accum", self.grad_accum.to_string()),
            ("lr", self.lr.to_string()),
            ("warmup_ratio", self.warmup_ratio.to_string()),
            ("weight_decay", self.weight_decay.to_string()),
            ("max_grad_norm", self.max_grad_norm.to_string()),
            ("max_length", self.max_length.to_string()),
            ("teacher_max_length", self.teacher_max_length.to_string()),
            ("prompt", self.prompt.clone()),
            ("instruction", self.instruction.clone()),
            ("seed", self.seed.to_string()),
            ("bf16", self.bf16.to_string()),
            ("at_k", self.at_k.to_string()),
            ("teacher_shards", self.teacher_shards.to_string()),
            ("micro_batch", self.micro_batch.to_string()),
            ("sort_by_length", self.sort_by_length.to_string()),
            ("eval_dtype", self.eval_dtype.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> RunConfig {
        RunConfig {
            teacher: "/models/qwen3".into(),
            student: "/models/bge".into(),
            train_data: "train.jsonl.gz".into(),
            test_data: "test.jsonl.gz".into(),
            ..RunConfig::default()
        }
    }

    #[test]
    fn defaults_are_the_reference_hyper_parameters() {
        let c = RunConfig::default();
        assert_eq!((c.top_k, c.num_negatives), (8, 4));
        assert_eq!((c.batch_size, c.grad_accum, c.epochs), (16, 32, 1));
        assert_eq!((c.lr, c.warmup_ratio, c.seed), (2e-5, 0.05, 42));
        assert_eq!(c.prompt, "official");
        assert!(filled().validate().is_ok());
    }

    #[test]
    fn validation_names_each_bad_field() {
        let c = RunConfig {
            lr: f64::NAN,
            top_k: 0,
            prompt: "chat".into(),
            ..filled()
        };
        let fields: Vec<String> = c
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["top_k", "lr", "prompt"]);
    }

    #[test]
    fn bm25_teacher_needs_no_directory() {
        let c = RunConfig {
            teacher_kind: "bm25".into(),
            teacher: String::new(),
            ..filled()
        };
        assert!(c.validate().is_ok());
    }

    #[test]
    fn partial_json_takes_defaults_and_unknown_fields_fail() {
        let c: RunConfig = serde_json::from_str(r#"{"lr": 1e-4}"#).unwrap();
        assert_eq!(c.lr, 1e-4);
        assert_eq!(c.batch_size, 16);
        assert!(serde_json::from_str::<RunConfig>(r#"{"learning_rate": 1}"#).is_err());
        assert_eq!(
            c.teacher_shards, 1,
            "configs stored before sharding read as one shard"
        );
    }

    #[test]
    fn micro_batch_divides_the_effective_batch_and_eval_dtype_is_known() {
        for (micro, ok) in [
            (0, true),
            (128, true),
            (512, true),
            (96, false),
            (1024, false),
        ] {
            let c = RunConfig {
                micro_batch: micro,
                ..filled()
            };
            assert_eq!(c.validate().is_ok(), ok, "{micro}");
        }
        let c = RunConfig {
            eval_dtype: "fp8".into(),
            ..filled()
        };
        assert_eq!(c.validate().unwrap_err()[0].field, "eval_dtype");
    }

    #[test]
    fn teacher_shards_are_bounded() {
        for (shards, ok) in [(0, false), (1, true), (3, true), (256, true), (257, false)] {
            let c = RunConfig {
                teacher_shards: shards,
                ..filled()
            };
            assert_eq!(c.validate().is_ok(), ok, "{shards}");
        }
    }
}
