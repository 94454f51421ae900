//! Read-only views for dashboards and agents.

use crate::RunExt;
use crate::funding::FundingPhase;
use crate::{Checkpoint, RoundState, Run, RunConfig, StoredReceipt};
use near_sdk::json_types::U128;
use near_sdk::near;

/// The run at a glance.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The configuration (with the current auditors).
    pub config: RunConfig,
    /// Whether the owner paused the run.
    pub paused: bool,
    /// Funding phase.
    pub phase: FundingPhase,
    /// The last finalized round (0 = none yet); the open round is this + 1.
    pub last_finalized_round: u64,
    /// The checkpoint to train the open round from.
    pub checkpoint: Checkpoint,
    /// Registered providers (any status).
    pub providers: u32,
    /// Shares outstanding.
    pub total_supply: U128,
}

/// Where every yoctoNEAR the run holds belongs.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct TreasuryView {
    /// Left to pay compute (deposits − refunds − compute credited − round storage).
    pub treasury: U128,
    /// Raised by funding deposits.
    pub raised: U128,
    /// Refunded after a missed goal.
    pub refunded: U128,
    /// Compute payments credited to providers.
    pub compute_paid: U128,
    /// Compute payments sent out by claims.
    pub compute_sent: U128,
    /// Revenue paid in (including slashed bonds).
    pub revenue_in: U128,
    /// Royalties sent out by claims and unregistering.
    pub royalties_claimed: U128,
    /// Provider bonds held.
    pub bonds_held: U128,
    /// Storage paid for (share accounts, provider records, rounds).
    pub storage_held: U128,
    /// The part of `storage_held` that pays for receipts, finalizations and checkpoints.
    pub round_storage: U128,
}

#[near]
impl Run {
    /// The run at a glance.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            config: self.config.clone(),
            paused: self.paused,
            phase: self.internal_funding_phase(),
            last_finalized_round: self.last_finalized,
            checkpoint: self
                .checkpoints
                .get(&self.last_finalized)
                .cloned()
                .expect("checkpoint"),
            providers: self.providers.len(),
            total_supply: U128(self.total_supply),
        }
    }

    /// Receipts, finalization and credits of round `round` (null if nothing posted).
    /// The wasm exports it as `round`: `make contracts` renames the export, since a
    /// symbol named `round` clashes with libm's (contracts/rename_export.py).
    pub fn round_view(&self, round: u64) -> Option<RoundState> {
        self.rounds.get(&round).cloned()
    }

    /// The checkpoint finalized by round `round` (0 = initial), or null.
    pub fn checkpoint(&self, round: u64) -> Option<Checkpoint> {
        self.checkpoints.get(&round).cloned()
    }

    /// The receipts posted for round `round`, in arrival order.
    pub fn receipts(&self, round: u64) -> Vec<StoredReceipt> {
        self.rounds
            .get(&round)
            .map(|s| s.receipts.clone())
            .unwrap_or_default()
    }

    /// Where the run's money is.
    pub fn treasury(&self) -> TreasuryView {
        TreasuryView {
            treasury: U128(self.treasury),
            raised: U128(self.raised),
            refunded: U128(self.refunded),
            compute_paid: U128(self.compute_paid),
            compute_sent: U128(self.compute_sent),
            revenue_in: U128(self.revenue_in),
            royalties_claimed: U128(self.royalties_claimed),
            bonds_held: U128(self.bonds_held),
            storage_held: U128(
                self.holder_storage_held + self.provider_storage_held + self.round_storage_held,
            ),
            round_storage: U128(self.round_storage_held),
        }
    }
}
