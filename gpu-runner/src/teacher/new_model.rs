//! Random-weight Qwen3-Reranker checkpoints in the Hugging Face sharded layout, for tests and
//! GPU benchmarks: `config.json`, `model.safetensors.index.json`, `model-0000i-of-0000n`
//! shards and a copy of `tokenizer.json`.
//!
//! Weights are a pure function of the preset, the tensor name and the seed, so the same call
//! always writes the same files (the parity goldens rely on it).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use super::qwen3::Config;
use crate::{Error, Result};

/// The model shapes `new-model` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Two layers, hidden size 32, the real vocabulary: CPU tests in seconds.
    Tiny,
    /// The shapes of Qwen3-Reranker-0.6B (tied embeddings), bf16.
    Qwen3Reranker0_6b,
    /// The shapes of Qwen3-Reranker-8B, bf16.
    Qwen3Reranker8b,
}

impl FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Preset::Tiny),
            "qwen3-reranker-0.6b" => Ok(Preset::Qwen3Reranker0_6b),
            "qwen3-reranker-8b" => Ok(Preset::Qwen3Reranker8b),
            _ => Err(format!(
                "unknown preset {s:?}: use tiny, qwen3-reranker-0.6b or qwen3-reranker-8b"
            )),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Tiny => "tiny",
            Preset::Qwen3Reranker0_6b => "qwen3-reranker-0.6b",
            Preset::Qwen3Reranker8b => "qwen3-reranker-8b",
        })
    }
}

/// Size of the real Qwen3 tokenizer's vocabulary (151,643 base + 26 added ids).
const VOCAB: usize = 151_669;

impl Preset {
    /// The model config of this preset.
    pub fn config(self) -> Config {
        let (hidden, inter, layers, heads, kv, head_dim, tie) = match self {
            Preset::Tiny => (32, 64, 2, 4, 2, 16, false),
            Preset::Qwen3Reranker0_6b => (1024, 3072, 28, 16, 8, 128, true),
            Preset::Qwen3Reranker8b => (4096, 12288, 36, 32, 8, 128, false),
        };
        Config {
            vocab_size: VOCAB,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim,
            max_position_embeddings: 40_960,
            rms_norm_eps: 1e-6,
            rope_theta: 1_000_000.0,
            tie_word_embeddings: tie,
            hidden_act: "silu".into(),
            attention_bias: false,
            use_sliding_window: false,
            dtype: Some(torch_dtype_name(self.dtype()).into()),
        }
    }

    /// The storage dtype of this preset.
    pub fn dtype(self) -> DType {
        match self {
            Preset::Tiny => DType::F32,
            _ => DType::BF16,
        }
    }

    /// Upper bound on a shard's size in bytes (the tiny model gets two shards).
    fn max_shard_bytes(self) -> usize {
        match self {
            Preset::Tiny => 24 << 20,
            _ => 5 << 30,
        }
    }
}

/// One tensor to generate: name, shape and the spread of its values.
struct Spec {
    name: String,
    shape: Vec<usize>,
    init: Init,
}

#[derive(Clone, Copy)]
enum Init {
    /// Uniform with this standard deviation around zero.
    Spread(f32),
    /// `1 + U(±0.1)`, for norm weights.
    NearOne,
}

