//! The teacher: Qwen3-Reranker scoring of (query, passage) pairs (spec §D, §E.3).
//!
//! Brief overview: [`Teacher::load`] reads a Hugging Face model directory (`config.json`,
//! `model.safetensors.index.json` plus shards or a single `model.safetensors`, and
//! `tokenizer.json`), checks the special tokens and builds a [`qwen3::Qwen3Scorer`]. The shared
//! prompt prefix is run once at load and its keys and values are reused for every batch.
//! [`job`] runs a whole scoring file with resume, cache and progress; [`cache`] holds scores by
//! content hash; [`new_model`] writes random-weight checkpoints for tests and benchmarks.

pub mod bm25;
pub mod cache;
pub mod config;
pub mod golden;
pub mod job;
pub mod new_model;
pub mod ops;
pub mod prompt;
pub mod qwen3;
pub mod reuse;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::{Error, Result};
use prompt::{PromptBuilder, PromptVariant, SpecialTokens};
use qwen3::{Config, PrefixKv, Qwen3Scorer};

/// How a teacher scores: prompt, truncation, precision and device.
#[derive(Debug, Clone)]
pub struct TeacherOptions {
    pub prompt: PromptVariant,
    pub instruction: String,
    pub max_length: usize,
    pub dtype: DType,
    pub device: Device,
}

impl Default for TeacherOptions {
    fn default() -> Self {
        TeacherOptions {
            prompt: PromptVariant::Official,
            instruction: prompt::DEFAULT_INSTRUCTION.to_string(),
            max_length: prompt::DEFAULT_MAX_LENGTH,
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }
}

/// Parses `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        _ => Err(Error::Other(format!(
            "unknown dtype {s:?}: use f32, bf16 or f16"
        ))),
    }
}

/// How scoring batches are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// At most this many padded tokens per batch, not counting the shared prefix.
    Tokens(usize),
    /// At most this many pairs per batch.
    Size(usize),
}

