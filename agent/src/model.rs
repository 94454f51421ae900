//! A nanoGPT-style decoder: token + position embeddings, pre-norm blocks of causal
//! self-attention and an MLP (exact GELU), a final norm, and an output head tied to
//! the token embedding. Weights come from our own seeded PRNG.
//!
//! The layers are typed structs built once from the named parameters (as
//! candle-transformers' llama.rs does), and activations stay `[batch·seq, width]` so
//! each linear layer is one GEMM forward and one per gradient. On the CPU the linear
//! layers, norm, causal attention, GELU and the loss are fused kernels with their own
//! backward ([`linear`], [`ops`], [`attention`]), and a training step runs them by hand
//! ([`step`]) instead of through candle's autograd; elsewhere (CUDA) they are built from
//! gradient-safe primitive candle ops (the fused norm/softmax kernels of candle 0.11.1
//! return no gradient) and candle's autograd.

mod attention;
pub(crate) mod fastmath;
mod generate;
mod linear;
mod matmul;
mod ops;
mod step;

use crate::config::ModelConfig;
use crate::data::Batch;
use crate::seeds::rng;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{D, DType, Device, IndexOp, Tensor, Var};
use rand_distr::{Distribution, Normal};
use std::collections::BTreeMap;

/// LayerNorm's variance guard (PyTorch's default).
const LN_EPS: f32 = 1e-5;

/// The model: its config, its parameters by name (sorted, the canonical order) and the
/// typed layers that share those parameters' storage.
pub struct Gpt {
    cfg: ModelConfig,
    params: BTreeMap<String, Var>,
    device: Device,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// `[block_size, block_size]` causal mask of the primitive path, built once.
    mask: Tensor,
    fused: bool,
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
        let p = |name: &str| -> Tensor {
            params
                .get(name)
                .unwrap_or_else(|| panic!("layout has no {name}"))
                .as_tensor()
                .clone()
        };
        let blocks = (0..cfg.n_layer)
            .map(|i| Block::new(&|n| p(&format!("h.{i}.{n}")), cfg.n_head))
            .collect();
        Ok(Self {
            wte: p("wte"),
            wpe: p("wpe"),
            blocks,
            ln_f: LayerNorm::new(&|n| p(&format!("ln_f.{n}"))),
            mask: causal_mask(cfg.block_size, device)?,
            fused: device.is_cpu(),
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
        let (b, t) = idx.dims2()?;
        Ok(self.logits(idx)?.reshape((b, t, self.cfg.vocab))?)
    }

    /// Mean next-token cross-entropy of `inputs` against `targets` (both `[batch, seq]`).
    pub fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.logits(inputs)?;
        let targets = targets.flatten_all()?;
        if self.fused {
            let targets = targets.to_dtype(DType::U32)?;
            return Ok(logits.apply_op2(&targets, ops::CrossEntropy)?);
        }
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    /// The batch's mean next-token cross-entropy and every parameter's gradient of it:
    /// on the CPU by the hand-written step ([`step`]), elsewhere by candle's autograd.
    pub fn loss_and_grads(&self, batch: &Batch) -> Result<(f32, GradStore)> {
        if self.fused {
            return self.cpu_loss_and_grads(batch);
        }
        let (x, y) = batch.to_tensors(&self.device)?;
        let loss = self.loss(&x, &y)?;
        let grads = loss.backward()?;
        Ok((loss.to_scalar::<f32>()?, grads))
    }

    /// Logits `[batch·seq, vocab]`.
    fn logits(&self, idx: &Tensor) -> Result<Tensor> {
        let (b, t) = idx.dims2()?;
        if t > self.cfg.block_size {
            return Err(Error::Shape(format!(
                "sequence of {t} exceeds block size {}",
                self.cfg.block_size
            )));
        }
        let d = self.cfg.n_embd;
        let pos = self.wpe.narrow(0, 0, t)?;
        let x = self
            .wte
            .embedding(&idx.flatten_all()?)?
            .reshape((b, t, d))?;
        let mut x = x.broadcast_add(&pos)?.reshape((b * t, d))?;
        let ctx = Ctx {
            b,
            t,
            fused: self.fused,
            mask: self.mask.narrow(0, 0, t)?.narrow(1, 0, t)?,
        };
        for block in &self.blocks {
            x = block.forward(&x, &ctx)?;
        }
        let x = self.ln_f.forward(&x, ctx.fused)?;
        // Tied head: logits = x · wteᵀ.
        if ctx.fused {
            return Ok(x.apply_op2(&self.wte, linear::MatmulT)?);
        }
        Ok(x.matmul(&self.wte.t()?)?)
    }

    /// Builds every op from primitive candle ops, as on CUDA (tests compare the paths).
    #[cfg(test)]
    fn with_primitive_ops(mut self) -> Self {
        self.fused = false;
        self
    }
}

/// What every layer of one forward pass needs to know.
struct Ctx {
    b: usize,
    t: usize,
    /// Fused CPU kernels or primitive ops.
    fused: bool,
    /// `[t, t]` additive causal mask (primitive path only).
    mask: Tensor,
}

/// `x · Wᵀ + b` with candle's `[out, in]` weight layout, on `[rows, in]` input.
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn new(p: &dyn Fn(&str) -> Tensor, name: &str) -> Self {
        Self {
            weight: p(&format!("{name}.weight")),
            bias: p(&format!("{name}.bias")),
        }
    }

