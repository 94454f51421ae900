//! The CPU training step written out by hand: the forward pass keeps each layer's
//! activations, and the backward pass runs the fused kernels' backward functions in
//! reverse, writing one gradient per parameter.
//!
//! Through candle's autograd the same step also builds a graph of every intermediate
//! tensor and, for each, allocates a zero gradient and adds into it: on the `small`
//! shape that bookkeeping was about a fifth of the step. The arithmetic here is the
//! same kernels' (`ops`, `attention`, `linear`); a test checks the loss and every
//! gradient against candle's autograd of the primitive ops.
//!
//! Determinism: every kernel is bitwise independent of the thread count, and the
//! embedding gradients add rows in order on one thread.

use super::attention::CausalAttention;
use super::{Gpt, LN_EPS, linear, ops};
use crate::data::Batch;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Layout, Storage, Tensor};
use rayon::prelude::*;

/// A tensor's values read in place (no copy): contiguous f32 on the CPU.
fn cpu_values<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(&v[a..b]),
        _ => Err(Error::Shape(
            "the CPU training step needs contiguous f32 parameters on the CPU".into(),
        )),
    }
}

/// One block's parameters, in [`Gpt::step_params`] order.
struct BlockParams<'a> {
    ln_1: (&'a [f32], &'a [f32]),
    c_attn: (&'a [f32], &'a [f32]),
    attn_proj: (&'a [f32], &'a [f32]),
    ln_2: (&'a [f32], &'a [f32]),
    c_fc: (&'a [f32], &'a [f32]),
    mlp_proj: (&'a [f32], &'a [f32]),
}

/// Parameters before the first block: wte, wpe, ln_f.weight, ln_f.bias.
const HEAD: usize = 4;
/// Parameters per block.
const PER_BLOCK: usize = 12;

/// What one block's backward needs from its forward.
struct Saved {
    x_in: Vec<f32>,
    h1: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    probs: Vec<Vec<f32>>,
    x_mid: Vec<f32>,
    h2: Vec<f32>,
    fc: Vec<f32>,
    gelu: Vec<f32>,
}

/// Asks glibc's allocator, once per process, to keep the memory a step frees for the
/// next step. By default it hands every large buffer (over 128 KiB at first) back to
/// the kernel when it is freed and maps fresh zeroed pages for the next one: page
/// faults and page clearing were about a tenth of a step. Peak memory is unchanged;
/// the process just keeps its peak between steps.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            const MIB: i32 = 1 << 20;
            // SAFETY: mallopt only changes the allocator's thresholds. 32 MiB is the
            // largest mmap threshold glibc accepts on 64-bit; buffers above it are
            // still mapped per use.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * MIB);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 512 * MIB);
            }
        });
    }
}

crate::simd::multiversion! {
    /// `acc += x`, elementwise.
    fn add_into / add_into_portable(acc: &mut [f32], x: &[f32]) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += v;
        }
    }
}

/// Elements per rayon task of [`add_in_parallel`].
const ADD_CHUNK: usize = 8192;

/// `acc += x` over a whole activation, chunks in parallel.
fn add_in_parallel(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(ADD_CHUNK)
        .zip(x.par_chunks(ADD_CHUNK))
        .for_each(|(a, x)| add_into(a, x));
}

impl Gpt {
    /// Every parameter tensor in the order the hand-written step reads them.
    fn step_params(&self) -> Vec<&Tensor> {
        let mut p = vec![&self.wte, &self.wpe, &self.ln_f.weight, &self.ln_f.bias];
        for b in &self.blocks {
            p.extend([
                &b.ln_1.weight,
                &b.ln_1.bias,
                &b.attn.c_attn.weight,
                &b.attn.c_attn.bias,
                &b.attn.c_proj.weight,
                &b.attn.c_proj.bias,
                &b.ln_2.weight,
                &b.ln_2.bias,
                &b.mlp.c_fc.weight,
                &b.mlp.c_fc.bias,
                &b.mlp.c_proj.weight,
                &b.mlp.c_proj.bias,
            ]);
        }
        p
    }

