//! One DiLoCo round as library functions: [`train_local`] (H inner steps from the base
//! checkpoint on the provider's assigned samples, Δ = θ_start − θ_end, compressed with
//! error feedback) and [`aggregate`] (check the round's blobs, clip each to a multiple of
//! the median norm, average them in blob-hash order, outer Nesterov step, new
//! checkpoint, refused if not finite). [`RoundResult`] carries everything a receipt needs.

use crate::adamw::AdamW;
use crate::assignment::DataPlan;
use crate::checkpoint::Checkpoint;
use crate::clip::{blob_norm, clip_factor, dequantizes_finite, lower_median, scaled};
use crate::config::RunConfig;
use crate::data::Corpus;
use crate::model::Gpt;
use crate::outer::nesterov_step;
use crate::seeds::{Purpose, derive_seed};
use crate::train::train_step;
use crate::{Error, Result};
use crowdtrain_kernels::{Backend, ErrorFeedback, QuantizedBlob, dequantize_accumulate_all};
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};

/// A round's starting checkpoint with its hash, computed once and shared by every
/// worker that trains from it.
#[derive(Clone, Copy, Debug)]
pub struct RoundBase<'a> {
    /// θ_(r−1) and the outer momentum.
    pub checkpoint: &'a Checkpoint,
    /// Its hash.
    pub hash: Hash32,
}

impl<'a> RoundBase<'a> {
    /// Hashes `checkpoint` (serialises it once).
    pub fn new(checkpoint: &'a Checkpoint) -> Result<Self> {
        Ok(Self {
            hash: checkpoint.hash()?,
            checkpoint,
        })
    }
}

/// What a provider keeps between rounds: its inner optimiser and its compression residual.
pub struct WorkerState {
    /// Inner AdamW moments (created on the first round).
    pub adamw: Option<AdamW>,
    /// Error-feedback residual of this provider's compressed pseudo-gradients.
    pub feedback: ErrorFeedback,
}

impl WorkerState {
    /// A fresh provider for a model of `params` values.
    pub fn new(params: usize) -> Self {
        Self {
            adamw: None,
            feedback: ErrorFeedback::new(params),
        }
    }
}

/// The outcome of a provider's inner steps in one round.
#[derive(Clone, Debug)]
pub struct LocalWork {
    /// Hash of the checkpoint training started from.
    pub base_checkpoint: Hash32,
    /// The compressed pseudo-gradient as served to peers.
    pub blob_bytes: Vec<u8>,
    /// sha256 of `blob_bytes`.
    pub blob_hash: Hash32,
    /// Inner steps taken (H).
    pub inner_steps: u32,
    /// Tokens trained on.
    pub tokens: u64,
    /// Loss of the first inner step.
    pub loss_start: f32,
    /// Loss of the last inner step.
    pub loss_end: f32,
    /// Loss of every inner step, in order.
    pub step_losses: Vec<f32>,
}

/// Trains `run.inner_steps` steps from `base` on provider `provider`'s assigned samples
/// of round `round` (its index in the provider list, below `run.shards`), then
/// compresses Δ = θ_start − θ_end with the provider's error feedback.
pub fn train_local(
    run: &RunConfig,
    corpus: &Corpus,
    model: &Gpt,
    base: &Checkpoint,
    round: u64,
    provider: u32,
    worker: &mut WorkerState,
) -> Result<LocalWork> {
    let base = RoundBase::new(base)?;
    train_local_at(run, corpus, model, &base, round, provider, worker)
}

/// Where pseudo-gradients are quantized: our CUDA kernels when the model trains on a
/// GPU (compiled once per process; the CPU if they cannot start), else the CPU. Every
/// backend writes the same bytes, so this never changes a blob.
fn quantizer(device: &candle_core::Device) -> &'static Backend {
    static CPU: Backend = Backend::Cpu;
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        static GPU: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();
        return GPU.get_or_init(Backend::detect);
    }
    #[cfg(not(feature = "cuda"))]
    let _ = device;
    &CPU
}

