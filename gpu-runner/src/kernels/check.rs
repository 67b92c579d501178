//! The fused kernels against the composed ops, on the device: forward values and every
//! gradient, as relative L2 errors on fresh random inputs (`gpu-runner student-parity` runs it;
//! CI has no GPU). References are computed in f32 from the same (bf16-rounded) inputs.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;

use super::adamw::{adamw_step, grad_sq_norm, AdamWScalars, AdamWTensor};
use crate::student::encode::pad_batch;
use crate::student::ops::{composed, Mode};
use crate::student::xlm_roberta::{Config, XLMRobertaForSequenceClassification};
use crate::train::adamw::{adamw_update, AdamWParams, UpdateScalars};

/// One compared quantity.
#[derive(Debug, Clone)]
pub struct CheckRow {
    /// The fused op.
    pub op: String,
    /// Its input dtype.
    pub dtype: DType,
    /// `out`, `d<input>`, or a property.
    pub quantity: String,
    /// ‖fused − reference‖ / ‖reference‖ (or the property's deviation).
    pub error: f64,
    /// The largest accepted error.
    pub tolerance: f64,
}

impl CheckRow {
    /// Finite and within tolerance.
    pub fn passed(&self) -> bool {
        self.error.is_finite() && self.error <= self.tolerance
    }
}

/// ‖a − b‖ / ‖b‖ in f64.
pub fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_dtype(DType::F64)?.flatten_all()?;
    let b = b.to_dtype(DType::F64)?.flatten_all()?;
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt();
    Ok(num / den.max(1e-30))
}

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::BF16 {
        1e-2
    } else {
        1e-5
    }
}

/// `sum(out · w)` with a random `w`, so the upstream gradient is random too.
fn weighted_sum(out: &Tensor, w: &Tensor) -> Result<Tensor> {
    (out.to_dtype(DType::F32)? * w)?.sum_all()
}

/// Runs `f` on `inputs` (Vars of `dtype`) and returns the output and each input's gradient.
fn run(
    inputs: &[Var],
    w: &Tensor,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<(Tensor, Vec<Tensor>)> {
    let ts: Vec<Tensor> = inputs.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&ts)?;
    let grads = weighted_sum(&out, w)?.backward()?;
    let g = inputs
        .iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("an input got no gradient".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, g))
}

struct Case<'a> {
    op: &'a str,
    dtype: DType,
    names: &'a [&'a str],
}

/// Compares `fused` on `inputs` with `reference` on the inputs upcast to f32.
fn compare(
    case: Case,
    inputs: Vec<Tensor>,
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
    rows: &mut Vec<CheckRow>,
) -> Result<()> {
    let vars = inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<Result<Vec<_>>>()?;
    let ref_vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_dtype(DType::F32)?))
        .collect::<Result<Vec<_>>>()?;
    let probe = fused(&inputs)?;
    let w = Tensor::randn(0f32, 1.0, probe.shape(), probe.device())?;
    let (out, grads) = run(&vars, &w, fused)?;
    let (want, want_grads) = run(&ref_vars, &w, reference)?;
    let tol = tolerance(case.dtype);
    let mut push = |quantity: String, error: f64| {
        rows.push(CheckRow {
            op: case.op.into(),
            dtype: case.dtype,
            quantity,
            error,
            tolerance: tol,
        })
    };
    push("out".into(), rel_err(&out, &want)?);
    for ((name, g), wg) in case.names.iter().zip(&grads).zip(&want_grads) {
        push(format!("d{name}"), rel_err(g, wg)?);
    }
    Ok(())
}

fn randn(shape: &[usize], mean: f32, std: f32, dtype: DType, dev: &Device) -> Result<Tensor> {
    Tensor::randn(mean, std, shape, dev)?.to_dtype(dtype)
}

/// Additive key mask `[b, l]`: row `i` masks its last `i` keys with `f32::MIN`.
fn key_mask(b: usize, l: usize, dev: &Device) -> Result<Tensor> {
    let values: Vec<f32> = (0..b)
        .flat_map(|i| (0..l).map(move |j| if j + i >= l { f32::MIN } else { 0.0 }))
        .collect();
    Tensor::from_vec(values, (b, l), dev)
}

fn check_layer_norm(dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    for d in [1024usize, 32] {
        let x = randn(&[3, 100, d], 0.5, 2.0, DType::F32, dev)?;
        let g = randn(&[d], 1.0, 0.1, DType::F32, dev)?;
        let b = randn(&[d], 0.0, 0.1, DType::F32, dev)?;
        compare(
            Case {
                op: &format!("layer_norm[d={d}]"),
                dtype: DType::F32,
                names: &["x", "gamma", "beta"],
            },
            vec![x, g, b],
            |t| super::layer_norm(&t[0], &t[1], &t[2], 1e-5),
            |t| composed::layer_norm(&t[0], &t[1], &t[2], 1e-5),
            rows,
        )?;
    }
    Ok(())
}

