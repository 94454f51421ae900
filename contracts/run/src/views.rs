//! Read-only views for dashboards and agents.

use crate::RunExt;
use crate::funding::FundingPhase;
use crate::rounds::{RoundStatus, RoundView, Tally};
use crate::{Checkpoint, Hash32, Run, RunConfig, StoredReceipt};
use near_sdk::json_types::{U64, U128};
use near_sdk::{AccountId, env, near};

/// Most receipts one `receipts` view returns.
pub const MAX_RECEIPTS_PAGE: u32 = 200;

/// The run at a glance.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// The configuration (with the auditors in charge now).
    pub config: RunConfig,
    /// Whether the owner paused the run.
    pub paused: bool,
    /// Whether the run is closed.
    pub closed: bool,
    /// Funding phase.
    pub phase: FundingPhase,
    /// The tip of the live chain: the round the open round builds on (0 = the
    /// initial checkpoint). Without rollbacks it is the last finalized round.
    pub last_finalized_round: u64,
    /// The round taking receipts now (= last_finalized_round + 1 unless a result
    /// was disputed: round ids are never reused).
    pub open_round: u64,
    /// The checkpoint to train the open round from.
    pub checkpoint: Checkpoint,
    /// Bonds of active providers: the stake quorums are a fraction of.
    pub active_stake: U128,
    /// Agreeing stake a round needs now to finalize.
    pub quorum_stake: U128,
    /// Auditors named by `set_auditors` and when they take over (unix ms).
    pub pending_auditors: Option<(Vec<AccountId>, U64)>,
    /// The successor named by `propose_owner`.
    pub pending_owner: Option<AccountId>,
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
    /// Payouts that failed and wait for `retry_payout`.
    pub payouts_owed: U128,
    /// Payouts sent and not yet confirmed.
    pub payouts_in_flight: U128,
}

#[near]
impl Run {
    /// The run at a glance.
    pub fn run_info(&self) -> RunInfo {
        let mut config = self.config.clone();
        config.auditors = self.internal_auditors().clone();
        let pending_auditors = self
            .pending_auditors
            .clone()
            .filter(|(_, at)| env::block_timestamp_ms() < *at)
            .map(|(list, at)| (list, U64(at)));
        RunInfo {
            config,
            paused: self.paused,
            closed: self.closed,
            phase: self.internal_funding_phase(),
            last_finalized_round: self.head,
            open_round: self.next_round,
            checkpoint: self
                .checkpoints
                .get(&self.head)
                .cloned()
                .expect("checkpoint"),
            active_stake: U128(self.active_stake),
            quorum_stake: U128(self.internal_quorum_stake()),
            pending_auditors,
            pending_owner: self.pending_owner.clone(),
            providers: self.providers.len(),
            total_supply: U128(self.total_supply),
        }
    }

    /// Round `round`'s record and where it stands (null if it has none). Receipts
    /// are paged with `receipts`. The wasm exports it as `round`: `make contracts`
    /// renames the export, since a symbol named `round` clashes with libm's
    /// (contracts/rename_export.py).
    pub fn round_view(&self, round: u64) -> Option<RoundView> {
        let state = self.rounds.get(&round).cloned()?;
        let status = match &state.finalization {
            None if round == self.next_round && !self.closed => RoundStatus::Open,
            None => RoundStatus::Abandoned,
            Some(f) if f.disputed.is_some() => RoundStatus::Disputed,
            Some(f) if f.settled => RoundStatus::Settled,
            Some(_) if self.internal_is_live(round) => RoundStatus::Finalized,
            Some(_) => RoundStatus::RolledBack,
        };
        Some(RoundView {
            round,
            status,
            state,
        })
    }

    /// The checkpoint finalized by round `round` (0 = initial), or null. A rolled
    /// back round's checkpoint stays readable; `round` says it was rolled back.
    pub fn checkpoint(&self, round: u64) -> Option<Checkpoint> {
        self.checkpoints.get(&round).cloned()
    }

    /// The receipts posted for round `round`, in arrival order, `limit` (default
    /// 100, at most 200) from `from_index`, each with what became of its credit.
    pub fn receipts(
        &self,
        round: u64,
        from_index: Option<u32>,
        limit: Option<u32>,
    ) -> Vec<StoredReceipt> {
        let count = self.rounds.get(&round).map_or(0, |s| s.receipt_count);
        let from = from_index.unwrap_or(0).min(count);
        let end = count.min(from.saturating_add(limit.unwrap_or(100).min(MAX_RECEIPTS_PAGE)));
        (from..end)
            .filter_map(|i| {
                let who = self.voters.get(&(round, i))?;
                self.receipts.get(&(round, who.clone())).cloned()
            })
            .collect()
    }

    /// `provider`'s receipt for `round`, or null.
    pub fn receipt(&self, round: u64, provider: AccountId) -> Option<StoredReceipt> {
        self.receipts.get(&(round, provider)).cloned()
    }

    /// The stake and count of receipts agreeing on (`result`, `blob_set`) in `round`.
    pub fn tally(&self, round: u64, result: Hash32, blob_set: Hash32) -> Tally {
        self.tallies
            .get(&(round, result, blob_set))
            .copied()
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
            payouts_owed: U128(self.payouts_owed_total),
            payouts_in_flight: U128(self.payouts_in_flight),
        }
    }
}
