//! The seam between the provider loop and the run contract: [`RunChain`] is what one
//! provider's round needs from the chain, stated once. The agent's JSON-RPC client
//! implements it (a blocking facade over its async calls); tests implement it in memory
//! with the contract's rules. The rules both must keep:
//!
//! - Round numbers are chain rounds: round 0 is the initial checkpoint, round 1 the first
//!   trained round. The open round builds on the tip of the finalized chain; it is the
//!   tip + 1 unless a disputed result was rolled back (then the open round gets a fresh
//!   id: round ids are never reused). Read it, never compute it.
//! - A receipt is accepted only for the open round, only on the tip's checkpoint as
//!   base, only with the run's inner steps, and once per (provider, round).
//! - A round finalizes once enough receipts (by count and by bonded stake) agree on
//!   (result checkpoint, blob-set digest); finalizing a round that is already finalized
//!   is success for the caller.

use crowdtrain_protocol::{Hash32, Receipt};
use serde::{Deserialize, Serialize};

/// What the run contract fixes for every round (its configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTerms {
    /// The run's account id (receipts carry it).
    pub run: String,
    /// `model_spec_hash`: the canonical hash of the run's training spec.
    pub spec_hash: Hash32,
    /// Agreeing receipts needed to finalize a round.
    pub quorum: u32,
    /// Inner steps every receipt must report (H).
    pub inner_steps: u32,
    /// Most tokens one provider may report in one round.
    pub max_tokens_per_round: u64,
    /// sha256 of the dataset file every provider trains on.
    pub dataset_hash: Hash32,
}

/// A finalized checkpoint as the run contract records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCheckpoint {
    /// The round that produced it (0 = the initial checkpoint).
    pub round: u64,
    /// sha256 of the canonical checkpoint file.
    pub hash: Hash32,
    /// Where to fetch it (`sha256:<hash>` = from peers by content address).
    pub uri: String,
    /// When it was finalized (chain time, unix ms; 0 for the initial one).
    pub finalized_at_ms: u64,
}

/// The round open for receipts and the checkpoint it trains from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRound {
    /// The round taking receipts (the contract's `open_round`).
    pub round: u64,
    /// The tip of the finalized chain: the checkpoint this round trains from.
    pub base: ChainCheckpoint,
}

/// A registered provider, as the run contract lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// The provider's account id.
    pub account: String,
    /// Position in the contract's registration order (the provider index seeds derive from).
    pub index: u32,
    /// The key its receipts are verified with (`ed25519:<base58>`).
    pub signing_key: String,
    /// Peer id other agents fetch its blobs from.
    pub node_id: String,
    /// Whether it may post receipts now (not exiting, not slashed).
    pub active: bool,
}

/// Why a chain call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The endpoint could not be reached or timed out: try again later; nothing was lost
    /// (a queued transaction stays in the outbox).
    #[error("chain unreachable: {0}")]
    Unavailable(String),
    /// The run contract refused the call; the message is the contract's own.
    #[error("the run contract refused: {0}")]
    Rejected(String),
    /// The chain answered something this agent cannot read (wrong contract or version).
    #[error("unexpected answer from the chain: {0}")]
    Invalid(String),
}

/// What one provider's round needs from the run contract. Blocking; every method may
/// be retried after [`ChainError::Unavailable`].
pub trait RunChain {
    /// The run's fixed terms (spec hash, quorum, inner steps, token cap).
    fn terms(&self) -> Result<RunTerms, ChainError>;

    /// The open round and the checkpoint it builds on. Rejected
    /// while rounds are not open (funding goal not reached, run paused), with the reason.
    fn open_round(&self) -> Result<OpenRound, ChainError>;

    /// The checkpoint finalized by `round` (0 = initial), if it is finalized.
    fn checkpoint(&self, round: u64) -> Result<Option<ChainCheckpoint>, ChainError>;

    /// Every registered provider, in the contract's order.
    fn providers(&self) -> Result<Vec<ProviderInfo>, ChainError>;

    /// The receipts posted for `round`, in arrival order.
    fn receipts(&self, round: u64) -> Result<Vec<Receipt>, ChainError>;

    /// Posts a signed receipt: queued durably first, then sent. `Ok` once queued; a
    /// receipt the chain already holds for this (provider, round) is success.
    /// `signature` is ed25519 over [`Receipt::signing_hash`].
    fn post_receipt(&self, receipt: &Receipt, signature: &[u8; 64]) -> Result<(), ChainError>;

    /// Finalizes `round` on `result` with the blob set `blob_hashes` (any order). A round
    /// that is already finalized is success; "no quorum" is [`ChainError::Rejected`].
    fn finalize_round(
        &self,
        round: u64,
        blob_hashes: &[Hash32],
        result: Hash32,
    ) -> Result<(), ChainError>;
}

impl<T: RunChain + ?Sized> RunChain for &T {
    fn terms(&self) -> Result<RunTerms, ChainError> {
        (**self).terms()
    }
    fn open_round(&self) -> Result<OpenRound, ChainError> {
        (**self).open_round()
    }
    fn checkpoint(&self, round: u64) -> Result<Option<ChainCheckpoint>, ChainError> {
        (**self).checkpoint(round)
    }
    fn providers(&self) -> Result<Vec<ProviderInfo>, ChainError> {
        (**self).providers()
    }
    fn receipts(&self, round: u64) -> Result<Vec<Receipt>, ChainError> {
        (**self).receipts(round)
    }
    fn post_receipt(&self, receipt: &Receipt, signature: &[u8; 64]) -> Result<(), ChainError> {
        (**self).post_receipt(receipt, signature)
    }
    fn finalize_round(
        &self,
        round: u64,
        blob_hashes: &[Hash32],
        result: Hash32,
    ) -> Result<(), ChainError> {
        (**self).finalize_round(round, blob_hashes, result)
    }
}