/// [`train_local`] from a base whose hash is already known.
pub fn train_local_at(
    run: &RunConfig,
    corpus: &Corpus,
    model: &Gpt,
    base: &RoundBase<'_>,
    round: u64,
    provider: u32,
    worker: &mut WorkerState,
) -> Result<LocalWork> {
    let (base_checkpoint, base) = (base.hash, base.checkpoint);
    let h = run.inner_steps;
    let plan = DataPlan::new(corpus, run.inner.seq_len, run.inner.batch, h, run.shards)?;
    let assignment = plan.assignment(&run.run_id, round, provider)?;
    let batches = corpus.batches(&run.run_id, &assignment);
    model.set_flat(&base.params)?;
    let adamw = match worker.adamw.as_mut() {
        Some(a) => a,
        None => worker.adamw.insert(AdamW::new(model.params())?),
    };
    let mut step_losses = Vec::with_capacity(h as usize);
    let mut tokens = 0;
    for (i, batch) in batches.iter().enumerate() {
        let global_step = run.inner.global_step(round, h, i as u64);
        step_losses.push(train_step(model, adamw, batch, global_step, &run.inner)?);
        tokens += batch.tokens();
    }
    let end = model.flat()?;
    let delta: Vec<f32> = base.params.iter().zip(&end).map(|(s, e)| s - e).collect();
    let seed = derive_seed(Purpose::Quant, &run.run_id, round, provider);
    let blob = worker
        .feedback
        .compress_on(quantizer(model.device()), &delta, run.quant, seed)?;
    let blob_bytes = blob.to_bytes();
    tracing::debug!(
        round,
        provider,
        bytes = blob_bytes.len(),
        "pseudo-gradient compressed"
    );
    Ok(LocalWork {
        base_checkpoint,
        blob_hash: sha256(&blob_bytes),
        blob_bytes,
        inner_steps: h,
        tokens,
        loss_start: step_losses.first().copied().unwrap_or(f32::NAN),
        loss_end: step_losses.last().copied().unwrap_or(f32::NAN),
        step_losses,
    })
}

/// A blob as received from a peer.
#[derive(Clone, Debug)]
pub struct PeerBlob {
    /// Who served it (for warnings).
    pub peer: String,
    /// The wire bytes (shared: handing a blob on does not copy it).
    pub bytes: bytes::Bytes,
}

/// A blob left out of the round, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Who served it.
    pub peer: String,
    /// Why it was left out.
    pub reason: String,
}

/// A blob the robust rule shrank: its hash, its norm, and the factor applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clipped {
    /// The blob.
    pub blob: Hash32,
    /// Its norm as received.
    pub norm: f64,
    /// Its scales were multiplied by this (< 1).
    pub factor: f32,
}

/// The round's new checkpoint and the blob set it was built from.
#[derive(Clone, Debug)]
pub struct Aggregate {
    /// θ_r and the outer momentum.
    pub checkpoint: Checkpoint,
    /// Its hash.
    pub hash: Hash32,
    /// Hashes of the blobs used, ascending (the aggregation order).
    pub blobs: Vec<Hash32>,
    /// The blob-set digest receipts carry.
    pub blob_set: Hash32,
    /// Blobs left out, with reasons.
    pub rejected: Vec<Rejected>,
    /// The round's median pseudo-gradient norm (the clip is `clip_multiple` × this).
    pub median_norm: f64,
    /// Blobs clipped to the limit, in aggregation order.
    pub clipped: Vec<Clipped>,
}

/// A blob that passed the checks, with what the rule needs to know of it.
struct Accepted<'a> {
    hash: Hash32,
    bytes: &'a [u8],
    blob: QuantizedBlob,
    norm: f64,
}

