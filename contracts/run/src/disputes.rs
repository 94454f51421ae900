//! Disputes, inside a round's challenge window, by the run's auditors:
//! - `dispute` voids one receipt: its credit is not paid, and the registration that
//!   signed it is slashed and never paid again (not a bond posted later);
//! - `dispute_result` rolls a round back: the open round restarts from the
//!   disputed round's base, every round finalized on top of it is rolled back with
//!   it (unpaid, nobody slashed: they trained honestly on a checkpoint that was
//!   final then), and every receipt that voted for the disputed result is slashed
//!   (the first page at once, the rest by anyone with `slash_voters`; until then a
//!   voter cannot vote, exit or be paid: it is slashed on the spot when it tries).

use crate::RunExt;
use crate::providers::ProviderStatus;
use crate::rounds::{CreditStatus, ResultDispute};
use crate::{Run, events};
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, env, near, require};

/// Longest dispute reason accepted.
pub const MAX_REASON_LEN: usize = 512;
/// Receipts `slash_voters` checks per call by default (and at most).
pub const SLASH_PAGE: u32 = 50;

impl Run {
    /// The auditors in charge now (a change waits `auditor_delay_ms`).
    pub(crate) fn internal_auditors(&self) -> &Vec<AccountId> {
        match &self.pending_auditors {
            Some((next, at)) if env::block_timestamp_ms() >= *at => next,
            _ => &self.config.auditors,
        }
    }

    fn assert_auditor_in_window(&self, round: u64, reason: &str) -> AccountId {
        let auditor = env::predecessor_account_id();
        require!(
            self.internal_auditors().contains(&auditor),
            "only the run's auditors may dispute"
        );
        require!(
            reason.len() <= MAX_REASON_LEN,
            "the reason must be at most 512 bytes"
        );
        let (_, fin) = self.internal_finalization(round);
        require!(round > 0, "the initial checkpoint cannot be disputed");
        let closes = fin.finalized_at_ms + self.config.challenge_window_ms.0;
        require!(
            env::block_timestamp_ms() < closes,
            format!("the challenge window of round {round} closed at {closes} (unix ms)")
        );
        auditor
    }

    /// Whether registration `generation` of `account_id` is proven dishonest,
    /// including by a result dispute whose slashing has not reached it yet.
    pub(crate) fn internal_is_dishonest(&self, account_id: &AccountId, generation: u64) -> bool {
        self.dishonest.contains(&generation)
            || self
                .pending_slash
                .iter()
                .any(|d| self.internal_voted_for_disputed(*d, account_id, generation))
    }

    fn internal_voted_for_disputed(&self, round: u64, account_id: &AccountId, gen_: u64) -> bool {
        let Some(fin) = self.rounds.get(&round).and_then(|s| s.finalization.clone()) else {
            return false;
        };
        self.receipts
            .get(&(round, account_id.clone()))
            .is_some_and(|r| {
                r.generation == gen_
                    && r.stake.0 > 0
                    && r.receipt.result_checkpoint == fin.result_checkpoint
                    && r.receipt.blob_set == fin.blob_set
            })
    }

    /// As `internal_is_dishonest`, slashing the registration on the spot when a
    /// pending result dispute catches it; the bond goes to the holders.
    pub(crate) fn internal_proven_dishonest(&mut self, account_id: &AccountId, gen_: u64) -> bool {
        if self.dishonest.contains(&gen_) {
            return true;
        }
        if !self.internal_is_dishonest(account_id, gen_) {
            return false;
        }
        let slashed = self.internal_slash(account_id, gen_);
        self.internal_distribute_rounding_down(slashed);
        true
    }

    /// Marks registration `gen_` dishonest and takes its bond, if `account_id` still
    /// holds that registration (a bond posted later is never touched). Returns the
    /// bond taken; the caller hands it to the holders.
    pub(crate) fn internal_slash(&mut self, account_id: &AccountId, gen_: u64) -> u128 {
        self.dishonest.insert(gen_);
        let Some(mut p) = self.providers.get(account_id).cloned() else {
            return 0;
        };
        if p.generation != gen_ || p.status == ProviderStatus::Slashed {
            return 0;
        }
        self.internal_deactivate(account_id, &p);
        let bond = std::mem::take(&mut p.bond);
        p.status = ProviderStatus::Slashed;
        self.providers.insert(account_id.clone(), p);
        self.bonds_held -= bond;
        events::emit(
            "provider_slashed",
            json!({ "account_id": account_id, "bond": U128(bond) }),
        );
        bond
    }