/// Groups sequence indices into length-bucketed batches: indices are sorted by length and packed
/// greedily, so padding stays small. A sequence longer than a token budget gets its own batch.
pub fn plan_batches(lengths: &[usize], batching: Batching) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        let fits = match batching {
            // Sorted ascending, so the newest sequence is the batch's longest.
            Batching::Tokens(budget) => (current.len() + 1) * lengths[i] <= budget,
            Batching::Size(n) => current.len() < n.max(1),
        };
        if !fits && !current.is_empty() {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// A loaded teacher model with its prompt builder and precomputed prefix.
pub struct Teacher {
    model: Qwen3Scorer,
    prompt: PromptBuilder,
    prefix_kv: PrefixKv,
    identity: String,
    options: TeacherOptions,
}

impl Teacher {
    /// Loads the model directory `dir` and checks its tokenizer.
    pub fn load(dir: &Path, options: TeacherOptions) -> Result<Teacher> {
        let config_path = dir.join("config.json");
        let config_bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let cfg = Config::parse(&config_path, &config_bytes)?;
        tracing::debug!(
            declared = cfg.dtype.as_deref().unwrap_or("none"),
            compute = dtype_name(options.dtype),
            rope_theta = cfg.rope_theta,
            "teacher config"
        );
        let tokenizer = load_tokenizer(&dir.join("tokenizer.json"))?;
        let special = SpecialTokens::check(&tokenizer)?;
        for (name, id) in [("yes", special.yes), ("no", special.no)] {
            if id as usize >= cfg.vocab_size {
                return Err(Error::Model {
                    path: config_path.clone(),
                    message: format!(
                        "token {name:?} = {id} is outside vocab_size {}",
                        cfg.vocab_size
                    ),
                });
            }
        }
        let shards = shard_paths(dir)?;
        let identity = identity_hash(&config_bytes, &shards)?;
        // SAFETY: the files are memory-mapped read-only; the caller must not modify them while
        // the teacher is loaded (the usual contract of candle's mmaped loading).
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&shards)? };
        let head = if cfg.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        };
        let score_weight = score_rows(&st, head, &cfg, special).map_err(|e| Error::Model {
            path: dir.to_path_buf(),
            message: format!("{head}: {e}"),
        })?;
        let vb = VarBuilder::from_backend(Box::new(st), options.dtype, options.device.clone());
        let model = Qwen3Scorer::load(&cfg, vb, score_weight).map_err(|e| Error::Model {
            path: dir.to_path_buf(),
            message: format!("cannot load Qwen3 weights: {e}"),
        })?;
        let prompt = PromptBuilder::new(
            tokenizer,
            options.prompt,
            &options.instruction,
            options.max_length,
        )?;
        let prefix_kv = model.prefix(prompt.shared_ids())?;
        Ok(Teacher {
            model,
            prompt,
            prefix_kv,
            identity,
            options,
        })
    }

    /// Hex SHA-256 of `config.json` and every shard's safetensors header.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The options the teacher was loaded with.
    pub fn options(&self) -> &TeacherOptions {
        &self.options
    }

    /// The prompt builder (tokenizer and fixed ids).
    pub fn prompt(&self) -> &PromptBuilder {
        &self.prompt
    }

    /// The cache setting of this teacher's scores.
    pub fn setting(&self) -> cache::ScoreSetting {
        cache::ScoreSetting {
            teacher: self.identity.clone(),
            prompt: self.options.prompt.to_string(),
            instruction: self.options.instruction.clone(),
            max_length: self.options.max_length,
            dtype: dtype_name(self.options.dtype).to_string(),
        }
    }

    /// Prompt ids of a pair after the shared prefix (what [`Teacher::score_encoded`] takes).
    pub fn encode_pair(&self, query: &str, passage: &str) -> Result<Vec<u32>> {
        self.prompt.build_rest(query, passage)
    }

    /// Scores sequences from [`Teacher::encode_pair`] in one batch, reusing the prefix's KV.
    pub fn score_encoded(&self, rests: &[&[u32]]) -> Result<Vec<f32>> {
        Ok(self.model.score_batch(Some(&self.prefix_kv), rests)?)
    }

    /// Scores full prompt sequences in one batch without prefix reuse (for checks).
    pub fn score_full(&self, prompts: &[&[u32]]) -> Result<Vec<f32>> {
        Ok(self.model.score_batch(None, prompts)?)
    }

    /// Per pair, how many of its prompt tokens (after the shared prefix) belong to its query's
    /// segment: the tokens it shares with the query's document-independent part (the common run
    /// of two probe prompts of the query). It depends on the pair alone, never on which other
    /// pairs are scored with it, so a window, a shard or a resume splits pairs the same way.
    pub fn segment_lengths(
        &self,
        pairs: &[(&str, &str)],
        rests: &[Vec<u32>],
    ) -> Result<Vec<usize>> {
        let mut probe: std::collections::HashMap<&str, Vec<u32>> = Default::default();
        let mut out = Vec::with_capacity(pairs.len());
        for ((q, _), rest) in pairs.iter().zip(rests) {
            if !probe.contains_key(q) {
                let a = self.encode_pair(q, "alpha")?;
                let b = self.encode_pair(q, "omega")?;
                let n = reuse::common_prefix(&a, &b);
                probe.insert(q, a[..n].to_vec());
            }
            out.push(reuse::common_prefix(rest, &probe[q]));
        }
        Ok(out)
    }

    /// Scores pairs from their [`Teacher::encode_pair`] ids with query-level reuse: each query's
    /// segment ([`Teacher::segment_lengths`]) runs once, the rest of every pair in
    /// length-bucketed batches across the queries. Returns `z_yes − z_no` in pair order.
    pub fn score_encoded_pairs(
        &self,
        pairs: &[(&str, &str)],
        rests: &[Vec<u32>],
        batching: Batching,
    ) -> Result<Vec<f32>> {
        let seg = self.segment_lengths(pairs, rests)?;
        let queries: Vec<&str> = pairs.iter().map(|(q, _)| *q).collect();
        let split = reuse::split_at(rests, &queries, &seg);
        reuse::score_split(&self.model, Some(&self.prefix_kv), &split, batching)
    }

    /// Scores `pairs` with query-level reuse in length-bucketed batches; returns `z_yes − z_no`
    /// in pair order.
    pub fn score_pairs(&self, pairs: &[(&str, &str)], batching: Batching) -> Result<Vec<f32>> {
        let rests = pairs
            .iter()
            .map(|(q, p)| self.encode_pair(q, p))
            .collect::<Result<Vec<_>>>()?;
        self.score_encoded_pairs(pairs, &rests, batching)
    }

    /// Scores the built-in canary pairs and fails on NaN or all-equal scores.
    pub fn canary(&self) -> Result<CanaryReport> {
        let pairs: Vec<(&str, &str)> = CANARY.iter().map(|(q, p, _)| (*q, *p)).collect();
        let scores = self.score_pairs(&pairs, Batching::Size(CANARY.len()))?;
        let mut report = CanaryReport {
            relevant: Vec::new(),
            irrelevant: Vec::new(),
        };
        for ((_, _, relevant), s) in CANARY.iter().zip(scores) {
            if *relevant {
                report.relevant.push(s)
            } else {
                report.irrelevant.push(s)
            }
        }
        report.check()?;
        Ok(report)
    }
}

