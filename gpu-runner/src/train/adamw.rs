//! `torch.optim.AdamW` arithmetic (spec §C.1) over named f32 parameters, with the Hugging Face
//! decay / no-decay parameter groups and global-norm gradient clipping.
//!
//! [`adamw_update`] is the composed per-tensor update (CPU). On CUDA, [`AdamW::clip_and_step`]
//! runs the gradient norm and the whole update as multi-tensor kernels
//! ([`crate::kernels::adamw`]): two launches per step instead of ~20 per tensor.

use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use crate::Result;

/// Hyper-parameters of AdamW (torch defaults except `weight_decay`, which the trainer sets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε, added after the bias-corrected square root.
    pub eps: f64,
    /// Decoupled weight decay of the "decay" group (bias and LayerNorm parameters get 0).
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        AdamWParams {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Whether HF's Trainer puts `name` in the weight-decay group (not a bias, not a LayerNorm).
pub fn decays(name: &str) -> bool {
    !(name.contains("bias") || name.contains("LayerNorm"))
}

/// The per-step scalars of one AdamW update of one tensor.
#[derive(Debug, Clone, Copy)]
pub struct UpdateScalars {
    /// Learning rate of this update.
    pub lr: f64,
    /// Weight decay of the tensor's group (0 for biases and LayerNorm).
    pub weight_decay: f64,
    /// The 1-based step count `t`.
    pub step: u64,
}

/// One torch AdamW step for one tensor; returns the new `(param, m, v)`.
pub fn adamw_update(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    s: UpdateScalars,
    hp: &AdamWParams,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let UpdateScalars {
        lr,
        weight_decay,
        step,
    } = s;
    let param = if weight_decay != 0.0 {
        (param * (1.0 - lr * weight_decay))?
    } else {
        param.clone()
    };
    // exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
    let m = (m + ((grad - m)? * (1.0 - hp.beta1))?)?;
    let v = ((v * hp.beta2)? + ((grad * (1.0 - hp.beta2))? * grad)?)?;
    let bias_correction1 = 1.0 - hp.beta1.powi(step as i32);
    let bias_correction2_sqrt = (1.0 - hp.beta2.powi(step as i32)).sqrt();
    let step_size = lr / bias_correction1;
    let denom = ((v.sqrt()? / bias_correction2_sqrt)? + hp.eps)?;
    let param = (param - ((&m * step_size)? / denom)?)?;
    Ok((param, m, v))
}

/// AdamW over a fixed, named list of variables. Moments start at zero.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: u64,
    params: AdamWParams,
}

impl AdamW {
    /// An optimizer over `vars` (names are HF parameter names).
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        // Separate allocations for every moment: the fused step updates them in place.
        let zeros = || {
            vars.iter()
                .map(|(_, v)| v.as_tensor().zeros_like())
                .collect::<candle_core::Result<Vec<_>>>()
        };
        let (m, v) = (zeros()?, zeros()?);
        Ok(AdamW {
            vars,
            m,
            v,
            step: 0,
            params,
        })
    }

    /// The number of steps taken (`t`).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The variables, in order.
    pub fn vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Applies one step with `grads` (aligned with [`AdamW::vars`]) at learning rate `lr`.
    /// Like torch, a parameter without a gradient is skipped (its moments do not move).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.step += 1;
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(i).and_then(Option::as_ref) else {
                continue;
            };
            let wd = if decays(name) {
                self.params.weight_decay
            } else {
                0.0
            };
            let (p, m, v) = adamw_update(
                var.as_tensor(),
                grad,
                &self.m[i],
                &self.v[i],
                UpdateScalars {
                    lr,
                    weight_decay: wd,
                    step: self.step,
                },
                &self.params,
            )?;
            var.set(&p)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Clips `grads` to the global norm `max_norm` (0: no clipping) and takes one step at `lr`;
    /// returns the norm before clipping. On CUDA with the fused kernels on, the gradients are
    /// not rewritten: the kernel scales them as it reads them.
    pub fn clip_and_step(
        &mut self,
        grads: &mut [Option<Tensor>],
        max_norm: f64,
        lr: f64,
    ) -> Result<f32> {
        #[cfg(feature = "cuda")]
        if let Some((_, var)) = self.vars.first() {
            if crate::kernels::applies(var.as_tensor()) {
                return self.fused_clip_and_step(grads, max_norm, lr);
            }
        }
        let norm = clip_grad_norm(grads, max_norm)?;
        self.step(grads, lr)?;
        Ok(norm)
    }

    #[cfg(feature = "cuda")]
    fn fused_clip_and_step(
        &mut self,
        grads: &[Option<Tensor>],
        max_norm: f64,
        lr: f64,
    ) -> Result<f32> {
        use crate::kernels::adamw::{adamw_step, grad_sq_norm, AdamWScalars, AdamWTensor};
        let present: Vec<&Tensor> = grads.iter().flatten().collect();
        let total = grad_sq_norm(&present)?.sqrt() as f32;
        let coef = (max_norm as f32 / (total + 1e-6)).min(1.0);
        let grad_scale = if max_norm > 0.0 && coef < 1.0 {
            f64::from(coef)
        } else {
            1.0
        };
        self.step += 1;
        let mut tensors = Vec::with_capacity(self.vars.len());
        for (i, (name, var)) in self.vars.iter().enumerate() {
            let Some(grad) = grads.get(i).and_then(Option::as_ref) else {
                continue;
            };
            tensors.push(AdamWTensor {
                param: var.as_tensor(),
                grad,
                m: &self.m[i],
                v: &self.v[i],
                weight_decay: if decays(name) {
                    self.params.weight_decay
                } else {
                    0.0
                },
            });
        }
        let scalars = AdamWScalars {
            lr,
            beta1: self.params.beta1,
            beta2: self.params.beta2,
            eps: self.params.eps,
            step: self.step,
            grad_scale,
        };
        adamw_step(&tensors, &scalars)?;
        Ok(total)
    }

    /// The optimizer state as named tensors (`m.<name>`, `v.<name>`) plus the step count.
    pub fn state(&self) -> (HashMap<String, Tensor>, u64) {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        (out, self.step)
    }

    /// Restores the state written by [`AdamW::state`]; names a missing or misshapen tensor.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: u64) -> Result<(), String> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t = state
                    .get(&key)
                    .ok_or_else(|| format!("tensor {key} is missing"))?;
                if t.dims() != var.dims() {
                    return Err(format!(
                        "tensor {key} has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    ));
                }
                // A copy: the fused step updates moments in place.
                *slot = t
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_device(var.device()))
                    .and_then(|t| t.copy())
                    .map_err(|e| format!("tensor {key}: {e}"))?;
            }
        }
        self.step = step;
        Ok(())
    }
}

