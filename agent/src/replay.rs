//! The replay audit: re-run one provider's inner steps of a round from checkpoint R−1,
//! on the samples the run assigned it, and compare the result with the blob it served
//! and the receipt it signed.
//!
//! A provider carries its inner AdamW moments and its error-feedback residual from round
//! to round; the replay rebuilds them by re-training the provider's earlier rounds
//! ([`Claim::earlier`]) before the claimed one. Training is not bit-reproducible across
//! CPUs and GPUs (GEMM kernels differ), so the comparison is a statistical test, not an
//! equality:
//! - the cosine similarity of the replayed Δ and the blob's dequantized values, in f64,
//!   summed in index order, must reach [`Tolerance::min_cosine`];
//! - the norm ratio ‖blob‖ / ‖replayed Δ‖ must lie in [`Tolerance::norm_ratio`];
//! - the receipt's `inner_steps` and `tokens` must equal the assignment's exactly, and
//!   its `loss_start` / `loss_end` must match the replay's within
//!   [`Tolerance::loss_rel`] (relative).
//!
//! The default thresholds come from the measurements in agent/README.md ("Replay audit").

use crate::assignment::DataPlan;
use crate::checkpoint::Checkpoint;
use crate::clip::blob_norm;
use crate::config::RunConfig;
use crate::data::Corpus;
use crate::model::Gpt;
use crate::round::{RoundBase, WorkerState, train_local, train_local_at};
use crate::{Error, Result};
use crowdtrain_kernels::{QuantizedBlob, dequantize};
use crowdtrain_protocol::{Hash32, Receipt, sha256};

/// What an auditor replays: a provider (its index in the run's provider list), the
/// receipt it signed and the blob it served.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// The provider's index in the run's provider list (its data slot's key).
    pub provider: u32,
    /// Its signed receipt for the round.
    pub receipt: &'a Receipt,
    /// The blob whose hash the receipt names.
    pub blob: &'a [u8],
    /// The rounds this provider trained before (oldest first) with their base
    /// checkpoints: the replay re-trains them first to rebuild the inner AdamW moments
    /// and error-feedback residual the provider carried into the claimed round. Without
    /// them an honest replay drifts (cosine 0.62 measured one round in; README).
    pub earlier: &'a [(u64, &'a Checkpoint)],
}

/// Thresholds of the statistical test (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Least cosine similarity between the replayed and the claimed pseudo-gradient.
    pub min_cosine: f64,
    /// Accepted range of ‖claimed‖ / ‖replayed‖.
    pub norm_ratio: (f64, f64),
    /// Accepted relative difference of the claimed and replayed losses.
    pub loss_rel: f64,
}

/// Longest evidence string: the run contract's limit on a dispute reason.
pub const MAX_EVIDENCE_LEN: usize = 512;

impl Default for Tolerance {
    /// Measured (tiny model, H = 8, tests/replay.rs): honest replays reach a cosine of
    /// 1.0000 (int8) and 0.9765 (int4, one round of history) with norm ratios within
    /// 1.000–1.024, 1 vs 2 threads; the closest dishonest one (trained on another
    /// slot's data) reaches 0.5731. The thresholds sit between, with margin both ways.
    fn default() -> Self {
        Self {
            min_cosine: 0.9,
            norm_ratio: (0.8, 1.25),
            loss_rel: 0.02,
        }
    }
}

/// The outcome of one replay: every figure compared, and what failed.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayReport {
    /// The round replayed.
    pub round: u64,
    /// The provider's index.
    pub provider: u32,
    /// The claimed blob.
    pub blob: Hash32,
    /// Cosine similarity of the replayed Δ and the claimed blob's values.
    pub cosine: f64,
    /// ‖claimed‖ / ‖replayed‖.
    pub norm_ratio: f64,
    /// The replay re-created the claimed blob bit for bit (same machine kind, round 0).
    pub bit_exact: bool,
    /// (claimed, replayed) loss at the first inner step.
    pub loss_start: (f32, f32),
    /// (claimed, replayed) loss at the last inner step.
    pub loss_end: (f32, f32),
    /// (claimed, assigned) tokens.
    pub tokens: (u64, u64),
    /// (claimed, run's) inner steps.
    pub inner_steps: (u32, u32),
    /// Every check that failed, in words; empty when the claim holds.
    pub failures: Vec<String>,
}

impl ReplayReport {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A one-line summary fit for a dispute's reason (the figures and what failed), at
    /// most [`MAX_EVIDENCE_LEN`] bytes.
    pub fn evidence(&self) -> String {
        let mut text = self.full_evidence();
        if text.len() > MAX_EVIDENCE_LEN {
            let mut cut = MAX_EVIDENCE_LEN - 3;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push_str("...");
        }
        text
    }

