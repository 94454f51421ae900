//! A nanoGPT-style decoder: token + position embeddings, pre-norm blocks of causal
//! self-attention and an MLP, a final norm, and an output head tied to the token
//! embedding. Only gradient-safe candle ops (no fused norm/softmax kernels, which
//! return no gradient in candle 0.11.1), and weights from our own seeded PRNG.

use crate::config::ModelConfig;
use crate::seeds::rng;
use crate::{Error, Result};
use candle_core::{D, DType, Device, Tensor, Var};
use rand_distr::{Distribution, Normal};
use std::collections::BTreeMap;

/// The model: its config and its parameters by name (sorted, the canonical order).
pub struct Gpt {
    cfg: ModelConfig,
    params: BTreeMap<String, Var>,
    device: Device,
}

impl Gpt {
    /// A fresh model with GPT-2 initialisation drawn from `seed`.
    pub fn new(cfg: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        let mut prng = rng(seed);
        let mut params = BTreeMap::new();
        // Residual projections get a smaller std so the residual stream does not grow with depth.
        let proj_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
        for (name, shape) in layout(&cfg) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = if name.ends_with(".bias") {
                vec![0.0; n]
            } else if name.contains("ln") {
                vec![1.0; n]
            } else {
                let std = if name.ends_with("c_proj.weight") {
                    proj_std
                } else {
                    0.02
                };
                let normal = Normal::new(0.0, std).expect("positive std");
                (0..n).map(|_| normal.sample(&mut prng) as f32).collect()
            };
            let t = Tensor::from_vec(values, shape.as_slice(), device)?;
            params.insert(name, Var::from_tensor(&t)?);
        }
        Ok(Self {
            cfg,
            params,
            device: device.clone(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters by name, in canonical (sorted) order.
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// All parameters concatenated in canonical order (the pseudo-gradient layout).
    pub fn flat(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.cfg.param_count());
        for v in self.params.values() {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Overwrites every parameter from a flat vector in canonical order.
    pub fn set_flat(&self, flat: &[f32]) -> Result<()> {
        let total: usize = self.params.values().map(|v| v.elem_count()).sum();
        if flat.len() != total {
            return Err(Error::Shape(format!(
                "{} values for a model of {total}",
                flat.len()
            )));
        }
        let mut offset = 0;
        for v in self.params.values() {
            let n = v.elem_count();
            let t = Tensor::from_slice(&flat[offset..offset + n], v.shape(), &self.device)?;
            v.set(&t)?;
            offset += n;
        }
        Ok(())
    }

    /// Logits `[batch, seq, vocab]` for input tokens `[batch, seq]`.
    pub fn forward(&self, idx: &Tensor) -> Result<Tensor> {
        let (_b, t) = idx.dims2()?;
        if t > self.cfg.block_size {
            return Err(Error::Shape(format!(
                "sequence of {t} exceeds block size {}",
                self.cfg.block_size
            )));
        }
        let wte = self.p("wte");
        let pos = self.p("wpe").narrow(0, 0, t)?;
        let mut x =
            wte.embedding(&idx.flatten_all()?)?
                .reshape((idx.dim(0)?, t, self.cfg.n_embd))?;
        x = x.broadcast_add(&pos)?;
        let mask = causal_mask(t, &self.device)?;
        for i in 0..self.cfg.n_layer {
            let h = format!("h.{i}");
            x = (&x + self.attention(&h, &self.layer_norm(&x, &format!("{h}.ln_1"))?, &mask)?)?;
            x = (&x + self.mlp(&h, &self.layer_norm(&x, &format!("{h}.ln_2"))?)?)?;
        }
        let x = self.layer_norm(&x, "ln_f")?;
        // Tied head: logits = x · wteᵀ.
        Ok(x.broadcast_matmul(&wte.t()?)?)
    }

    /// Mean next-token cross-entropy of `inputs` against `targets` (both `[batch, seq]`).
    pub fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward(inputs)?;
        let (b, t, v) = logits.dims3()?;
        let loss =
            candle_nn::loss::cross_entropy(&logits.reshape((b * t, v))?, &targets.reshape(b * t)?)?;
        Ok(loss)
    }

    fn p(&self, name: &str) -> &Tensor {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("layout has no {name}"))
            .as_tensor()
    }

    /// `x · Wᵀ + b` with candle's `[out, in]` weight layout.
    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.p(&format!("{name}.weight"));
        let b = self.p(&format!("{name}.bias"));
        Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
    }

    /// LayerNorm from primitive ops (the fused kernel has no backward).
    fn layer_norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        let w = self.p(&format!("{name}.weight"));
        let b = self.p(&format!("{name}.bias"));
        Ok(normed.broadcast_mul(w)?.broadcast_add(b)?)
    }