    fn forward(&self, x: &Tensor, fused: bool) -> candle_core::Result<Tensor> {
        if fused {
            return x
                .contiguous()?
                .apply_op3(&self.weight, &self.bias, linear::Linear);
        }
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// LayerNorm over the last dimension, with weight and bias.
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(p: &dyn Fn(&str) -> Tensor) -> Self {
        Self {
            weight: p("weight"),
            bias: p("bias"),
        }
    }

    fn forward(&self, x: &Tensor, fused: bool) -> candle_core::Result<Tensor> {
        if fused {
            let op = ops::LayerNorm { eps: LN_EPS };
            return x.contiguous()?.apply_op3(&self.weight, &self.bias, op);
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centered.broadcast_div(&(var + LN_EPS as f64)?.sqrt()?)?;
        normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Causal multi-head self-attention.
struct Attention {
    c_attn: Linear,
    c_proj: Linear,
    n_head: usize,
}

impl Attention {
    fn forward(&self, x: &Tensor, ctx: &Ctx) -> candle_core::Result<Tensor> {
        let (b, t) = (ctx.b, ctx.t);
        let c = x.dim(1)?;
        let (nh, hd) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.forward(x, ctx.fused)?;
        if ctx.fused {
            let op = attention::CausalAttention {
                batch: b,
                seq: t,
                n_head: nh,
            };
            return self.c_proj.forward(&qkv.contiguous()?.apply_op1(op)?, true);
        }
        let qkv = qkv.reshape((b, t, 3, nh, hd))?;
        // [b, nh, t, hd] per head group.
        let heads = |i: usize| qkv.i((.., .., i))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let scores = q.matmul(&k.t()?)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let att = candle_nn::ops::softmax(&(scores * scale)?.broadcast_add(&ctx.mask)?, D::Minus1)?;
        let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b * t, c))?;
        self.c_proj.forward(&y, false)
    }
}

/// The feed-forward half of a block: 4× wider, exact GELU.
struct Mlp {
    c_fc: Linear,
    c_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Tensor, fused: bool) -> candle_core::Result<Tensor> {
        let h = self.c_fc.forward(x, fused)?;
        let h = if fused {
            h.apply_op1(ops::Gelu)?
        } else {
            h.gelu_erf()?
        };
        self.c_proj.forward(&h, fused)
    }
}

/// One pre-norm transformer block.
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    /// The block whose parameters `p` finds by their name inside the block.
    fn new(p: &dyn Fn(&str) -> Tensor, n_head: usize) -> Self {
        Self {
            ln_1: LayerNorm::new(&|n| p(&format!("ln_1.{n}"))),
            attn: Attention {
                c_attn: Linear::new(p, "attn.c_attn"),
                c_proj: Linear::new(p, "attn.c_proj"),
                n_head,
            },
            ln_2: LayerNorm::new(&|n| p(&format!("ln_2.{n}"))),
            mlp: Mlp {
                c_fc: Linear::new(p, "mlp.c_fc"),
                c_proj: Linear::new(p, "mlp.c_proj"),
            },
        }
    }

    fn forward(&self, x: &Tensor, ctx: &Ctx) -> candle_core::Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x, ctx.fused)?, ctx)?)?;
        &x + self
            .mlp
            .forward(&self.ln_2.forward(&x, ctx.fused)?, ctx.fused)?
    }
}

