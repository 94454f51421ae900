//! AdamW with decoupled weight decay whose state can be saved and restored
//! (candle's own keeps it private). Weight decay applies to matrices and embeddings,
//! not to norms or biases (nanoGPT's grouping). Gradients are clipped to a global
//! norm of [`MAX_GRAD_NORM`] first, as nanoGPT and DiLoCo train.
//!
//! On the CPU the update is one fused pass over each parameter's values (the moments
//! live in plain vectors and the parameter is written in place); on other devices it
//! is built from tensor ops. Either way each element's arithmetic is independent of
//! the others, so the result does not depend on the thread count.

use crate::config::InnerConfig;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, Device, InplaceOp2, Layout, Shape, Storage, Tensor, Var};
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Gradients are scaled down so that their global L2 norm is at most this.
pub const MAX_GRAD_NORM: f64 = 1.0;

/// Elements per rayon task of the fused update.
const CHUNK: usize = 8192;

/// One parameter's moments: host vectors on the CPU, tensors on an accelerator.
#[derive(Clone)]
enum Moments {
    Host {
        m: Vec<f32>,
        v: Vec<f32>,
        shape: Shape,
    },
    Device {
        m: Tensor,
        v: Tensor,
    },
}

impl Moments {
    fn zeros(p: &Tensor) -> Result<Self> {
        Ok(if p.device().is_cpu() {
            let n = p.elem_count();
            Moments::Host {
                m: vec![0.0; n],
                v: vec![0.0; n],
                shape: p.shape().clone(),
            }
        } else {
            Moments::Device {
                m: p.zeros_like()?,
                v: p.zeros_like()?,
            }
        })
    }

    /// `(m, v)` as CPU tensors, for saving.
    fn tensors(&self) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            Moments::Host { m, v, shape } => (
                Tensor::from_slice(m, shape, &Device::Cpu)?,
                Tensor::from_slice(v, shape, &Device::Cpu)?,
            ),
            Moments::Device { m, v } => (m.to_device(&Device::Cpu)?, v.to_device(&Device::Cpu)?),
        })
    }

    fn from_tensors(m: Tensor, v: Tensor, device: &Device) -> Result<Self> {
        let (m, v) = (m.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
        Ok(if device.is_cpu() {
            Moments::Host {
                shape: m.shape().clone(),
                m: m.flatten_all()?.to_vec1()?,
                v: v.flatten_all()?.to_vec1()?,
            }
        } else {
            Moments::Device {
                m: m.to_device(device)?,
                v: v.to_device(device)?,
            }
        })
    }
}

/// The scalars of one update, as f32 (the precision of the parameters).
#[derive(Clone, Copy)]
struct Coefficients {
    clip: f32,
    beta1: f32,
    beta2: f32,
    bias1: f32,
    bias2: f32,
    eps: f32,
    lr: f32,
    /// `1 − lr·weight_decay` (or 1 for norms and biases).
    keep: f32,
}

/// AdamW moments per parameter name, and the number of steps taken. Cloning copies the
/// moments, so a clone steps independently of the original.
#[derive(Clone)]
pub struct AdamW {
    moments: BTreeMap<String, Moments>,
    step: u64,
}

