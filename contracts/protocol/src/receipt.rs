//! The signed progress receipt a provider posts after each round.

use crate::hash::{Hash32, sha256};
use alloc::string::String;
use alloc::vec::Vec;
use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest, Sha256};

/// Domain tag prefixed to every receipt before hashing: a receipt's signature can
/// never be mistaken for a signature over anything else.
pub const RECEIPT_TAG: &[u8] = b"crowdtrain:receipt:v1\0";
/// Domain tag prefixed to the sorted blob hashes of a round.
pub const BLOB_SET_TAG: &[u8] = b"crowdtrain:blob-set:v1\0";

/// What one provider claims it did in one round. Signed with the provider's
/// registered ed25519 key over [`Receipt::signing_hash`]. `run` is part of the
/// signed bytes, so a receipt for one run can never verify on another.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Receipt {
    /// Account id of the run contract.
    pub run: String,
    /// Round number (1 is the first round trained from the initial checkpoint).
    pub round: u64,
    /// Account id of the provider.
    pub provider: String,
    /// Finalized checkpoint of round − 1 that training started from.
    pub base_checkpoint: Hash32,
    /// Checkpoint this provider computed after aggregating the round's blobs.
    pub result_checkpoint: Hash32,
    /// sha256 of the provider's own compressed pseudo-gradient blob.
    pub blob: Hash32,
    /// [`blob_set_digest`] of every blob aggregated into `result_checkpoint`.
    pub blob_set: Hash32,
    /// Inner optimizer steps taken.
    pub inner_steps: u32,
    /// Training tokens processed in the inner steps.
    pub tokens: u64,
    /// Training loss at the first inner step.
    pub loss_start: f32,
    /// Training loss at the last inner step.
    pub loss_end: f32,
    /// Wall-clock time the receipt was made, unix milliseconds.
    pub unix_ms: u64,
}

impl Receipt {
    /// The canonical borsh bytes of the receipt.
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("a receipt with finite losses always serializes")
    }

    /// The 32 bytes a provider signs: sha256(RECEIPT_TAG ‖ borsh(receipt)).
    pub fn signing_hash(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(RECEIPT_TAG);
        h.update(self.to_bytes());
        Hash32(h.finalize().into())
    }

    /// Whether both losses are finite numbers (borsh refuses NaN, and a receipt
    /// with an infinite loss describes a diverged round).
    pub fn losses_are_finite(&self) -> bool {
        self.loss_start.is_finite() && self.loss_end.is_finite()
    }
}

/// The digest of a round's blob set: sha256(BLOB_SET_TAG ‖ sorted unique hashes).
/// Order-independent, so every agent that gathered the same blobs agrees.
pub fn blob_set_digest(blobs: &[Hash32]) -> Hash32 {
    let mut sorted: Vec<Hash32> = blobs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut bytes = Vec::with_capacity(BLOB_SET_TAG.len() + 32 * sorted.len());
    bytes.extend_from_slice(BLOB_SET_TAG);
    for h in &sorted {
        bytes.extend_from_slice(&h.0);
    }
    sha256(&bytes)
}
