//! The packed bf16 inference path ([`super::infer`]) against the padded one, on the device: the
//! whole model at the real width, batches whose lengths hit the attention kernel's edges.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::check::{id_rows, random_model, rel_err, CheckRow};
use super::infer::{self, MAX_LEN};
use crate::student::encode::pad_batch;
use crate::student::ops::Mode;
use crate::student::xlm_roberta::{Config, XLMRobertaForSequenceClassification};

/// Logits of `model` on `rows` with the packed path on or off.
fn logits(
    model: &XLMRobertaForSequenceClassification,
    rows: &[Vec<u32>],
    packed: bool,
    dev: &Device,
) -> Result<Tensor> {
    let batch = pad_batch(rows, 1, dev).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    infer::set_packed(packed);
    let out = model.forward(
        &batch.input_ids,
        &batch.position_ids,
        &batch.attention_mask,
        Mode::Eval,
    );
    infer::set_packed(true);
    out
}

/// Packed against padded logits (both bf16, fused) and against the f32 padded model, for
/// lengths 1 … [`MAX_LEN`]; a batch with one sequence over [`MAX_LEN`] must fall back to the
/// padded path exactly.
pub(super) fn check_packed_model(dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    let cfg = Config {
        vocab_size: 1000,
        num_hidden_layers: 2,
        max_position_embeddings: 260,
        ..Config::bge_reranker_v2_m3()
    };
    let tensors: HashMap<String, Tensor> = random_model(&cfg, dev)?
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect();
    let load = |dtype: DType| {
        let vb = VarBuilder::from_tensors(tensors.clone(), DType::F32, dev);
        XLMRobertaForSequenceClassification::load_inference(vb, &cfg, dtype)
    };
    let bf16 = load(DType::BF16)?;
    let f32 = load(DType::F32)?;
    let lengths = [1, 2, 31, 32, 33, 48, 63, 64, 65, 96, 127, MAX_LEN];
    let batch = id_rows(&lengths, cfg.vocab_size as u32);
    let packed = logits(&bf16, &batch, true, dev)?;
    let padded = logits(&bf16, &batch, false, dev)?;
    let reference = logits(&f32, &batch, false, dev)?;
    let mut push = |quantity: &str, error: f64, tolerance: f64| {
        rows.push(CheckRow {
            op: "packed model[2×1024]".into(),
            dtype: DType::BF16,
            quantity: quantity.into(),
            error,
            tolerance,
        })
    };
    push("logits vs padded bf16", rel_err(&packed, &padded)?, 3e-2);
    push("logits vs padded f32", rel_err(&packed, &reference)?, 3e-2);
    push(
        "padded bf16 vs f32 (scale)",
        rel_err(&padded, &reference)?,
        3e-2,
    );
    let long = id_rows(&[40, MAX_LEN + 1], cfg.vocab_size as u32);
    let fallback = logits(&bf16, &long, true, dev)?;
    let padded_long = logits(&bf16, &long, false, dev)?;
    push(
        "fallback over MAX_LEN",
        rel_err(&fallback, &padded_long)?,
        0.0,
    );
    Ok(())
}