fn check_dtype_ops(dtype: DType, dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    let (b, h, l) = (4usize, 3usize, 20usize);
    let mask = key_mask(b, l, dev)?;
    let scale = 0.125;
    compare(
        Case {
            op: "attention_probs",
            dtype,
            names: &["scores"],
        },
        vec![randn(&[b, h, l, l], 0.0, 4.0, dtype, dev)?],
        |t| super::attention_probs(&t[0], &mask, scale, 0.0, 0),
        |t| {
            let s = (t[0].clone() * scale)?.broadcast_add(&mask.reshape((b, 1, 1, l))?)?;
            composed::softmax(&s)
        },
        rows,
    )?;
    let d = 256;
    let bias = randn(&[d], 0.0, 0.5, DType::F32, dev)?;
    compare(
        Case {
            op: "bias_gelu",
            dtype,
            names: &["x", "bias"],
        },
        vec![randn(&[2, 32, d], 0.0, 1.5, dtype, dev)?, bias.clone()],
        |t| super::bias_gelu(&t[0], &t[1]),
        |t| t[0].broadcast_add(&t[1])?.gelu_erf(),
        rows,
    )?;
    compare(
        Case {
            op: "bias_dropout_residual[p=0]",
            dtype,
            names: &["x", "bias", "residual"],
        },
        vec![
            randn(&[2, 32, d], 0.0, 1.0, dtype, dev)?,
            bias.clone(),
            randn(&[2, 32, d], 0.0, 1.0, DType::F32, dev)?,
        ],
        |t| super::bias_dropout_residual(&t[0], &t[1], &t[2], 0.0, 0),
        |t| t[0].broadcast_add(&t[1])? + &t[2],
        rows,
    )?;
    let (heads, width) = (4usize, 96usize);
    compare(
        Case {
            op: "head_split_bias",
            dtype,
            names: &["x", "bias"],
        },
        vec![
            randn(&[20, width], 0.0, 1.0, dtype, dev)?,
            randn(&[width], 0.0, 1.0, DType::F32, dev)?,
        ],
        |t| super::head_split_bias(&t[0], &t[1], 2, heads),
        |t| {
            t[0].broadcast_add(&t[1])?
                .reshape((2, 10, heads, width / heads))?
                .transpose(1, 2)
        },
        rows,
    )?;
    compare(
        Case {
            op: "head_merge",
            dtype,
            names: &["x"],
        },
        vec![randn(&[2, heads, 10, width / heads], 0.0, 1.0, dtype, dev)?],
        |t| super::head_merge(&t[0]),
        |t| t[0].transpose(1, 2)?.reshape((20, width)),
        rows,
    )
}

/// Dropout keeps `1 − p` of the elements, scales them by `1/(1 − p)`, and its backward applies
/// the same mask (the gradient of `sum(dropout(1))` equals the output).
fn check_dropout(dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    let p = 0.1;
    let x = Var::from_tensor(&Tensor::ones((1000, 1000), DType::F32, dev)?)?;
    let y = super::dropout(x.as_tensor(), p, 0x5eed)?;
    let grads = y.sum_all()?.backward()?;
    let gx = grads
        .get(x.as_tensor())
        .ok_or_else(|| candle_core::Error::Msg("dropout input got no gradient".into()))?;
    let kept = y
        .ne(0f32)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    let max = y.max_all()?.to_scalar::<f32>()?;
    let mut push = |quantity: &str, error: f64, tolerance: f64| {
        rows.push(CheckRow {
            op: "dropout[p=0.1]".into(),
            dtype: DType::F32,
            quantity: quantity.into(),
            error,
            tolerance,
        })
    };
    push("|kept − 0.9|", f64::from((kept - 0.9).abs()), 2e-3);
    push("|max − 1/0.9|", f64::from((max - 1.0 / 0.9).abs()), 1e-6);
    push("bwd mask = fwd mask", rel_err(gx, &y)?, 0.0);
    let other = super::dropout(x.as_tensor(), p, 0x5eee)?;
    let same = y
        .eq(&other)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    // Two seeds agree where both keep or both drop: 0.9² + 0.1² = 0.82.
    push(
        "other seed agrees (0.82)",
        f64::from((same - 0.82).abs()),
        5e-3,
    );
    Ok(())
}