impl AdamW {
    /// Zero moments shaped like `params`.
    pub fn new(params: &BTreeMap<String, Var>) -> Result<Self> {
        let mut moments = BTreeMap::new();
        for (name, p) in params {
            moments.insert(name.clone(), Moments::zeros(p.as_tensor())?);
        }
        Ok(Self { moments, step: 0 })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter that has a gradient in `grads`, at rate `lr`,
    /// after clipping the gradients' global norm to [`MAX_GRAD_NORM`].
    pub fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &GradStore,
        lr: f64,
        cfg: &InnerConfig,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let norm = global_norm(params, grads)?;
        // torch.nn.utils.clip_grad_norm_'s rule.
        let clip = (MAX_GRAD_NORM / (norm + 1e-6)).min(1.0);
        for (name, p) in params {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            let moments = self
                .moments
                .get_mut(name)
                .ok_or_else(|| Error::Shape(format!("no moment for {name}")))?;
            let theta = p.as_tensor();
            let decay = if theta.rank() >= 2 {
                cfg.weight_decay
            } else {
                0.0
            };
            let k = Coefficients {
                clip: clip as f32,
                beta1: cfg.beta1 as f32,
                beta2: cfg.beta2 as f32,
                bias1: (1.0 - cfg.beta1.powi(t)) as f32,
                bias2: (1.0 - cfg.beta2.powi(t)) as f32,
                eps: cfg.eps as f32,
                lr: lr as f32,
                keep: (1.0 - lr * decay) as f32,
            };
            match moments {
                Moments::Host { m, v, .. } => {
                    let op = FusedUpdate {
                        m: RefCell::new(m),
                        v: RefCell::new(v),
                        k,
                    };
                    theta.inplace_op2(&g.contiguous()?, &op)?;
                }
                Moments::Device { m, v } => {
                    let g = (g * k.clip as f64)?;
                    *m = ((&*m * cfg.beta1)? + (&g * (1.0 - cfg.beta1))?)?;
                    *v = ((&*v * cfg.beta2)? + (g.sqr()? * (1.0 - cfg.beta2))?)?;
                    let update =
                        ((&*m / k.bias1 as f64)? / ((&*v / k.bias2 as f64)?.sqrt()? + cfg.eps)?)?;
                    p.set(&((theta * k.keep as f64)? - (update * lr)?)?)?;
                }
            }
        }
        Ok(())
    }

    /// The state as canonical safetensors bytes (`m.<name>`, `v.<name>`, `step`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut map: BTreeMap<String, Tensor> = BTreeMap::new();
        for (name, moments) in &self.moments {
            let (m, v) = moments.tensors()?;
            map.insert(format!("m.{name}"), m);
            map.insert(format!("v.{name}"), v);
        }
        map.insert(
            "step".into(),
            Tensor::new(&[self.step as i64], &Device::Cpu)?,
        );
        Ok(safetensors::serialize(
            map.iter().map(|(k, v)| (k.clone(), v)),
            None,
        )?)
    }

    /// Restores a state saved by [`AdamW::to_bytes`] onto `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let mut tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        let step = tensors
            .remove("step")
            .ok_or_else(|| Error::Shape("optimizer state has no step".into()))?
            .to_vec1::<i64>()?[0] as u64;
        let mut moments = BTreeMap::new();
        for (key, m) in &tensors {
            let Some(name) = key.strip_prefix("m.") else {
                continue;
            };
            let v = tensors
                .get(&format!("v.{name}"))
                .ok_or_else(|| Error::Shape(format!("optimizer state has no v.{name}")))?;
            moments.insert(
                name.to_string(),
                Moments::from_tensors(m.clone(), v.clone(), device)?,
            );
        }
        Ok(Self { moments, step })
    }
}

/// The L2 norm of all gradients together, summed in canonical parameter order.
fn global_norm(params: &BTreeMap<String, Var>, grads: &GradStore) -> Result<f64> {
    let mut sum = 0f64;
    for p in params.values() {
        if let Some(g) = grads.get(p.as_tensor()) {
            sum += sum_of_squares(g)?;
        }
    }
    Ok(sum.sqrt())
}

/// Σ g², accumulated in f64 in blocks of [`NORM_BLOCK`] elements.
fn sum_of_squares(g: &Tensor) -> Result<f64> {
    if !g.device().is_cpu() {
        let g = g.flatten_all()?.to_dtype(DType::F64)?;
        return Ok(g.sqr()?.sum_all()?.to_scalar::<f64>()?);
    }
    let g = g.contiguous()?;
    let (storage, layout) = g.storage_and_layout();
    let (Storage::Cpu(cpu), Some((a, b))) = (&*storage, layout.contiguous_offsets()) else {
        return Err(Error::Shape("a CPU gradient that is not contiguous".into()));
    };
    let values = &cpu.as_slice::<f32>()?[a..b];
    // Fixed blocks summed in parallel, then their sums in order: the same bits at every
    // thread count.
    let blocks: Vec<f64> = values
        .par_chunks(NORM_BLOCK)
        .map(|c| c.iter().map(|&x| x as f64 * x as f64).sum())
        .collect();
    Ok(blocks.iter().sum())
}