/// The device named on the command line: `cpu`, `cuda` (GPU 0) or `cuda:N`. CUDA needs
/// a build with `--features cuda` and an NVIDIA driver; the error says which is missing.
pub fn device_by_name(name: &str) -> Result<Device> {
    let ordinal = match name {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                Error::Device(format!("unknown device {other:?}: cpu, cuda or cuda:N"))
            })?,
    };
    if !candle_core::utils::cuda_is_available() {
        return Err(Error::Device(
            "this crowdtrain was built without CUDA: rebuild with `cargo build --release \
             --features cuda` on a machine with the CUDA toolkit"
                .into(),
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open GPU {ordinal}: {e}")))
}

/// `[t, t]`: 0 on and below the diagonal, a large negative number above it.
fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t * t)
        .map(|i| if i % t > i / t { -1e9 } else { 0.0 })
        .collect();
    Ok(Tensor::from_vec(m, (t, t), device)?)
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
        let fused = Gpt::new(cfg, 7, &Device::Cpu).unwrap();
        let primitive = Gpt::new(cfg, 7, &Device::Cpu).unwrap().with_primitive_ops();
        for model in [fused, primitive] {
            every_parameter_gets_a_gradient(&model);
        }
    }

    fn every_parameter_gets_a_gradient(model: &Gpt) {
        let cfg = *model.config();
        assert_eq!(model.flat().unwrap().len(), cfg.param_count());
        let inputs: Vec<u32> = (0..2 * 16).map(|i| (i * 37 % 256) as u32).collect();
        let targets = inputs.iter().map(|t| (t + 1) % 256).collect();
        let batch = Batch {
            batch: 2,
            seq_len: 16,
            inputs,
            targets,
        };
        // The training step's own path: by hand on the CPU, autograd on primitive ops.
        let (l, grads) = model.loss_and_grads(&batch).unwrap();
        // A fresh model is near uniform over 256 bytes: ln 256 ≈ 5.55.
        assert!((l - 256f32.ln()).abs() < 0.3, "initial loss {l}");
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

    /// A fixed 3×20 batch.
    fn fixed_batch() -> Batch {
        let inputs: Vec<u32> = (0..3 * 20).map(|i| (i * 53 % 256) as u32).collect();
        let targets = inputs.iter().map(|t| (t * 7 + 3) % 256).collect();
        Batch {
            batch: 3,
            seq_len: 20,
            inputs,
            targets,
        }
    }

    /// Every gradient in `grads` of `model`'s parameters, by name.
    fn by_name(model: &Gpt, grads: &GradStore) -> Vec<(String, Vec<f32>)> {
        model
            .params()
            .iter()
            .map(|(name, var)| {
                let g = grads.get(var.as_tensor()).expect("gradient");
                (name.clone(), g.flatten_all().unwrap().to_vec1().unwrap())
            })
            .collect()
    }

    /// Loss and every gradient of `model` on [`fixed_batch`], through candle's autograd
    /// (of the fused ops on a CPU model, of primitive ops on one built with them).
    fn loss_and_grads(model: &Gpt) -> (f32, Vec<(String, Vec<f32>)>) {
        let (x, y) = fixed_batch().to_tensors(&Device::Cpu).unwrap();
        let loss = model.loss(&x, &y).unwrap();
        let grads = loss.backward().unwrap();
        (loss.to_scalar().unwrap(), by_name(model, &grads))
    }

    /// The same through the training step's CPU path, the hand-written backward.
    fn step_loss_and_grads(model: &Gpt) -> (f32, Vec<(String, Vec<f32>)>) {
        let (loss, grads) = model.loss_and_grads(&fixed_batch()).unwrap();
        (loss, by_name(model, &grads))
    }

    /// Panics unless the two losses and every pair of gradients agree up to rounding.
    fn assert_same_model(
        what: &str,
        (la, ga): (f32, Vec<(String, Vec<f32>)>),
        (lb, gb): (f32, Vec<(String, Vec<f32>)>),
    ) {
        assert!((la - lb).abs() < 1e-4, "{what}: loss {la} vs {lb}");
        for ((name, a), (_, b)) in ga.iter().zip(&gb) {
            let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-3 * scale + 1e-7,
                "{what}: {name} gradients differ by {worst} (scale {scale})"
            );
        }
    }

    #[test]
    fn fused_kernels_match_primitive_ops() {
        // The CPU trains with fused kernels, a GPU with candle's primitive ops: both
        // must be the same model (same loss, same gradients up to rounding).
        let cfg = ModelConfig::tiny();
        let fused = Gpt::new(cfg, 11, &Device::Cpu).unwrap();
        let primitive = Gpt::new(cfg, 11, &Device::Cpu)
            .unwrap()
            .with_primitive_ops();
        // Train one step so the norms' weights and biases are no longer 1 and 0.
        let (l0, g0) = loss_and_grads(&fused);
        for ((_, g), var) in g0.iter().zip(fused.params().values()) {
            let t = (var.as_tensor()
                - (Tensor::from_slice(g, var.shape(), &Device::Cpu).unwrap() * 0.5).unwrap())
            .unwrap();
            var.set(&t).unwrap();
        }
        primitive.set_flat(&fused.flat().unwrap()).unwrap();
        let (lf, gf) = loss_and_grads(&fused);
        assert!(lf < l0, "a gradient step lowered the loss: {l0} -> {lf}");
        let primitive = loss_and_grads(&primitive);
        assert_same_model("fused ops", (lf, gf), primitive.clone());
        // The training step's own backward, written by hand, is the same model too.
        assert_same_model("hand-written step", step_loss_and_grads(&fused), primitive);
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
