//! The auditor's check of one round: from checkpoint r−1 and the round's blobs, recompute
//! the aggregation and outer step (the same canonical path every provider runs) and
//! compare the result with what the chain finalized. Every difference is named.

use crate::checkpoint::Checkpoint;
use crate::provider::peers::{PeersError, read_blob_dir, round_dir};
use crate::round::{PeerBlob, Rejected, aggregate};
use crate::spec::RunSpec;
use crowdtrain_protocol::{Hash32, blob_set_digest, sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// What the chain says about the round (from its views, or given by hand).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// Checkpoint r−1, the round's base.
    pub base: Hash32,
    /// The checkpoint the round finalized.
    pub checkpoint: Hash32,
    /// The finalized blob-set digest, if known.
    pub blob_set: Option<Hash32>,
    /// The exact blobs of the round, if known (others found are ignored).
    pub blobs: Option<Vec<Hash32>>,
}

/// One way the recomputation differs from the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The checkpoint recomputed from the blobs is not the finalized one.
    CheckpointDiffers {
        /// On chain.
        expected: Hash32,
        /// Recomputed here.
        recomputed: Hash32,
    },
    /// The blobs found do not make the finalized blob set.
    BlobSetDiffers {
        /// On chain.
        expected: Hash32,
        /// Of the blobs used here.
        recomputed: Hash32,
    },
    /// A blob of the round was not found.
    BlobMissing(Hash32),
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::CheckpointDiffers {
                expected,
                recomputed,
            } => write!(
                f,
                "checkpoint differs: the chain finalized {expected}, the blobs give {recomputed}"
            ),
            Finding::BlobSetDiffers {
                expected,
                recomputed,
            } => write!(
                f,
                "blob set differs: the chain finalized digest {expected}, the blobs found make {recomputed}"
            ),
            Finding::BlobMissing(h) => write!(f, "blob {h} of the round was not found"),
        }
    }
}

/// The outcome of an audit.
#[derive(Clone, Debug)]
pub struct AuditReport {
    /// The chain round audited.
    pub round: u64,
    /// The checkpoint recomputed.
    pub recomputed: Hash32,
    /// Digest of the blobs used.
    pub blob_set: Hash32,
    /// The blobs used, ascending (the aggregation order).
    pub blobs: Vec<Hash32>,
    /// Blobs found but unusable, with reasons.
    pub rejected: Vec<Rejected>,
    /// Every difference from the chain; empty when the round checks out.
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Whether the recomputation matches the chain in every respect checked.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Why an audit could not be carried out (as opposed to finding a difference).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The base checkpoint file is not there.
    #[error("checkpoint {hash} (the round's base) is not in {dir}: expected {hash}.safetensors")]
    BaseMissing {
        /// The hash looked for.
        hash: Hash32,
        /// The folder looked in.
        dir: PathBuf,
    },
    /// The blob folder holds no usable blob of the round.
    #[error("no blob of round {round} in {dir} (expected <sha256>.blob files)")]
    NoBlobs {
        /// The round.
        round: u64,
        /// The folder looked in.
        dir: PathBuf,
    },
    /// Reading, checking or recomputing failed (a base whose bytes do not hash to the
    /// chain's value is refused here).
    #[error(transparent)]
    Recompute(#[from] crate::Error),
    /// A folder could not be read.
    #[error(transparent)]
    Files(#[from] PeersError),
}

/// Recomputes round `round` from `base` and `blobs` and compares it with `expected`.
pub fn audit_round(
    spec: &RunSpec,
    round: u64,
    base: &Checkpoint,
    blobs: &[PeerBlob],
    expected: &Expected,
) -> Result<AuditReport, AuditError> {
    let mut findings = Vec::new();
    let chosen: Vec<PeerBlob> = match &expected.blobs {
        Some(want) => {
            let found: Vec<PeerBlob> = blobs
                .iter()
                .filter(|b| want.contains(&sha256(&b.bytes)))
                .cloned()
                .collect();
            for h in want {
                if !found.iter().any(|b| sha256(&b.bytes) == *h) {
                    findings.push(Finding::BlobMissing(*h));
                }
            }
            found
        }
        None => blobs.to_vec(),
    };
    let agg = aggregate(spec.config(), round, base, &chosen)?;
    if let Some(want) = expected.blob_set
        && want != agg.blob_set
    {
        findings.push(Finding::BlobSetDiffers {
            expected: want,
            recomputed: agg.blob_set,
        });
    }
    if agg.hash != expected.checkpoint {
        findings.push(Finding::CheckpointDiffers {
            expected: expected.checkpoint,
            recomputed: agg.hash,
        });
    }
    debug_assert_eq!(agg.blob_set, blob_set_digest(&agg.blobs));
    Ok(AuditReport {
        round,
        recomputed: agg.hash,
        blob_set: agg.blob_set,
        blobs: agg.blobs,
        rejected: agg.rejected,
        findings,
    })
}

/// [`audit_round`] from folders: the base `<hash>.safetensors` from `checkpoints` (or its
/// `checkpoints/` subfolder), the round's `<sha256>.blob` files from `blobs` (or its
/// `round-<r>/` or `blobs/round-<r>/` subfolder, the layout of a shared peers folder).
pub fn audit_from_dirs(
    spec: &RunSpec,
    round: u64,
    checkpoints: &Path,
    blobs: &Path,
    expected: &Expected,
) -> Result<AuditReport, AuditError> {
    let ck_dir = first_dir([checkpoints.join("checkpoints"), checkpoints.to_path_buf()]);
    let base_path = ck_dir.join(format!("{}.safetensors", expected.base));
    if !base_path.exists() {
        return Err(AuditError::BaseMissing {
            hash: expected.base,
            dir: ck_dir,
        });
    }
    let base = Checkpoint::load(&base_path, &spec.config().model, expected.base)?;
    let blob_dir = first_dir([
        round_dir(blobs, round),
        blobs.join(format!("round-{round}")),
        blobs.to_path_buf(),
    ]);
    let found = read_blob_dir(&blob_dir)?;
    if found.is_empty() {
        return Err(AuditError::NoBlobs {
            round,
            dir: blob_dir,
        });
    }
    audit_round(spec, round, &base, &found, expected)
}

/// The first of `candidates` that is a folder (the last one otherwise).
fn first_dir<const N: usize>(candidates: [PathBuf; N]) -> PathBuf {
    let last = candidates[N - 1].clone();
    candidates.into_iter().find(|p| p.is_dir()).unwrap_or(last)
}
