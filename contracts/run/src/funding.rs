//! Funding: deposits mint shares 1:1 until the deadline; if the goal is missed,
//! every share is refundable 1:1 from the treasury.

use crate::RunExt;
use crate::{Run, events};
use near_sdk::json_types::{U64, U128};
use near_sdk::serde_json::json;
use near_sdk::{NearToken, Promise, env, near, require};

/// Where the funding stands.
#[near(serializers = [json])]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FundingPhase {
    /// Before the deadline, goal not reached yet: deposits welcome.
    Open,
    /// Goal reached: rounds are open (deposits still welcome until the deadline).
    Funded,
    /// Deadline passed below the goal: funders may `refund`.
    Failed,
}

/// The funding numbers a dashboard shows.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct FundingStatus {
    /// Where the funding stands.
    pub phase: FundingPhase,
    /// Deposited into shares so far (net of storage).
    pub raised: U128,
    /// The funding goal.
    pub goal: U128,
    /// The funding deadline, unix ms.
    pub deadline_ms: U64,
    /// Refunded after a missed goal.
    pub refunded: U128,
    /// Storage cost taken from a new funder's first deposit.
    pub storage_cost: U128,
}

impl Run {
    /// The current funding phase.
    pub(crate) fn internal_funding_phase(&self) -> FundingPhase {
        if self.raised >= self.config.funding_goal.0 {
            FundingPhase::Funded
        } else if self.closed || env::block_timestamp_ms() >= self.config.funding_deadline_ms.0 {
            FundingPhase::Failed
        } else {
            FundingPhase::Open
        }
    }

    pub(crate) fn assert_not_paused(&self) {
        require!(
            !self.paused,
            "the run is paused by its owner; try again later"
        );
    }
}

#[near]
impl Run {
    /// Funds the run: mints shares 1:1 for the attached yoctoNEAR. A new funder's
    /// first deposit also pays its share-token storage (see `storage_cost` in the event).
    #[payable]
    pub fn deposit(&mut self) {
        self.assert_not_paused();
        require!(
            !self.closed,
            "the run is closed: deposits are no longer accepted"
        );
        require!(
            env::block_timestamp_ms() < self.config.funding_deadline_ms.0,
            "funding closed at the deadline; deposits are no longer accepted"
        );
        let amount = env::attached_deposit().as_yoctonear();
        let min = self.config.min_deposit.0;
        require!(
            amount >= min,
            format!(
                "deposit is below the minimum of {min} yoctoNEAR ({})",
                NearToken::from_yoctonear(min).exact_amount_display()
            )
        );
        let account_id = env::predecessor_account_id();
        let mut storage_cost = 0;
        if !self.holders.contains_key(&account_id) {
            storage_cost = self.internal_account_storage_cost();
            require!(
                amount > storage_cost,
                format!("deposit must exceed the storage cost of {storage_cost} yoctoNEAR")
            );
            self.internal_register(&account_id, storage_cost);
            self.holder_storage_held += storage_cost;
        }
        let shares = amount - storage_cost;
        self.raised += shares;
        self.treasury += shares;
        self.internal_mint(&account_id, shares, "funding deposit");
        events::emit(
            "deposit",
            json!({ "account_id": account_id, "amount": U128(amount), "shares": U128(shares),
                    "storage_cost": U128(storage_cost), "raised": U128(self.raised) }),
        );
    }

    /// After a missed goal: burns the caller's shares and sends back their part of
    /// the treasury (at least 1 yoctoNEAR per share: shares burned without a refund,
    /// e.g. by a forced `storage_unregister`, leave their NEAR to the other funders,
    /// and the last refund empties the treasury), plus the storage deposit when
    /// nothing else is owed to the account.
    pub fn refund(&mut self) -> Promise {
        require!(
            self.internal_funding_phase() == FundingPhase::Failed,
            "refunds open only if the funding goal is missed by the deadline"
        );
        let account_id = env::predecessor_account_id();
        let shares = self.holders.get(&account_id).map_or(0, |h| h.balance);
        require!(shares > 0, "you hold no shares to refund");
        // Pro rata of what is left, rounded down, so no NEAR stays stuck behind
        // burned shares; the supply covers this holder's shares, so `payout` ≥ shares.
        let payout = crate::math::U256::mul_div_floor(self.treasury, shares, self.total_supply);
        self.internal_burn(&account_id, shares, "refund");
        self.refunded += payout;
        self.treasury -= payout;
        let mut amount = payout;
        let holder = self.internal_settled_holder(&account_id);
        let mut unregistered = false;
        if holder.royalties_scaled.to_yocto_floor().0 == 0 && holder.compute_owed == 0 {
            // Sub-yocto royalty dust goes back to the remaining holders.
            self.internal_unregister_with_dust(&account_id, &holder);
            amount += holder.storage_deposit;
            unregistered = true;
        }
        events::emit(
            "refund",
            json!({ "account_id": account_id, "shares": U128(shares), "amount": U128(amount),
                    "unregistered": unregistered }),
        );
        self.internal_payout(account_id, amount)
    }

    /// Funding phase, amounts and deadline.
    pub fn funding_status(&self) -> FundingStatus {
        FundingStatus {
            phase: self.internal_funding_phase(),
            raised: U128(self.raised),
            goal: self.config.funding_goal,
            deadline_ms: self.config.funding_deadline_ms,
            refunded: U128(self.refunded),
            storage_cost: U128(self.internal_account_storage_cost()),
        }
    }
}