fn check_adamw(dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    let shapes: [&[usize]; 4] = [&[3, 1001], &[7], &[64, 64], &[9000]];
    let hp = AdamWParams {
        weight_decay: 0.01,
        ..AdamWParams::default()
    };
    let params: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::randn(0f32, 1.0, *s, dev))
        .collect::<Result<_>>()?;
    let fused: Vec<Tensor> = params.iter().map(|p| p.copy()).collect::<Result<_>>()?;
    let zeros = || -> Result<Vec<Tensor>> { params.iter().map(|p| p.zeros_like()).collect() };
    let (fm, fv) = (zeros()?, zeros()?);
    let mut reference: Vec<(Tensor, Tensor, Tensor)> = params
        .iter()
        .map(|p| Ok((p.clone(), p.zeros_like()?, p.zeros_like()?)))
        .collect::<Result<_>>()?;
    let (lr, grad_scale) = (1e-2, 0.5);
    for step in 1..=3u64 {
        let grads: Vec<Tensor> = params
            .iter()
            .map(|p| Tensor::randn(0f32, 1.0, p.shape(), dev))
            .collect::<Result<_>>()?;
        let tensors: Vec<AdamWTensor> = (0..params.len())
            .map(|i| AdamWTensor {
                param: &fused[i],
                grad: &grads[i],
                m: &fm[i],
                v: &fv[i],
                weight_decay: if i % 2 == 0 { hp.weight_decay } else { 0.0 },
            })
            .collect();
        let scalars = AdamWScalars {
            lr,
            beta1: hp.beta1,
            beta2: hp.beta2,
            eps: hp.eps,
            step,
            grad_scale,
        };
        adamw_step(&tensors, &scalars)?;
        for (i, (p, m, v)) in reference.iter_mut().enumerate() {
            let s = UpdateScalars {
                lr,
                weight_decay: if i % 2 == 0 { hp.weight_decay } else { 0.0 },
                step,
            };
            let g = (&grads[i] * grad_scale)?;
            (*p, *m, *v) = adamw_update(p, &g, m, v, s, &hp)?;
        }
    }
    for (i, ((p, m, v), f)) in reference.iter().zip(&fused).enumerate() {
        for (what, got, want) in [("param", f, p), ("m", &fm[i], m), ("v", &fv[i], v)] {
            rows.push(CheckRow {
                op: "adamw_multi[3 steps]".into(),
                dtype: DType::F32,
                quantity: format!("{what} {:?}", shapes[i]),
                error: rel_err(got, want)?,
                tolerance: 1e-6,
            });
        }
    }
    let refs: Vec<&Tensor> = params.iter().collect();
    let want: f64 = params
        .iter()
        .map(|p| p.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>())
        .sum::<Result<f64>>()?;
    rows.push(CheckRow {
        op: "grad_sq_norm".into(),
        dtype: DType::F32,
        quantity: "Σg²".into(),
        error: (grad_sq_norm(&refs)? - want).abs() / want,
        tolerance: 1e-6,
    });
    check_add_into(&params, rows)
}

/// In-place gradient accumulation (`acc += g` for every tensor in one launch) against the
/// composed sum; the gradients stay untouched.
fn check_add_into(params: &[Tensor], rows: &mut Vec<CheckRow>) -> Result<()> {
    let accs: Vec<Tensor> = params.iter().map(|p| p.copy()).collect::<Result<_>>()?;
    let grads: Vec<Tensor> = params
        .iter()
        .map(|p| Tensor::randn(0f32, 1.0, p.shape(), p.device()))
        .collect::<Result<_>>()?;
    let kept: Vec<Tensor> = grads.iter().map(|g| g.copy()).collect::<Result<_>>()?;
    let pairs: Vec<(&Tensor, &Tensor)> = accs.iter().zip(&grads).collect();
    super::adamw::add_into(&pairs)?;
    for (i, p) in params.iter().enumerate() {
        let want = (p + &kept[i])?;
        let moved = rel_err(&grads[i], &kept[i])?;
        rows.push(CheckRow {
            op: "add_into_multi".into(),
            dtype: DType::F32,
            quantity: format!("acc {:?} (gradient moved {moved:.1e})", p.dims()),
            error: rel_err(&accs[i], &want)?.max(moved),
            tolerance: 1e-7,
        });
    }
    Ok(())
}

/// One row of ids per length, starting with `<s>`, the rest spread over `vocab` (deterministic).
pub(super) fn id_rows(lengths: &[usize], vocab: u32) -> Vec<Vec<u32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            (0..len as u32)
                .map(|j| {
                    if j == 0 {
                        0
                    } else {
                        5 + (i as u32 * 131 + j * 17) % (vocab - 10)
                    }
                })
                .collect()
        })
        .collect()
}

/// Random f32 weights for every tensor of `cfg` (LayerNorm gains near 1), as Vars.
pub(super) fn random_model(cfg: &Config, dev: &Device) -> Result<Vec<(String, Var)>> {
    let mut vars = Vec::new();
    for (name, shape) in cfg.expected_tensors() {
        let (mean, std) = if name.contains("LayerNorm.weight") {
            (1.0, 0.1)
        } else if name.ends_with(".bias") {
            (0.0, 0.02)
        } else {
            (0.0, 0.05)
        };
        vars.push((
            name,
            Var::from_tensor(&randn(&shape, mean, std, DType::F32, dev)?)?,
        ));
    }
    Ok(vars)
}