/// Built-in (query, passage, relevant) pairs for the fidelity canary.
const CANARY: [(&str, &str, bool); 6] = [
    (
        "How do I reverse a list in Python?",
        "Use list.reverse() to reverse a Python list in place, or reversed(lst) for an iterator.",
        true,
    ),
    (
        "How do I reverse a list in Python?",
        "The best chocolate cake needs butter, sugar, eggs and dark cocoa.",
        false,
    ),
    (
        "Convert a String to an int in Java",
        "Integer.parseInt(s) converts a Java String to an int.",
        true,
    ),
    (
        "Convert a String to an int in Java",
        "The Eiffel Tower is 330 metres tall and stands in Paris.",
        false,
    ),
    (
        "How to deep clone an object in JavaScript?",
        "structuredClone(obj) makes a deep copy of a JavaScript object.",
        true,
    ),
    (
        "How to deep clone an object in JavaScript?",
        "Tomatoes grow best in warm weather with plenty of sun.",
        false,
    ),
];

/// Canary scores, split by whether the passage is relevant.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryReport {
    pub relevant: Vec<f32>,
    pub irrelevant: Vec<f32>,
}

impl CanaryReport {
    /// Fails if any score is not finite or all scores are equal (a broken teacher).
    pub fn check(&self) -> Result<()> {
        let all: Vec<f32> = self
            .relevant
            .iter()
            .chain(&self.irrelevant)
            .copied()
            .collect();
        if let Some(bad) = all.iter().find(|s| !s.is_finite()) {
            return Err(Error::Other(format!(
                "teacher canary failed: a built-in pair scored {bad}; the weights or dtype are \
                 broken (try --dtype f32), refusing to start a long job"
            )));
        }
        if all.windows(2).all(|w| w[0] == w[1]) {
            return Err(Error::Other(format!(
                "teacher canary failed: every built-in pair scored {:?}; the prompt or weights \
                 are broken (e.g. a chat template that empties the fields)",
                all.first()
            )));
        }
        Ok(())
    }

    /// Whether relevant pairs outscore irrelevant ones on average (expected of a trained model).
    pub fn separates(&self) -> bool {
        mean(&self.relevant) > mean(&self.irrelevant)
    }
}

fn mean(xs: &[f32]) -> f32 {
    xs.iter().sum::<f32>() / xs.len().max(1) as f32
}

/// The name of a dtype as used in cache keys and CLI flags.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        DType::F32 => "f32",
        _ => "other",
    }
}