    /// [`Self::evidence`] before the length cap.
    fn full_evidence(&self) -> String {
        let verdict = if self.passed() {
            "consistent".to_string()
        } else {
            format!("FAILED: {}", self.failures.join("; "))
        };
        format!(
            "replay of provider {} round {} blob {}: cosine {:.4}, norm ratio {:.3}, \
             loss_start {:.4} vs {:.4}, loss_end {:.4} vs {:.4}, tokens {} vs {}{}: {verdict}",
            self.provider,
            self.round,
            &self.blob.to_hex()[..16],
            self.cosine,
            self.norm_ratio,
            self.loss_start.0,
            self.loss_start.1,
            self.loss_end.0,
            self.loss_end.1,
            self.tokens.0,
            self.tokens.1,
            if self.bit_exact { ", bit-exact" } else { "" },
        )
    }
}

/// Replays `claim`'s round from `base` (checkpoint R−1) on `model`'s device and judges
/// the claim with `tol`. Errors are the auditor's own problems (a blob that does not
/// match the receipt's hash or decode, a base that is not the receipt's); everything
/// the provider could have faked is a failure in the report.
pub fn replay(
    run: &RunConfig,
    corpus: &Corpus,
    model: &Gpt,
    base: &Checkpoint,
    claim: &Claim<'_>,
    tol: &Tolerance,
) -> Result<ReplayReport> {
    let receipt = claim.receipt;
    let blob_hash = sha256(claim.blob);
    if blob_hash != receipt.blob {
        return Err(Error::Checkpoint(format!(
            "the blob given hashes to {blob_hash}, the receipt names {}: fetch the receipt's blob",
            receipt.blob
        )));
    }
    let base = RoundBase::new(base)?;
    if base.hash != receipt.base_checkpoint {
        return Err(Error::CheckpointHash {
            expected: receipt.base_checkpoint,
            actual: base.hash,
        });
    }
    let claimed = QuantizedBlob::from_bytes(claim.blob)?;
    if claimed.len() != base.checkpoint.params.len() {
        return Err(Error::Shape(format!(
            "the blob holds {} values, the model has {}",
            claimed.len(),
            base.checkpoint.params.len()
        )));
    }
    let round = receipt.round;
    let mut worker = WorkerState::new(claimed.len());
    for &(earlier, checkpoint) in claim.earlier {
        train_local(
            run,
            corpus,
            model,
            checkpoint,
            earlier,
            claim.provider,
            &mut worker,
        )?;
    }
    let work = train_local_at(
        run,
        corpus,
        model,
        &base,
        round,
        claim.provider,
        &mut worker,
    )?;
    let end = model.flat()?;
    let replayed: Vec<f32> = base
        .checkpoint
        .params
        .iter()
        .zip(&end)
        .map(|(s, e)| s - e)
        .collect();
    let values = dequantize(&claimed);
    let cosine = cosine(&values, &replayed);
    let norm_ratio = blob_norm(&claimed) / l2(&replayed);
    let plan = DataPlan::new(
        corpus,
        run.inner.seq_len,
        run.inner.batch,
        run.inner_steps,
        run.shards,
    )?;
    let assigned = plan
        .assignment(&run.run_id, round, claim.provider)?
        .tokens();
    let mut report = ReplayReport {
        round,
        provider: claim.provider,
        blob: blob_hash,
        cosine,
        norm_ratio,
        bit_exact: work.blob_hash == blob_hash,
        loss_start: (receipt.loss_start, work.loss_start),
        loss_end: (receipt.loss_end, work.loss_end),
        tokens: (receipt.tokens, assigned),
        inner_steps: (receipt.inner_steps, run.inner_steps),
        failures: Vec::new(),
    };
    report.failures = failures(&report, tol);
    tracing::info!(evidence = %report.evidence(), "replay done");
    Ok(report)
}

/// The checks of the module docs, each failure in words.
fn failures(r: &ReplayReport, tol: &Tolerance) -> Vec<String> {
    let mut out = Vec::new();
    if r.cosine.is_nan() || r.cosine < tol.min_cosine {
        out.push(format!(
            "cosine {:.4} below {} (the blob is not this training)",
            r.cosine, tol.min_cosine
        ));
    }
    let (lo, hi) = tol.norm_ratio;
    if !(lo..=hi).contains(&r.norm_ratio) {
        out.push(format!(
            "norm ratio {:.3} outside [{lo}, {hi}]",
            r.norm_ratio
        ));
    }
    if r.inner_steps.0 != r.inner_steps.1 {
        out.push(format!(
            "receipt claims {} inner steps, the run has {}",
            r.inner_steps.0, r.inner_steps.1
        ));
    }
    if r.tokens.0 != r.tokens.1 {
        out.push(format!(
            "receipt claims {} tokens, the assignment holds {}",
            r.tokens.0, r.tokens.1
        ));
    }
    for (name, (claimed, replayed)) in [("loss_start", r.loss_start), ("loss_end", r.loss_end)] {
        let rel = ((claimed - replayed) as f64 / replayed as f64).abs();
        if rel.is_nan() || rel > tol.loss_rel {
            out.push(format!(
                "{name} {claimed:.4} vs replayed {replayed:.4} (off by {:.1}%)",
                100.0 * rel
            ));
        }
    }
    out
}

/// ‖v‖₂ in f64, summed in index order.
fn l2(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Cosine similarity in f64, summed in index order (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let norms = l2(a) * l2(b);
    if norms == 0.0 { 0.0 } else { dot / norms }
}
