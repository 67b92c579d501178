//! The packed (padding-free) bf16 evaluation forward on CUDA, after text-embeddings-inference:
//! the real tokens of a batch are the rows of one `[T, hidden]` matrix, so no GEMM, LayerNorm or
//! attention works on padding. Per layer: one fused QKV GEMM, one attention kernel straight off
//! its output, `LN(dense + bias + residual)` in one kernel, bias + GELU in one kernel; the
//! residual stream stays bf16 (as PyTorch's bf16 model). Rows of real tokens get the same
//! values as the padded forward, whose padded keys are masked (up to bf16 rounding).
//!
//! Used only by [`XLMRobertaForSequenceClassification::forward`] in [`Mode::Eval`] for models
//! loaded with [`XLMRobertaForSequenceClassification::load_inference`] in bf16 on CUDA, when
//! every sequence is right-padded and at most [`infer::MAX_LEN`] tokens long; otherwise the
//! padded path runs.

use candle_core::{DType, Device, Module, Tensor};

use super::packing::PackedBatch;
use super::{
    Config, XLMRobertaEmbeddings, XLMRobertaForSequenceClassification, XLMRobertaLayer,
    XLMRobertaOutput,
};
use crate::kernels::infer;

/// The weights of one layer in the packed forward's layout.
struct PackedLayer {
    /// `[query; key; value]` weights, `[3·hidden, hidden]` bf16.
    qkv_weight: Tensor,
    /// Their biases, `[3·hidden]` f32.
    qkv_bias: Tensor,
    /// The intermediate dense layer's bias, f32.
    intermediate_bias: Tensor,
    /// `[bias | gamma | beta]` of the attention output's dense layer and LayerNorm.
    attention_output: Tensor,
    /// `[bias | gamma | beta]` of the feed-forward output's dense layer and LayerNorm.
    output: Tensor,
}

/// The packed forward's extra weights (the dense weights themselves are shared).
pub(super) struct Packed {
    layers: Vec<PackedLayer>,
    /// `[gamma | beta]` of the embeddings' LayerNorm.
    embeddings: Tensor,
    heads: usize,
}

fn output_params(o: &XLMRobertaOutput) -> candle_core::Result<Tensor> {
    Tensor::cat(
        &[&o.dense.bias, &o.layer_norm.weight, &o.layer_norm.bias],
        0,
    )?
    .to_dtype(DType::F32)
}

impl Packed {
    /// Builds the packed weights when the model qualifies: bf16 compute, precast weights on CUDA,
    /// heads the attention kernel takes.
    pub(super) fn build(
        embeddings: &XLMRobertaEmbeddings,
        layers: &[XLMRobertaLayer],
        cfg: &Config,
        compute: DType,
        device: &Device,
    ) -> candle_core::Result<Option<Packed>> {
        let (heads, hidden) = (cfg.num_attention_heads, cfg.hidden_size);
        if compute != DType::BF16
            || !device.is_cuda()
            || !infer::supports(hidden, heads, cfg.intermediate_size)
        {
            return Ok(None);
        }
        let layers = layers
            .iter()
            .map(|l| {
                let a = &l.attention;
                Ok(PackedLayer {
                    qkv_weight: Tensor::cat(&[&a.query.weight, &a.key.weight, &a.value.weight], 0)?
                        .to_dtype(DType::BF16)?,
                    qkv_bias: Tensor::cat(&[&a.query.bias, &a.key.bias, &a.value.bias], 0)?
                        .to_dtype(DType::F32)?,
                    intermediate_bias: l.intermediate.bias.to_dtype(DType::F32)?,
                    attention_output: output_params(&l.attention_output)?,
                    output: output_params(&l.output)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let ln = &embeddings.layer_norm;
        let embeddings = Tensor::cat(&[&ln.weight, &ln.bias], 0)?.to_dtype(DType::F32)?;
        Ok(Some(Packed {
            layers,
            embeddings,
            heads,
        }))
    }

    /// Logits `[B]`, or `None` when the batch does not qualify (a sequence longer than
    /// [`infer::MAX_LEN`], or a mask that is not a run of ones followed by zeros).
    pub(super) fn forward(
        &self,
        model: &XLMRobertaForSequenceClassification,
        input_ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(batch) = PackedBatch::of(attention_mask)? else {
            tracing::warn!(
                "a batch does not fit the packed bf16 path (a sequence over {} tokens): it runs \
                 on the slower padded path",
                super::packing::MAX_LEN
            );
            return Ok(None);
        };
        let device = input_ids.device();
        let sequences = batch.sequences();
        // Sequence b's `<s>` is packed row offsets[b]: the classifier's input rows.
        let firsts = Tensor::new(&batch.offsets[..sequences], device)?;
        let cu = Tensor::new(batch.offsets.as_slice(), device)?;
        let rows = Tensor::new(batch.rows.as_slice(), device)?;
        let ids = input_ids.flatten_all()?.index_select(&rows, 0)?;
        let positions = position_ids.flatten_all()?.index_select(&rows, 0)?;
        let e = &model.embeddings;
        let xs = (e.word_embeddings.forward(&ids)? + e.position_embeddings.forward(&positions)?)?
            .broadcast_add(&e.token_type_row)?;
        let eps = e.layer_norm.eps;
        let mut xs = infer::layer_norm_to_bf16(&xs, &self.embeddings, eps)?;
        for (layer, packed) in model.layers.iter().zip(&self.layers) {
            xs = self.layer(layer, packed, &xs, &cu, batch.max_len)?;
        }
        let cls = xs.index_select(&firsts, 0)?;
        let head = &model.classifier;
        let hidden = head.dense.forward(&cls, DType::BF16)?.tanh()?;
        let logits = head.out_proj.forward(&hidden, DType::BF16)?;
        Ok(Some(logits.reshape(sequences)?))
    }

    fn layer(
        &self,
        layer: &XLMRobertaLayer,
        packed: &PackedLayer,
        xs: &Tensor,
        cu: &Tensor,
        max_len: usize,
    ) -> candle_core::Result<Tensor> {
        let qkv = xs.matmul(&packed.qkv_weight.t()?)?;
        let ctx = infer::packed_attention(&qkv, &packed.qkv_bias, cu, self.heads, max_len)?;
        let out = &layer.attention_output;
        let a = infer::bias_residual_layer_norm(
            &out.dense.matmul(&ctx, DType::BF16)?,
            xs,
            &packed.attention_output,
            out.layer_norm.eps,
        )?;
        let i = infer::bias_gelu(
            &layer.intermediate.matmul(&a, DType::BF16)?,
            &packed.intermediate_bias,
        )?;
        let out = &layer.output;
        infer::bias_residual_layer_norm(
            &out.dense.matmul(&i, DType::BF16)?,
            &a,
            &packed.output,
            out.layer_norm.eps,
        )
    }
}