    fn attention(&self, h: &str, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let nh = self.cfg.n_head;
        let hd = c / nh;
        let qkv = self.linear(x, &format!("{h}.attn.c_attn"))?;
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let att = candle_nn::ops::softmax(&att.broadcast_add(mask)?, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, c))?;
        self.linear(&y, &format!("{h}.attn.c_proj"))
    }

    fn mlp(&self, h: &str, x: &Tensor) -> Result<Tensor> {
        let x = self.linear(x, &format!("{h}.mlp.c_fc"))?.gelu()?;
        self.linear(&x, &format!("{h}.mlp.c_proj"))
    }
}

/// `[t, t]`: 0 on and below the diagonal, a large negative number above it.
fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(m, (t, t), device)?.to_dtype(DType::F32)?)
}

/// Every parameter's name and shape, sorted by name (the canonical order).
pub fn layout(cfg: &ModelConfig) -> BTreeMap<String, Vec<usize>> {
    let d = cfg.n_embd;
    let mut l = BTreeMap::new();
    l.insert("wte".to_string(), vec![cfg.vocab, d]);
    l.insert("wpe".to_string(), vec![cfg.block_size, d]);
    l.insert("ln_f.weight".to_string(), vec![d]);
    l.insert("ln_f.bias".to_string(), vec![d]);
    for i in 0..cfg.n_layer {
        let h = format!("h.{i}");
        for (name, shape) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.c_attn.weight", vec![3 * d, d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![4 * d, d]),
            ("mlp.c_fc.bias", vec![4 * d]),
            ("mlp.c_proj.weight", vec![d, 4 * d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            l.insert(format!("{h}.{name}"), shape);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parameter_gets_a_nonzero_gradient() {
        let cfg = ModelConfig::tiny();
        let model = Gpt::new(cfg, 7, &Device::Cpu).unwrap();
        assert_eq!(model.flat().unwrap().len(), cfg.param_count());
        let tokens: Vec<u32> = (0..2 * 16).map(|i| (i * 37 % 256) as u32).collect();
        let x = Tensor::from_slice(&tokens[..], (2, 16), &Device::Cpu).unwrap();
        let y = Tensor::from_slice(
            &tokens.iter().map(|t| (t + 1) % 256).collect::<Vec<_>>()[..],
            (2, 16),
            &Device::Cpu,
        )
        .unwrap();
        let loss = model.loss(&x, &y).unwrap();
        let l = loss.to_scalar::<f32>().unwrap();
        // A fresh model is near uniform over 256 bytes: ln 256 ≈ 5.55.
        assert!((l - 256f32.ln()).abs() < 0.3, "initial loss {l}");
        let grads = loss.backward().unwrap();
        for (name, var) in model.params() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name} has no gradient"));
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name} gradient norm {norm}"
            );
        }
    }

    #[test]
    fn attention_is_causal() {
        let model = Gpt::new(ModelConfig::tiny(), 1, &Device::Cpu).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 200]], &Device::Cpu).unwrap();
        let la = model
            .forward(&a)
            .unwrap()
            .narrow(1, 0, 3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let lb = model
            .forward(&b)
            .unwrap()
            .narrow(1, 0, 3)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            la, lb,
            "changing a later token must not change earlier logits"
        );
    }
}