    /// Mean cross-entropy of `batch` and the gradient of every parameter, on the CPU.
    pub(super) fn cpu_loss_and_grads(&self, batch: &Batch) -> Result<(f32, GradStore)> {
        keep_freed_memory();
        let cfg = self.cfg;
        let (b, t, d, v) = (batch.batch, batch.seq_len, cfg.n_embd, cfg.vocab);
        let n = b * t;
        if t > cfg.block_size {
            return Err(Error::Shape(format!(
                "sequence of {t} exceeds block size {}",
                cfg.block_size
            )));
        }
        if batch.inputs.len() != n || batch.targets.len() != n {
            return Err(Error::Shape(format!(
                "a {b}×{t} batch with {} inputs and {} targets",
                batch.inputs.len(),
                batch.targets.len()
            )));
        }
        if let Some(bad) = batch
            .inputs
            .iter()
            .chain(&batch.targets)
            .find(|&&tok| tok as usize >= v)
        {
            return Err(Error::Shape(format!(
                "token {bad} outside the vocabulary of {v}"
            )));
        }
        let tensors = self.step_params();
        // Read locks on the parameters' storage, held until the gradients are written.
        let reads: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let p = reads
            .iter()
            .map(|(storage, layout)| cpu_values(storage, layout))
            .collect::<Result<Vec<_>>>()?;
        let (wte, wpe, ln_f) = (p[0], p[1], (p[2], p[3]));
        let blocks: Vec<BlockParams> = p[HEAD..]
            .chunks_exact(PER_BLOCK)
            .map(|q| BlockParams {
                ln_1: (q[0], q[1]),
                c_attn: (q[2], q[3]),
                attn_proj: (q[4], q[5]),
                ln_2: (q[6], q[7]),
                c_fc: (q[8], q[9]),
                mlp_proj: (q[10], q[11]),
            })
            .collect();
        let attention = CausalAttention {
            batch: b,
            seq: t,
            n_head: cfg.n_head,
        };

        // Forward.
        let mut x = vec![0f32; n * d];
        for (r, row) in x.chunks_exact_mut(d).enumerate() {
            let (tok, pos) = (batch.inputs[r] as usize, r % t);
            let (e, q) = (&wte[tok * d..(tok + 1) * d], &wpe[pos * d..(pos + 1) * d]);
            for ((o, &e), &q) in row.iter_mut().zip(e).zip(q) {
                *o = e + q;
            }
        }
        let mut saved = Vec::with_capacity(blocks.len());
        for bp in &blocks {
            let h1 = ops::layer_norm(&x, bp.ln_1.0, bp.ln_1.1, LN_EPS);
            let qkv = linear::forward(&h1, bp.c_attn.0, Some(bp.c_attn.1), (n, d, 3 * d));
            let (att, probs) = attention.forward_keeping(&qkv, d);
            let mut x_mid = linear::forward(&att, bp.attn_proj.0, Some(bp.attn_proj.1), (n, d, d));
            add_in_parallel(&mut x_mid, &x);
            let h2 = ops::layer_norm(&x_mid, bp.ln_2.0, bp.ln_2.1, LN_EPS);
            let fc = linear::forward(&h2, bp.c_fc.0, Some(bp.c_fc.1), (n, d, 4 * d));
            let gelu = ops::gelu_forward(&fc);
            let mut x_out =
                linear::forward(&gelu, bp.mlp_proj.0, Some(bp.mlp_proj.1), (n, 4 * d, d));
            add_in_parallel(&mut x_out, &x_mid);
            saved.push(Saved {
                x_in: std::mem::replace(&mut x, x_out),
                h1,
                qkv,
                att,
                probs,
                x_mid,
                h2,
                fc,
                gelu,
            });
        }
        let hf = ops::layer_norm(&x, ln_f.0, ln_f.1, LN_EPS);
        let logits = linear::forward(&hf, wte, None, (n, d, v));
        // Backward, the same layers in reverse; the loss and its gradient in one pass.
        let (loss, dlogits) =
            ops::cross_entropy_and_grad(&logits, &batch.targets, v, 1.0 / n as f32);
        drop(logits);
        let (dhf, mut dwte) = linear::backward(&hf, wte, &dlogits, (n, d, v));
        let (mut dx, dlnf_w, dlnf_b) = ops::layer_norm_bwd(&x, ln_f.0, &dhf, d, LN_EPS);
        let mut grads: Vec<Vec<f32>> = Vec::with_capacity(tensors.len());
        let mut block_grads = Vec::with_capacity(blocks.len());
        for (bp, s) in blocks.iter().zip(saved).rev() {
            let (dgelu, dmp_w) = linear::backward(&s.gelu, bp.mlp_proj.0, &dx, (n, 4 * d, d));
            let dmp_b = linear::bias_grad(&dx, d);
            let dfc = ops::gelu_backward(&s.fc, &dgelu);
            let (dh2, dfc_w) = linear::backward(&s.h2, bp.c_fc.0, &dfc, (n, d, 4 * d));
            let dfc_b = linear::bias_grad(&dfc, 4 * d);
            let (dx_ln2, dln2_w, dln2_b) =
                ops::layer_norm_bwd(&s.x_mid, bp.ln_2.0, &dh2, d, LN_EPS);
            add_in_parallel(&mut dx, &dx_ln2);
            let (datt, dap_w) = linear::backward(&s.att, bp.attn_proj.0, &dx, (n, d, d));
            let dap_b = linear::bias_grad(&dx, d);
            let dqkv = attention.backward(&s.qkv, Some(&s.probs), &datt, d);
            let (dh1, dca_w) = linear::backward(&s.h1, bp.c_attn.0, &dqkv, (n, d, 3 * d));
            let dca_b = linear::bias_grad(&dqkv, 3 * d);
            let (dx_ln1, dln1_w, dln1_b) = ops::layer_norm_bwd(&s.x_in, bp.ln_1.0, &dh1, d, LN_EPS);
            add_in_parallel(&mut dx, &dx_ln1);
            block_grads.push([
                dln1_w, dln1_b, dca_w, dca_b, dap_w, dap_b, dln2_w, dln2_b, dfc_w, dfc_b, dmp_w,
                dmp_b,
            ]);
        }
        // The embeddings: each row's gradient goes to its token's and its position's row.
        let mut dwpe = vec![0f32; wpe.len()];
        for (r, g) in dx.chunks_exact(d).enumerate() {
            let (tok, pos) = (batch.inputs[r] as usize, r % t);
            add_into(&mut dwte[tok * d..(tok + 1) * d], g);
            add_into(&mut dwpe[pos * d..(pos + 1) * d], g);
        }
        grads.extend([dwte, dwpe, dlnf_w, dlnf_b]);
        grads.extend(block_grads.into_iter().rev().flatten());
        drop(reads);

        let mut store = GradStore::default();
        for (tensor, g) in tensors.into_iter().zip(grads) {
            store.insert(
                tensor,
                Tensor::from_vec(g, tensor.shape(), tensor.device())?,
            );
        }
        Ok((loss, store))
    }
}