/// Elements per partial sum of [`sum_of_squares`].
const NORM_BLOCK: usize = 1 << 14;

/// The CPU update of one parameter, in place: moments and parameter in one pass.
struct FusedUpdate<'a> {
    m: RefCell<&'a mut Vec<f32>>,
    v: RefCell<&'a mut Vec<f32>>,
    k: Coefficients,
}

impl InplaceOp2 for FusedUpdate<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        theta_l: &Layout,
        grad: &CpuStorage,
        grad_l: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((t0, t1)), Some((g0, g1))) =
            (theta_l.contiguous_offsets(), grad_l.contiguous_offsets())
        else {
            candle_core::bail!("fused-adamw: parameter and gradient must be contiguous")
        };
        let CpuStorage::F32(theta) = theta else {
            candle_core::bail!("fused-adamw: parameters must be f32")
        };
        let (theta, g) = (&mut theta[t0..t1], &grad.as_slice::<f32>()?[g0..g1]);
        let (mut m, mut v) = (self.m.borrow_mut(), self.v.borrow_mut());
        let k = self.k;
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((theta, m), v), g)| update_chunk(theta, m, v, g, k));
        Ok(())
    }
}

crate::simd::multiversion! {
    /// AdamW on one chunk of a parameter, its moments and its gradient.
    fn update_chunk / update_chunk_portable(
        theta: &mut [f32],
        m: &mut [f32],
        v: &mut [f32],
        g: &[f32],
        k: Coefficients,
    ) {
        // Zipped, not indexed: no bounds checks, so the loop vectorises.
        let lanes = theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g);
        for (((theta, m), v), &g) in lanes {
            let g = g * k.clip;
            *m = k.beta1 * *m + (1.0 - k.beta1) * g;
            *v = k.beta2 * *v + (1.0 - k.beta2) * g * g;
            let update = (*m / k.bias1) / ((*v / k.bias2).sqrt() + k.eps);
            *theta = *theta * k.keep - k.lr * update;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::data::Corpus;
    use crate::model::Gpt;
    use crate::train::train_step;

    /// The update built for this CPU's widest vectors writes the portable build's bits.
    #[test]
    fn the_vectorised_update_writes_the_portable_bits() {
        use crate::simd::tests::{bits, values};
        let k = Coefficients {
            clip: 0.7,
            beta1: 0.9,
            beta2: 0.95,
            bias1: 0.19,
            bias2: 0.0975,
            eps: 1e-8,
            lr: 3e-4,
            keep: 1.0 - 3e-5,
        };
        let g = values(1001, 9);
        let (mut t1, mut m1, mut v1) = (values(1001, 10), values(1001, 11), values(1001, 12));
        for v in v1.iter_mut() {
            *v = v.abs();
        }
        let (mut t2, mut m2, mut v2) = (t1.clone(), m1.clone(), v1.clone());
        update_chunk(&mut t1, &mut m1, &mut v1, &g, k);
        update_chunk_portable(&mut t2, &mut m2, &mut v2, &g, k);
        assert_eq!(
            (bits(&t1), bits(&m1), bits(&v1)),
            (bits(&t2), bits(&m2), bits(&v2))
        );
    }

    /// A rank-1 parameter `[3, 4]` whose loss Σp² has gradient `[6, 8]` (norm 10).
    fn norm_ten() -> (BTreeMap<String, Var>, GradStore) {
        let p = Var::new(&[3f32, 4.0], &Device::Cpu).unwrap();
        let grads = p
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (BTreeMap::from([("p".to_string(), p)]), grads)
    }

    #[test]
    fn gradients_are_clipped_to_global_norm_one() {
        let (params, grads) = norm_ten();
        let mut opt = AdamW::new(&params).unwrap();
        opt.step(&params, &grads, 1e-3, &InnerConfig::new(1, 1, 10))
            .unwrap();
        // The first moment holds (1 − β1)·g after one step, g scaled to norm 1: [0.6, 0.8].
        let Moments::Host { m, .. } = &opt.moments["p"] else {
            panic!("CPU moments live on the host")
        };
        assert!(
            (m[0] - 0.1 * 0.6).abs() < 1e-6 && (m[1] - 0.1 * 0.8).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn fused_update_matches_the_tensor_formula() {
        // The CPU's fused pass and the tensor ops a GPU runs take the same step.
        let cfg = InnerConfig::new(2, 16, 10);
        let corpus = Corpus::kjv().unwrap();
        let batches = corpus.round_batches("adamw-fused", 0, 0, 16, 3, 2, 16);
        let a = Gpt::new(ModelConfig::tiny(), 9, &Device::Cpu).unwrap();
        let b = Gpt::new(ModelConfig::tiny(), 9, &Device::Cpu).unwrap();
        let mut fused = AdamW::new(a.params()).unwrap();
        let mut tensors = AdamW::new(b.params()).unwrap();
        for (name, p) in b.params() {
            let zeros = p.as_tensor().zeros_like().unwrap();
            tensors.moments.insert(
                name.clone(),
                Moments::Device {
                    m: zeros.clone(),
                    v: zeros,
                },
            );
        }
        for (i, batch) in batches.iter().enumerate() {
            train_step(&a, &mut fused, batch, i as u64, &cfg).unwrap();
            train_step(&b, &mut tensors, batch, i as u64, &cfg).unwrap();
        }
        let (fa, fb) = (a.flat().unwrap(), b.flat().unwrap());
        let worst = fa
            .iter()
            .zip(&fb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst < 1e-5, "fused and tensor AdamW differ by {worst}");
        assert_ne!(
            fa,
            Gpt::new(ModelConfig::tiny(), 9, &Device::Cpu)
                .unwrap()
                .flat()
                .unwrap()
        );
    }

    #[test]
    fn saved_state_resumes_exactly() {
        let cfg = InnerConfig::new(2, 16, 10);
        let corpus = Corpus::kjv().unwrap();
        let batches = corpus.round_batches("adamw", 0, 0, 16, 3, 2, 16);
        let a = Gpt::new(ModelConfig::tiny(), 5, &Device::Cpu).unwrap();
        let mut opt_a = AdamW::new(a.params()).unwrap();
        train_step(&a, &mut opt_a, &batches[0], 0, &cfg).unwrap();
        train_step(&a, &mut opt_a, &batches[1], 1, &cfg).unwrap();
        // A second model resumes from the saved weights and optimiser state.
        let b = Gpt::new(ModelConfig::tiny(), 6, &Device::Cpu).unwrap();
        b.set_flat(&a.flat().unwrap()).unwrap();
        let mut opt_b = AdamW::from_bytes(&opt_a.to_bytes().unwrap(), &Device::Cpu).unwrap();
        assert_eq!(opt_b.steps(), 2);
        train_step(&a, &mut opt_a, &batches[2], 2, &cfg).unwrap();
        train_step(&b, &mut opt_b, &batches[2], 2, &cfg).unwrap();
        assert_eq!(a.flat().unwrap(), b.flat().unwrap());
        // A fresh optimiser would have taken a different step.
        let c = Gpt::new(ModelConfig::tiny(), 6, &Device::Cpu).unwrap();
        c.set_flat(&b.flat().unwrap()).unwrap();
        assert_ne!(
            opt_a.to_bytes().unwrap(),
            AdamW::new(c.params()).unwrap().to_bytes().unwrap()
        );
    }
}