    /// Slashes up to `limit` more voters of disputed `round`; returns the bonds taken.
    fn internal_slash_voters(&mut self, round: u64, limit: u32) -> u128 {
        let (mut state, mut fin) = self.internal_finalization(round);
        let Some(mut dispute) = fin.disputed.clone() else {
            env::panic_str(&format!("round {round}'s result was not disputed"))
        };
        let end = state.receipt_count.min(dispute.slashed_through + limit);
        let mut taken = 0;
        for i in dispute.slashed_through..end {
            let who = self.voters.get(&(round, i)).cloned().expect("voter index");
            let key = (round, who.clone());
            let mut stored = self.receipts.get(&key).cloned().expect("receipt");
            let voted = stored.stake.0 > 0
                && stored.receipt.result_checkpoint == fin.result_checkpoint
                && stored.receipt.blob_set == fin.blob_set;
            if voted {
                taken += self.internal_slash(&who, stored.generation);
                stored.status = CreditStatus::Disputed {
                    auditor: dispute.auditor.clone(),
                    reason: "voted for a disputed result".into(),
                };
                self.receipts.insert(key, stored);
            }
        }
        dispute.slashed_through = end;
        if end == state.receipt_count {
            self.pending_slash.retain(|d| *d != round);
        }
        fin.disputed = Some(dispute);
        state.finalization = Some(fin);
        self.rounds.insert(round, state);
        taken
    }
}

#[near]
impl Run {
    /// An auditor voids `provider`'s receipt in finalized `round` inside its
    /// challenge window: the credit is not paid, the registration that signed it is
    /// slashed into the revenue pool (less the dispute's storage) and none of its
    /// other credits is paid.
    #[payable]
    pub fn dispute(&mut self, round: u64, provider: AccountId, reason: String) {
        let storage_before = env::storage_usage();
        let auditor = self.assert_auditor_in_window(round, &reason);
        let key = (round, provider.clone());
        let mut stored = self.receipts.get(&key).cloned().unwrap_or_else(|| {
            env::panic_str(&format!("{provider} has no receipt in round {round}"))
        });
        require!(
            stored.status == CreditStatus::Pending,
            format!("{provider}'s receipt in round {round} was already disputed")
        );
        stored.status = CreditStatus::Disputed {
            auditor: auditor.clone(),
            reason: reason.clone(),
        };
        let generation = stored.generation;
        self.receipts.insert(key, stored);
        let slashed = self.internal_slash(&provider, generation);
        self.flush_rounds();
        // The dispute's storage comes out of the slashed bond first, so an auditor
        // never has to pay to dispute, even once the treasury is spent.
        let mut to_holders = slashed;
        self.internal_pay_round_storage_from(storage_before, &mut to_holders);
        self.internal_distribute_rounding_down(to_holders);
        events::emit(
            "dispute",
            json!({ "round": round, "provider": provider, "auditor": auditor, "reason": reason,
                    "slashed": U128(slashed), "to_holders": U128(to_holders) }),
        );
    }

    /// An auditor disputes finalized `round`'s result inside its challenge window:
    /// the round and every round built on it are rolled back (the next open round
    /// builds on the disputed round's base), nothing of them is paid, and every
    /// receipt that voted for the result is slashed (the first page now, the rest
    /// with `slash_voters`).
    #[payable]
    pub fn dispute_result(&mut self, round: u64, reason: String) {
        let storage_before = env::storage_usage();
        let auditor = self.assert_auditor_in_window(round, &reason);
        let (mut state, mut fin) = self.internal_finalization(round);
        require!(
            fin.disputed.is_none(),
            format!("round {round}'s result was already disputed")
        );
        require!(
            self.internal_is_live(round),
            format!("round {round} was already rolled back by a dispute of an earlier round")
        );
        fin.disputed = Some(ResultDispute {
            auditor: auditor.clone(),
            reason: reason.clone(),
            slashed_through: 0,
        });
        let base = state.base_round;
        state.finalization = Some(fin);
        self.rounds.insert(round, state);
        self.pending_slash.push(round);
        self.head = base;
        self.next_round += 1;
        events::emit(
            "result_disputed",
            json!({ "round": round, "auditor": auditor, "reason": reason,
                    "rolled_back_to": base, "open_round": self.next_round }),
        );
        let slashed = self.internal_slash_voters(round, SLASH_PAGE);
        self.flush_rounds();
        let mut to_holders = slashed;
        self.internal_pay_round_storage_from(storage_before, &mut to_holders);
        self.internal_distribute_rounding_down(to_holders);
    }

    /// Anyone: slashes up to `limit` (default and at most 50) more voters of the
    /// disputed result of `round`. Returns how many receipts are left to check.
    #[payable]
    pub fn slash_voters(&mut self, round: u64, limit: Option<u32>) -> u32 {
        let storage_before = env::storage_usage();
        let slashed =
            self.internal_slash_voters(round, limit.unwrap_or(SLASH_PAGE).min(SLASH_PAGE));
        self.flush_rounds();
        let mut to_holders = slashed;
        self.internal_pay_round_storage_from(storage_before, &mut to_holders);
        self.internal_distribute_rounding_down(to_holders);
        let (state, fin) = self.internal_finalization(round);
        let through = fin.disputed.map_or(0, |d| d.slashed_through);
        events::emit(
            "voters_slashed",
            json!({ "round": round, "checked_through": through, "slashed": U128(slashed) }),
        );
        state.receipt_count - through
    }
}