/// `torch.nn.utils.clip_grad_norm_`: scales every gradient by
/// `min(1, max_norm / (total + 1e-6))` where `total` is the L2 norm over all gradients.
/// Returns `total` (before clipping), which the trainer logs as `grad_norm`.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f32> {
    // Squared per-tensor norms summed on the device: one host sync per update.
    let squares = grads
        .iter()
        .flatten()
        .map(|g| g.to_dtype(DType::F32)?.sqr()?.sum_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    if squares.is_empty() {
        return Ok(0.0);
    }
    let total = Tensor::stack(&squares, 0)?
        .sum_all()?
        .to_scalar::<f32>()?
        .sqrt();
    let coef = (max_norm as f32 / (total + 1e-6)).min(1.0);
    if max_norm > 0.0 && coef < 1.0 {
        for g in grads.iter_mut().flatten() {
            *g = (&*g * coef as f64)?;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps with weight decay against the update rule of spec §C.1 evaluated in f64.
    #[test]
    fn two_steps_match_the_update_rule() -> Result<()> {
        let dev = Device::Cpu;
        let var = Var::from_slice(&[1.0f32, -2.0, 0.5], 3, &dev)?;
        let hp = AdamWParams {
            weight_decay: 0.01,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], hp)?;
        let grads = [[0.3f64, -0.1, 0.0], [0.2, 0.4, -1.0]];
        for g in grads {
            let g32: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            opt.step(&[Some(Tensor::from_slice(&g32, 3, &dev)?)], 0.1)?;
        }
        // Reference in f64.
        let mut want = [1.0f64, -2.0, 0.5];
        let (mut m, mut v) = ([0f64; 3], [0f64; 3]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            for j in 0..3 {
                want[j] *= 1.0 - 0.1 * 0.01;
                m[j] = 0.9 * m[j] + 0.1 * g[j];
                v[j] = 0.999 * v[j] + 0.001 * g[j] * g[j];
                let denom = (v[j] / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8;
                want[j] -= 0.1 / (1.0 - 0.9f64.powi(t)) * m[j] / denom;
            }
        }
        let got = var.as_tensor().to_vec1::<f32>()?;
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(opt.step_count(), 2);
        Ok(())
    }

    #[test]
    fn clipping_scales_to_max_norm_and_reports_total() -> Result<()> {
        let dev = Device::Cpu;
        let mut grads = vec![
            Some(Tensor::from_slice(&[3f32, 0.0], 2, &dev)?),
            None,
            Some(Tensor::from_slice(&[4f32], 1, &dev)?),
        ];
        let total = clip_grad_norm(&mut grads, 1.0)?;
        assert!((total - 5.0).abs() < 1e-6);
        let a = grads[0].as_ref().unwrap().to_vec1::<f32>()?;
        assert!((a[0] - 3.0 / (5.0 + 1e-6)).abs() < 1e-7);
        let total = clip_grad_norm(&mut grads, 10.0)?;
        assert!((total - 1.0).abs() < 1e-5);
        assert!((grads[2].as_ref().unwrap().to_vec1::<f32>()?[0] - 0.8).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn decay_groups_follow_hf() {
        assert!(decays(
            "roberta.encoder.layer.0.attention.self.query.weight"
        ));
        assert!(!decays("roberta.encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("roberta.embeddings.LayerNorm.weight"));
    }
}
