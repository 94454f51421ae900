//! One DiLoCo round as library functions: [`train_local`] (H inner steps from the base
//! checkpoint, Δ = θ_start − θ_end, compressed with error feedback) and [`aggregate`]
//! (decode the round's blobs, average them in blob-hash order, outer Nesterov step,
//! new checkpoint). [`RoundResult`] carries everything a receipt needs.

use crate::adamw::AdamW;
use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::data::Corpus;
use crate::model::Gpt;
use crate::outer::{average, nesterov_step};
use crate::seeds::{Purpose, derive_seed};
use crate::train::train_step;
use crate::{Error, Result};
use crowdtrain_kernels::{ErrorFeedback, QuantizedBlob, dequantize};
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};

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

/// Trains `run.inner_steps` steps from `base` on provider `provider`'s shard of round
/// `round`, then compresses Δ = θ_start − θ_end with the provider's error feedback.
pub fn train_local(
    run: &RunConfig,
    corpus: &Corpus,
    model: &Gpt,
    base: &Checkpoint,
    round: u64,
    provider: u32,
    worker: &mut WorkerState,
) -> Result<LocalWork> {
    let base_checkpoint = base.hash()?;
    model.set_flat(&base.params)?;
    let adamw = match worker.adamw.as_mut() {
        Some(a) => a,
        None => worker.adamw.insert(AdamW::new(model.params())?),
    };
    let h = run.inner_steps;
    let batches = corpus.round_batches(
        &run.run_id,
        round,
        provider,
        run.shards,
        h,
        run.inner.batch,
        run.inner.seq_len,
    );
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
    let blob = worker.feedback.compress(&delta, run.quant, seed)?;
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
    /// The wire bytes.
    pub bytes: Vec<u8>,
}

/// A blob left out of the round, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Who served it.
    pub peer: String,
    /// Why it was left out.
    pub reason: String,
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
}

/// Decodes and checks `blobs`, averages the valid ones in ascending hash order on the
/// CPU, applies the outer Nesterov step to `base`, and returns the new checkpoint.
/// A malformed, wrong-length, non-finite or duplicate blob is left out with a warning.
pub fn aggregate(
    run: &RunConfig,
    round: u64,
    base: &Checkpoint,
    blobs: &[PeerBlob],
) -> Result<Aggregate> {
    let mut valid: Vec<(Hash32, QuantizedBlob)> = Vec::new();
    let mut rejected = Vec::new();
    for pb in blobs {
        match check_blob(&pb.bytes, base.params.len()) {
            Ok(blob) => {
                let hash = sha256(&pb.bytes);
                if valid.iter().any(|(h, _)| *h == hash) {
                    rejected.push(Rejected {
                        peer: pb.peer.clone(),
                        reason: format!("duplicate of blob {hash}"),
                    });
                } else {
                    valid.push((hash, blob));
                }
            }
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
    valid.sort_by_key(|v| v.0);
    let refs: Vec<&QuantizedBlob> = valid.iter().map(|(_, b)| b).collect();
    let g = average(&refs, base.params.len())?;
    let mut next = base.clone();
    nesterov_step(&mut next.params, &mut next.momentum, &g, run.outer);
    let blobs: Vec<Hash32> = valid.iter().map(|(h, _)| *h).collect();
    Ok(Aggregate {
        hash: next.hash()?,
        checkpoint: next,
        blob_set: blob_set_digest(&blobs),
        blobs,
        rejected,
    })
}

/// Why a blob cannot be used, or the decoded blob.
fn check_blob(bytes: &[u8], len: usize) -> std::result::Result<QuantizedBlob, String> {
    let blob = QuantizedBlob::from_bytes(bytes).map_err(|e| format!("does not decode: {e}"))?;
    if blob.len() != len {
        return Err(format!("holds {} values, the model has {len}", blob.len()));
    }
    if let Some(i) = dequantize(&blob).iter().position(|v| !v.is_finite()) {
        return Err(format!("value {i} is not finite"));
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