/// Loads a `tokenizer.json`, with an error naming the file.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Model {
        path: path.to_path_buf(),
        message: format!("cannot load tokenizer: {e}"),
    })
}

/// The safetensors files of a model directory: the shards named by
/// `model.safetensors.index.json` (sorted, deduplicated), or `model.safetensors`.
pub fn shard_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        let single = dir.join("model.safetensors");
        if !single.exists() {
            return Err(Error::Model {
                path: dir.to_path_buf(),
                message: "neither model.safetensors.index.json nor model.safetensors exists".into(),
            });
        }
        return Ok(vec![single]);
    }
    let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(&index, e.line(), "weight_map", e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::input(&index, 1, "weight_map", "missing or not an object"))?;
    let mut files: Vec<&str> = Vec::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| Error::input(&index, 1, format!("weight_map.{name}"), "not a string"))?;
        files.push(file);
    }
    files.sort_unstable();
    files.dedup();
    Ok(files.into_iter().map(|f| dir.join(f)).collect())
}

/// Hex SHA-256 over the config bytes and each shard's name, safetensors header and content
/// hash (remembered per file stamp by [`crate::pipeline::identity`], so a runner reads the
/// weights once): two checkpoints of one architecture never share an identity, nor cached
/// scores.
fn identity_hash(config: &[u8], shards: &[PathBuf]) -> Result<String> {
    use std::io::Read;
    let mut h = Sha256::new();
    h.update(config);
    for path in shards {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len).map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(len);
        if n > 100 << 20 {
            return Err(Error::Model {
                path: path.clone(),
                message: format!("safetensors header of {n} bytes is implausible"),
            });
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header).map_err(|e| Error::io(path, e))?;
        if let Some(name) = path.file_name() {
            h.update(name.as_encoded_bytes());
        }
        h.update(len);
        h.update(&header);
        h.update(crate::pipeline::manifest::hash_path(path)?.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// `head[yes] − head[no]` in f32, read from the two rows only.
fn score_rows(
    st: &candle_core::safetensors::MmapedSafetensors,
    name: &str,
    cfg: &Config,
    special: SpecialTokens,
) -> candle_core::Result<Tensor> {
    let view = st.get(name)?;
    let dtype = DType::try_from(view.dtype())?;
    if view.shape() != [cfg.vocab_size, cfg.hidden_size] {
        candle_core::bail!(
            "shape {:?}, expected [{}, {}]",
            view.shape(),
            cfg.vocab_size,
            cfg.hidden_size
        );
    }
    let row_bytes = cfg.hidden_size * dtype.size_in_bytes();
    let row = |id: u32| -> candle_core::Result<Tensor> {
        let start = id as usize * row_bytes;
        let bytes = &view.data()[start..start + row_bytes];
        Tensor::from_raw_buffer(bytes, dtype, &[cfg.hidden_size], &Device::Cpu)?
            .to_dtype(DType::F32)
    };
    row(special.yes)? - row(special.no)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_length_sorted_and_respect_budgets() {
        let lengths = [5, 1, 9, 3, 3, 20];
        let by_size = plan_batches(&lengths, Batching::Size(2));
        assert_eq!(by_size, vec![vec![1, 3], vec![4, 0], vec![2, 5]]);
        let by_tokens = plan_batches(&lengths, Batching::Tokens(10));
        assert_eq!(by_tokens, vec![vec![1, 3, 4], vec![0], vec![2], vec![5]]);
        for batch in &by_tokens {
            let longest = batch.iter().map(|&i| lengths[i]).max().unwrap();
            assert!(batch.len() == 1 || batch.len() * longest <= 10);
        }
        let mut all: Vec<usize> = by_tokens.concat();
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn dtypes_parse() {
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        assert_eq!(dtype_name(parse_dtype("f16").unwrap()), "f16");
        assert!(parse_dtype("f64").is_err());
    }
}