fn tensor_specs(cfg: &Config) -> Vec<Spec> {
    let (h, i, dh) = (cfg.hidden_size, cfg.intermediate_size, cfg.head_dim);
    let (nh, nkv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
    let lin = |name: String, out: usize, inp: usize| Spec {
        name,
        shape: vec![out, inp],
        init: Init::Spread(1.0 / (inp as f32).sqrt()),
    };
    let norm = |name: String, n: usize| Spec {
        name,
        shape: vec![n],
        init: Init::NearOne,
    };
    let mut specs = vec![Spec {
        name: "model.embed_tokens.weight".into(),
        shape: vec![cfg.vocab_size, h],
        init: Init::Spread(1.0),
    }];
    for l in 0..cfg.num_hidden_layers {
        let p = format!("model.layers.{l}");
        specs.push(norm(format!("{p}.input_layernorm.weight"), h));
        specs.push(lin(format!("{p}.self_attn.q_proj.weight"), nh * dh, h));
        specs.push(lin(format!("{p}.self_attn.k_proj.weight"), nkv * dh, h));
        specs.push(lin(format!("{p}.self_attn.v_proj.weight"), nkv * dh, h));
        specs.push(lin(format!("{p}.self_attn.o_proj.weight"), h, nh * dh));
        specs.push(norm(format!("{p}.self_attn.q_norm.weight"), dh));
        specs.push(norm(format!("{p}.self_attn.k_norm.weight"), dh));
        specs.push(norm(format!("{p}.post_attention_layernorm.weight"), h));
        specs.push(lin(format!("{p}.mlp.gate_proj.weight"), i, h));
        specs.push(lin(format!("{p}.mlp.up_proj.weight"), i, h));
        specs.push(lin(format!("{p}.mlp.down_proj.weight"), h, i));
    }
    specs.push(norm("model.norm.weight".into(), h));
    if !cfg.tie_word_embeddings {
        specs.push(lin("lm_head.weight".into(), cfg.vocab_size, h));
    }
    specs
}

/// A per-tensor seed, so values do not depend on generation order.
fn tensor_seed(seed: u64, name: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(name.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

fn generate(spec: &Spec, seed: u64, dtype: DType) -> Result<Tensor> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(tensor_seed(seed, &spec.name));
    let n: usize = spec.shape.iter().product();
    let values: Vec<f32> = match spec.init {
        // A uniform on (−a, a) has standard deviation a / √3.
        Init::Spread(std) => {
            let a = std * 3f32.sqrt();
            (0..n).map(|_| rng.random_range(-a..a)).collect()
        }
        Init::NearOne => (0..n)
            .map(|_| 1.0 + rng.random_range(-0.1f32..0.1))
            .collect(),
    };
    Ok(Tensor::from_vec(values, spec.shape.as_slice(), &Device::Cpu)?.to_dtype(dtype)?)
}

/// Writes a random-weight checkpoint of `preset` to `out`, copying `tokenizer` beside it.
pub fn write(preset: Preset, tokenizer: &Path, out: &Path, seed: u64) -> Result<()> {
    let cfg = preset.config();
    let dtype = preset.dtype();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let tok_out = out.join("tokenizer.json");
    std::fs::copy(tokenizer, &tok_out).map_err(|e| Error::io(tokenizer, e))?;
    write_config(&cfg, dtype, &out.join("config.json"))?;

    let specs = tensor_specs(&cfg);
    let shards = split_into_shards(&specs, dtype, preset.max_shard_bytes());
    let n_shards = shards.len();
    let mut weight_map = BTreeMap::new();
    let mut total_size = 0usize;
    for (idx, shard) in shards.iter().enumerate() {
        let file = format!("model-{:05}-of-{:05}.safetensors", idx + 1, n_shards);
        let mut tensors = HashMap::new();
        for spec in shard {
            let t = generate(spec, seed, dtype)?;
            total_size += t.elem_count() * dtype.size_in_bytes();
            weight_map.insert(spec.name.clone(), file.clone());
            tensors.insert(spec.name.clone(), t);
        }
        let path = out.join(&file);
        candle_core::safetensors::save(&tensors, &path).map_err(|e| Error::Model {
            path: path.clone(),
            message: format!("cannot write shard: {e}"),
        })?;
        tracing::info!(shard = %path.display(), tensors = shard.len(), "wrote shard");
    }
    let index = serde_json::json!({
        "metadata": { "total_size": total_size },
        "weight_map": weight_map,
    });
    write_json(&out.join("model.safetensors.index.json"), &index)
}

fn split_into_shards(specs: &[Spec], dtype: DType, max_bytes: usize) -> Vec<Vec<&Spec>> {
    let mut shards: Vec<Vec<&Spec>> = vec![Vec::new()];
    let mut bytes = 0usize;
    for spec in specs {
        let size = spec.shape.iter().product::<usize>() * dtype.size_in_bytes();
        if bytes + size > max_bytes && shards.last().is_some_and(|s| !s.is_empty()) {
            shards.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = shards.last_mut() {
            last.push(spec);
        }
    }
    shards
}

/// The torch name of a storage dtype.
fn torch_dtype_name(dtype: DType) -> &'static str {
    if dtype == DType::F32 {
        "float32"
    } else {
        "bfloat16"
    }
}

/// Writes `cfg` in the transformers 4.x form (top-level `rope_theta`, `rope_scaling: null`,
/// `torch_dtype`): transformers 5 reads it too, while 4.x ignores 5.x's `rope_parameters` and
/// `dtype` (it would run θ = 10,000).
fn write_config(cfg: &Config, dtype: DType, path: &Path) -> Result<()> {
    let mut json = serde_json::to_value(cfg)
        .map_err(|e| Error::Other(format!("cannot encode config: {e}")))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert(
            "architectures".into(),
            serde_json::json!(["Qwen3ForCausalLM"]),
        );
        obj.insert("model_type".into(), "qwen3".into());
        crate::hf_config::set_export_dtype(obj, torch_dtype_name(dtype));
        obj.insert("rope_scaling".into(), serde_json::Value::Null);
        obj.insert("bos_token_id".into(), 151_643.into());
        obj.insert("eos_token_id".into(), 151_645.into());
        obj.insert("attention_dropout".into(), 0.0.into());
        obj.insert("sliding_window".into(), serde_json::Value::Null);
    }
    write_json(path, &json)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Other(format!("cannot encode {}: {e}", path.display())))?;
    let mut f = crate::io::AtomicFile::create(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| Error::io(path, e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_validate() {
        for p in [
            Preset::Tiny,
            Preset::Qwen3Reranker0_6b,
            Preset::Qwen3Reranker8b,
        ] {
            assert_eq!(p.to_string().parse::<Preset>(), Ok(p));
            assert_eq!(p.config().validate(), Ok(()));
        }
        assert!("huge".parse::<Preset>().is_err());
    }

    #[test]
    fn the_8b_preset_has_the_spec_parameter_count() {
        let cfg = Preset::Qwen3Reranker8b.config();
        let n: usize = tensor_specs(&cfg)
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        // 36 layers of 4096²·2 + 1024·4096·2 + 3·4096·12288 + norms, plus two vocab matrices.
        let layer = 2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128;
        assert_eq!(n, 36 * layer + 2 * VOCAB * 4096 + 4096);
    }

    #[test]
    fn tiny_splits_into_two_shards_and_generation_is_deterministic() {
        let cfg = Preset::Tiny.config();
        let specs = tensor_specs(&cfg);
        let shards = split_into_shards(&specs, DType::F32, Preset::Tiny.max_shard_bytes());
        assert_eq!(shards.len(), 2);
        let a = generate(&specs[1], 7, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = generate(&specs[1], 7, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let c = generate(&specs[1], 8, DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
