//! Random-weight student models in exactly the Hugging Face layout, so tests and GPU benchmarks
//! get real-shaped models without downloads, plus a small tokenizer generated in code.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokenizers::decoders::metaspace::Metaspace as MetaspaceDecoder;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::xlm_roberta::Config;
use super::{save_weights, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::io::AtomicFile;
use crate::{Error, Result};

/// The activation `CrossEncoder` applies on `predict`, recorded in `config.json`.
pub const SIGMOID_ACTIVATION: &str = "torch.nn.modules.activation.Sigmoid";

/// Special tokens in the XLM-R layout: `<s>=0 <pad>=1 </s>=2 <unk>=3`; `<mask>` comes last.
const SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// Frequent words of the test and benchmark texts, kept whole by the tiny tokenizer.
pub const WORDS: &[&str] = &[
    "the", "a", "to", "of", "in", "and", "is", "how", "what", "why", "with", "for", "on", "from",
    "python", "java", "rust", "code", "error", "file", "list", "string", "function", "class",
    "value", "array", "data", "server", "query", "passage", "question", "answer", "not", "can",
    "do", "use", "get", "set", "an", "i", "it", "my", "this", "that", "when", "type", "int",
    "test", "run", "make", "new", "add", "object", "method", "return", "null", "text", "line",
    "number", "time", "date", "convert", "into", "by", "or", "are", "be", "using", "between",
];

/// Builds the tiny project tokenizer: a SentencePiece-style Unigram model over characters,
/// lowercase bigrams and [`WORDS`], with Metaspace pre-tokenization and the XLM-R pair template.
pub fn tiny_tokenizer() -> Result<Tokenizer> {
    let mut vocab: Vec<(String, f64)> = SPECIALS.iter().map(|s| (s.to_string(), 0.0)).collect();
    vocab.push(("▁".into(), -2.0));
    let chars: Vec<char> = (33u8..127).map(char::from).collect();
    for &c in &chars {
        vocab.push((c.to_string(), -8.0));
        vocab.push((format!("▁{c}"), -7.0));
    }
    for a in 'a'..='z' {
        for b in 'a'..='z' {
            vocab.push((format!("{a}{b}"), -9.0));
        }
    }
    for w in WORDS.iter().filter(|w| w.len() > 1) {
        vocab.push((format!("▁{w}"), -6.0));
    }
    vocab.push(("<mask>".into(), 0.0));
    let model = Unigram::from(vocab, Some(3), false)
        .map_err(|e| Error::Other(format!("building the tiny tokenizer: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(NFKC));
    tokenizer.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
    tokenizer.with_decoder(Some(MetaspaceDecoder::new(
        '▁',
        PrependScheme::Always,
        true,
    )));
    let processor = RobertaProcessing::new(("</s>".into(), 2), ("<s>".into(), 0))
        .trim_offsets(false)
        .add_prefix_space(true);
    tokenizer.with_post_processor(Some(processor));
    let specials: Vec<AddedToken> = SPECIALS
        .iter()
        .chain(["<mask>"].iter())
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    Ok(tokenizer)
}

/// Which model `new-model` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Hidden 32, 2 layers, the tiny tokenizer's vocabulary.
    Tiny,
    /// `BAAI/bge-reranker-v2-m3` shapes (568M parameters).
    BgeRerankerV2M3,
}

impl Preset {
    /// The configuration of this preset; `tiny_vocab` is the tiny tokenizer's vocabulary size.
    pub fn config(self, tiny_vocab: usize) -> Config {
        match self {
            Preset::Tiny => Config::tiny(tiny_vocab),
            Preset::BgeRerankerV2M3 => Config::bge_reranker_v2_m3(),
        }
    }
}

fn normal(rng: &mut StdRng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // Box–Muller: two independent standard normals per pair of uniforms.
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let theta = std::f64::consts::TAU * u2;
        out.push((r * theta.cos()) as f32);
        out.push((r * theta.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// HF `_init_weights`: normal(0, `initializer_range`) for dense and embedding weights (padding rows zero),
/// zeros for biases, ones for LayerNorm weights. Seeded and deterministic.
pub fn random_weights(cfg: &Config, seed: u64) -> Result<HashMap<String, Tensor>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = HashMap::new();
    for (name, shape) in cfg.expected_tensors() {
        let n: usize = shape.iter().product();
        let values = if name.contains("LayerNorm.weight") {
            vec![1f32; n]
        } else if name.ends_with(".bias") {
            vec![0f32; n]
        } else {
            let mut v = normal(&mut rng, n, cfg.initializer_range);
            let padded = name.ends_with("word_embeddings.weight")
                || name.ends_with("position_embeddings.weight");
            if padded {
                let (h, row) = (shape[1], cfg.pad_token_id as usize);
                v[row * h..(row + 1) * h].fill(0.0);
            }
            v
        };
        out.insert(name, Tensor::from_vec(values, shape, &Device::Cpu)?);
    }
    Ok(out)
}

/// The `config.json` of `cfg` as HF writes it, plus `extra` keys (e.g. `sentence_transformers`).
/// The weights' dtype goes under `torch_dtype`, which transformers 4.x and 5.x both read (4.x
/// ignores 5.x's `dtype`); XLM-R has no RoPE keys to choose a form for.
pub fn config_json(cfg: &Config) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(cfg).map_err(|e| Error::Other(format!("config: {e}")))?;
    if let Some(map) = json.as_object_mut() {
        crate::hf_config::set_export_dtype(map, "float32");
        map.insert("use_cache".into(), true.into());
        map.insert(
            "sentence_transformers".into(),
            serde_json::json!({ "activation_fn": SIGMOID_ACTIVATION }),
        );
        if cfg.id2label.is_none() {
            map.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
        }
        map.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
    }
    Ok(json)
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let mut file = AtomicFile::create(path)?;
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Other(e.to_string()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| Error::io(path, e))?;
    file.commit()
}

/// `tokenizer_config.json` and `special_tokens_map.json` for an XLM-R-layout tokenizer.
pub fn write_tokenizer_configs(dir: &Path, model_max_length: usize) -> Result<()> {
    let specials = serde_json::json!({
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    });
    let mut config = specials.clone();
    if let Some(map) = config.as_object_mut() {
        map.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        map.insert("model_max_length".into(), model_max_length.into());
        map.insert("padding_side".into(), "right".into());
        map.insert("truncation_side".into(), "right".into());
        map.insert("clean_up_tokenization_spaces".into(), true.into());
    }
    write_json(&dir.join("special_tokens_map.json"), &specials)?;
    write_json(&dir.join("tokenizer_config.json"), &config)
}

/// Writes a random-weight model of `preset` to `out` in the HF layout. The tokenizer is
/// `tokenizer_file` if given, else (tiny only) the generated tiny tokenizer.
pub fn write_new_model(
    preset: Preset,
    out: &Path,
    tokenizer_file: Option<&Path>,
    seed: u64,
) -> Result<Config> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let tiny = tiny_tokenizer()?;
    let cfg = preset.config(tiny.get_vocab_size(true));
    let model_max_length = cfg.max_position_embeddings - cfg.pad_token_id as usize - 1;
    match tokenizer_file {
        Some(src) => copy_tokenizer(src, out, model_max_length)?,
        None if preset == Preset::Tiny => {
            let path = out.join(TOKENIZER_FILE);
            tiny.save(&path, true)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
            write_tokenizer_configs(out, model_max_length)?;
        }
        None => tracing::warn!(
            "no --tokenizer given: {} has no tokenizer.json",
            out.display()
        ),
    }
    write_json(&out.join(CONFIG_FILE), &config_json(&cfg)?)?;
    save_weights(&random_weights(&cfg, seed)?, &out.join(WEIGHTS_FILE))?;
    Ok(cfg)
}

/// Copies a `tokenizer.json` (and the `tokenizer_config.json` / `special_tokens_map.json` beside
/// it, when present) into `out`.
pub fn copy_tokenizer(src: &Path, out: &Path, model_max_length: usize) -> Result<()> {
    let copy = |from: &Path, name: &str| -> Result<()> {
        let to = out.join(name);
        if from != to {
            std::fs::copy(from, &to).map_err(|e| Error::io(from, e))?;
        }
        Ok(())
    };
    copy(src, TOKENIZER_FILE)?;
    let dir = src.parent().unwrap_or(Path::new("."));
    let siblings = ["tokenizer_config.json", "special_tokens_map.json"];
    if siblings.iter().all(|s| dir.join(s).is_file()) {
        siblings.iter().try_for_each(|s| copy(&dir.join(s), s))
    } else {
        write_tokenizer_configs(out, model_max_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_tokenizer_has_xlmr_layout_and_pair_template() {
        let tok = tiny_tokenizer().unwrap();
        for (i, s) in SPECIALS.iter().enumerate() {
            assert_eq!(tok.token_to_id(s), Some(i as u32));
        }
        let vocab = tok.get_vocab_size(true);
        assert!((900..1100).contains(&vocab), "{vocab}");
        assert_eq!(tok.token_to_id("<mask>"), Some(vocab as u32 - 1));
        let enc = tok
            .encode(("how to sort a list", "python list sort"), true)
            .unwrap();
        let ids = enc.get_ids();
        assert_eq!(ids[0], 0);
        assert_eq!(*ids.last().unwrap(), 2);
        assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 3, "{ids:?}");
        assert!(
            ids.iter().all(|&i| i != 3),
            "no unknowns in plain ASCII: {ids:?}"
        );
    }

    #[test]
    fn random_weights_are_seeded_with_hf_init() {
        let cfg = Config {
            initializer_range: 0.02,
            ..Config::tiny(1000)
        };
        let a = random_weights(&cfg, 1).unwrap();
        let b = random_weights(&cfg, 1).unwrap();
        let name = "roberta.encoder.layer.0.attention.self.query.weight";
        assert_eq!(
            a[name].to_vec2::<f32>().unwrap(),
            b[name].to_vec2::<f32>().unwrap()
        );
        let std = a[name]
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt();
        assert!((std - 0.02).abs() < 0.003, "{std}");
        let pad_row = a["roberta.embeddings.word_embeddings.weight"]
            .get(1)
            .unwrap();
        assert_eq!(
            pad_row
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
        assert_eq!(a.len(), cfg.expected_tensors().len());
    }
}