/// The canonical aggregation (agent/README.md, "Robust aggregation"): checks `blobs`
/// (malformed, wrong-length, overflowing or duplicate ones are left out with a warning),
/// clips each pseudo-gradient's norm to `run.outer.clip_multiple` × the median norm,
/// averages them in ascending hash order on the CPU, applies the outer Nesterov step to
/// `base`, and returns the new checkpoint, or [`Error::NonFinite`] rather than a
/// checkpoint holding a NaN or an infinity.
pub fn aggregate(
    run: &RunConfig,
    round: u64,
    base: &Checkpoint,
    blobs: &[PeerBlob],
) -> Result<Aggregate> {
    let mut valid: Vec<Accepted<'_>> = Vec::new();
    let mut rejected = Vec::new();
    for pb in blobs {
        let hash = sha256(&pb.bytes);
        let checked = check_blob(&pb.bytes, base.params.len()).and_then(|blob| {
            if valid.iter().any(|v| v.hash == hash) {
                Err(format!("duplicate of blob {hash}"))
            } else {
                Ok(blob)
            }
        });
        match checked {
            Ok(blob) => valid.push(Accepted {
                hash,
                bytes: &pb.bytes,
                norm: blob_norm(&blob),
                blob,
            }),
            Err(reason) => rejected.push(Rejected {
                peer: pb.peer.clone(),
                reason,
            }),
        }
    }
    for r in &rejected {
        tracing::warn!(round, peer = %r.peer, reason = %r.reason, "blob left out of the round");
    }
    if valid.is_empty() {
        return Err(Error::NoBlobs { round });
    }
    valid.sort_by_key(|v| v.hash);
    let norms: Vec<f64> = valid.iter().map(|v| v.norm).collect();
    let median_norm = lower_median(&norms);
    let limit = run.outer.clip_multiple as f64 * median_norm;
    let mut clipped = Vec::new();
    for v in &mut valid {
        let factor = clip_factor(v.norm, limit);
        if factor < 1.0 {
            v.blob = scaled(v.bytes, &v.blob, factor)?;
            clipped.push(Clipped {
                blob: v.hash,
                norm: v.norm,
                factor,
            });
            tracing::warn!(round, blob = %v.hash, norm = v.norm, limit, "pseudo-gradient clipped");
        }
    }
    let mut g = vec![0.0f32; base.params.len()];
    let refs: Vec<&QuantizedBlob> = valid.iter().map(|v| &v.blob).collect();
    dequantize_accumulate_all(&refs, &mut g)?;
    let inv = 1.0f32 / valid.len() as f32;
    g.iter_mut().for_each(|x| *x *= inv);
    let mut next = base.clone();
    nesterov_step(&mut next.params, &mut next.momentum, &g, run.outer);
    refuse_non_finite(round, &next)?;
    let blobs: Vec<Hash32> = valid.iter().map(|v| v.hash).collect();
    Ok(Aggregate {
        hash: next.hash()?,
        checkpoint: next,
        blob_set: blob_set_digest(&blobs),
        blobs,
        rejected,
        median_norm,
        clipped,
    })
}

/// [`Error::NonFinite`] naming the first parameter or momentum that is NaN or infinite.
fn refuse_non_finite(round: u64, ck: &Checkpoint) -> Result<()> {
    for (name, values) in [("parameter", &ck.params), ("momentum", &ck.momentum)] {
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                round,
                what: format!("{name} {i} of the new checkpoint ({})", values[i]),
            });
        }
    }
    Ok(())
}

/// Why a blob cannot be used, or the decoded blob. Reads the scales only: the values
/// are bounded by the wire format, so no value is dequantized here.
fn check_blob(bytes: &[u8], len: usize) -> std::result::Result<QuantizedBlob, String> {
    let blob = QuantizedBlob::from_bytes(bytes).map_err(|e| format!("does not decode: {e}"))?;
    if blob.len() != len {
        return Err(format!("holds {} values, the model has {len}", blob.len()));
    }
    if !dequantizes_finite(&blob) {
        return Err("a block's scale × qmax overflows f32: values would not be finite".into());
    }
    Ok(blob)
}

/// Everything a provider's receipt for a round needs.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundResult {
    /// Round number.
    pub round: u64,
    /// Checkpoint the round started from.
    pub base_checkpoint: Hash32,
    /// Checkpoint the round produced.
    pub result_checkpoint: Hash32,
    /// This provider's blob.
    pub blob: Hash32,
    /// Digest of the blob set aggregated.
    pub blob_set: Hash32,
    /// Inner steps taken.
    pub inner_steps: u32,
    /// Tokens trained on.
    pub tokens: u64,
    /// Loss of the first inner step.
    pub loss_start: f32,
    /// Loss of the last inner step.
    pub loss_end: f32,
}

impl RoundResult {
    /// Joins a provider's local work with the round's aggregate.
    pub fn new(round: u64, local: &LocalWork, agg: &Aggregate) -> Self {
        Self {
            round,
            base_checkpoint: local.base_checkpoint,
            result_checkpoint: agg.hash,
            blob: local.blob_hash,
            blob_set: agg.blob_set,
            inner_steps: local.inner_steps,
            tokens: local.tokens,
            loss_start: local.loss_start,
            loss_end: local.loss_end,
        }
    }

    /// The unsigned receipt for `provider` on run `run`.
    pub fn receipt(&self, run: &str, provider: &str, unix_ms: u64) -> Receipt {
        Receipt {
            run: run.to_string(),
            round: self.round,
            provider: provider.to_string(),
            base_checkpoint: self.base_checkpoint,
            result_checkpoint: self.result_checkpoint,
            blob: self.blob,
            blob_set: self.blob_set,
            inner_steps: self.inner_steps,
            tokens: self.tokens,
            loss_start: self.loss_start,
            loss_end: self.loss_end,
            unix_ms,
        }
    }
}