/// The whole model at the real width (hidden 1024, 16 heads, FFN 4096; 2 layers, 1000-token
/// vocabulary), no dropout: logits and every parameter's gradient with the fused kernels on
/// against the composed ops, in `dtype` compute with f32 master weights.
fn check_model(dtype: DType, dev: &Device, rows: &mut Vec<CheckRow>) -> Result<()> {
    let cfg = Config {
        vocab_size: 1000,
        num_hidden_layers: 2,
        max_position_embeddings: 130,
        ..Config::bge_reranker_v2_m3()
    };
    let vars = random_model(&cfg, dev)?;
    let tensors: HashMap<String, Tensor> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, dev);
    let model = XLMRobertaForSequenceClassification::load(vb, &cfg, dtype)?;
    let lengths: Vec<usize> = (0..8).map(|i| 20 + 3 * i).collect();
    let ids = id_rows(&lengths, cfg.vocab_size as u32);
    let batch = pad_batch(&ids, cfg.pad_token_id, dev)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let w = Tensor::randn(0f32, 1.0, 8, dev)?;
    let mut outputs = Vec::new();
    for fused in [true, false] {
        super::set_enabled(fused);
        let logits = model.forward(
            &batch.input_ids,
            &batch.position_ids,
            &batch.attention_mask,
            Mode::Train(None),
        );
        let result = logits.and_then(|l| {
            let grads = (&l * &w)?.sum_all()?.backward()?;
            let g = vars
                .iter()
                .map(|(_, v)| grads.get(v.as_tensor()).cloned())
                .collect::<Vec<_>>();
            Ok((l, g))
        });
        super::set_enabled(true);
        outputs.push(result?);
    }
    let (want_logits, want_grads) = outputs
        .pop()
        .ok_or_else(|| candle_core::Error::Msg("no run".into()))?;
    let (logits, grads) = outputs
        .pop()
        .ok_or_else(|| candle_core::Error::Msg("no run".into()))?;
    let tol = if dtype == DType::BF16 { 3e-2 } else { 1e-4 };
    rows.push(CheckRow {
        op: "model[2×1024]".into(),
        dtype,
        quantity: "logits".into(),
        error: rel_err(&logits, &want_logits)?,
        tolerance: tol,
    });
    let mut worst = (0f64, String::new());
    for (((name, _), g), wg) in vars.iter().zip(&grads).zip(&want_grads) {
        if name.ends_with("attention.self.key.bias") {
            // Softmax is invariant to the key bias: its exact gradient is zero and both sides
            // hold only rounding noise (checked below against the query bias's scale).
            continue;
        }
        let err = match (g, wg) {
            (Some(g), Some(wg)) => rel_err(g, wg)?,
            // The output bias's exact gradient is zero; anything else must have one.
            (None, None) => 0.0,
            _ => f64::INFINITY,
        };
        if err.is_nan() || err > worst.0 {
            worst = (err, name.clone());
        }
    }
    rows.push(CheckRow {
        op: "model[2×1024]".into(),
        dtype,
        quantity: format!("worst grad ({})", worst.1.replace("roberta.encoder.", "")),
        error: worst.0,
        tolerance: tol,
    });
    let norm_of = |suffix: &str| -> Result<f64> {
        let i = vars
            .iter()
            .position(|(n, _)| n == &format!("roberta.encoder.layer.0.attention.self.{suffix}"))
            .ok_or_else(|| candle_core::Error::Msg(format!("no {suffix}")))?;
        match &grads[i] {
            Some(g) => Ok(g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?
                .sqrt()),
            None => Ok(f64::INFINITY),
        }
    };
    rows.push(CheckRow {
        op: "model[2×1024]".into(),
        dtype,
        quantity: "|d key.bias| / |d query.bias|".into(),
        error: norm_of("key.bias")? / norm_of("query.bias")?,
        tolerance: if dtype == DType::BF16 { 0.2 } else { 1e-3 },
    });
    Ok(())
}

/// Every comparison, on `device` (CUDA).
pub fn run_all(device: &Device) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    check_layer_norm(device, &mut rows)?;
    for dtype in [DType::F32, DType::BF16] {
        check_dtype_ops(dtype, device, &mut rows)?;
    }
    check_dropout(device, &mut rows)?;
    check_adamw(device, &mut rows)?;
    for dtype in [DType::F32, DType::BF16] {
        check_model(dtype, device, &mut rows)?;
    }
    super::check_infer::check_packed_model(device, &mut rows)?;
    Ok(rows)
}
