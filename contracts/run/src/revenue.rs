//! Inference revenue: paid in by anyone, split over all shares outstanding with a
//! reward-per-share accumulator, claimed together with compute payments.
//!
//! Invariant (exact, in 2⁻¹²⁸ yocto units): revenue_in = Σ holders' credited
//! royalties (after settling) + royalties_claimed + reward_carry + revenue_waiting.

use crate::RunExt;
use crate::math::{U256, one_yocto_scaled};
use crate::{Holder, Run, events};
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, Gas, NearToken, Promise, PromiseError, env, near, require};

/// Gas for the callback that restores a failed claim.
const GAS_FOR_ON_CLAIM: Gas = Gas::from_tgas(10);

/// What an account can claim now.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// Whole yoctoNEAR of inference royalties (dust below one yocto stays carried).
    pub royalties: U128,
    /// Compute payments from the treasury for settled credits.
    pub compute_payments: U128,
}

impl Run {
    /// Credits `holder` the royalties its balance earned since its last settlement.
    pub(crate) fn internal_accrue(&self, holder: &mut Holder) {
        let gained = self.reward_per_share.sub(holder.reward_snapshot);
        holder.royalties_scaled = holder.royalties_scaled.add(gained.mul_u128(holder.balance));
        holder.reward_snapshot = self.reward_per_share;
    }

    /// Splits `amount` yoctoNEAR over the shares outstanding, rounding down and
    /// carrying the remainder into the next distribution.
    pub(crate) fn internal_distribute_rounding_down(&mut self, amount: u128) {
        self.revenue_in += amount;
        self.revenue_waiting += amount;
        self.internal_release_waiting();
    }

    /// Splits the revenue waiting (paid while no shares existed) over the shares
    /// outstanding, if there are any now. Called after every payment and every
    /// mint, so revenue never waits for a later payment that may not come.
    pub(crate) fn internal_release_waiting(&mut self) {
        if self.total_supply == 0 || self.revenue_waiting == 0 {
            return;
        }
        let incoming = std::mem::take(&mut self.revenue_waiting);
        let numerator = one_yocto_scaled().mul_u128(incoming).add(self.reward_carry);
        let (per_share, carry) = numerator.div_rem_floor(self.total_supply);
        self.reward_per_share = self.reward_per_share.add(per_share);
        self.reward_carry = carry;
    }

    /// Hands sub-yocto dust of a closed account to the remaining holders at once, so
    /// the carried remainder stays below one yocto.
    pub(crate) fn internal_redistribute_dust(&mut self, dust: U256) {
        let pool = self.reward_carry.add(dust);
        if self.total_supply == 0 {
            self.reward_carry = pool;
            return;
        }
        let (per_share, carry) = pool.div_rem_floor(self.total_supply);
        self.reward_per_share = self.reward_per_share.add(per_share);
        self.reward_carry = carry;
    }

    /// Puts a failed claim back where it came from.
    fn internal_restore_claim(&mut self, account_id: &AccountId, royalties: u128, compute: u128) {
        self.royalties_claimed -= royalties;
        self.compute_sent -= compute;
        if let Some(mut holder) = self.holders.get(account_id).cloned() {
            holder.royalties_scaled = holder
                .royalties_scaled
                .add(one_yocto_scaled().mul_u128(royalties));
            holder.compute_owed += compute;
            self.holders.insert(account_id.clone(), holder);
        } else {
            // The account unregistered while the transfer was in flight: its royalties
            // go back to all holders and its compute payment back to the treasury.
            self.revenue_in -= royalties;
            self.internal_distribute_rounding_down(royalties);
            self.compute_paid -= compute;
            self.treasury += compute;
        }
    }
}

#[near]
impl Run {
    /// Pays inference revenue in; it is split pro rata over all shares outstanding.
    #[payable]
    pub fn pay_revenue(&mut self) {
        let amount = env::attached_deposit().as_yoctonear();
        require!(
            amount > 0,
            "attach the revenue to pay (at least 1 yoctoNEAR)"
        );
        self.internal_distribute_rounding_down(amount);
        events::emit(
            "revenue_paid",
            json!({ "payer": env::predecessor_account_id(), "amount": U128(amount),
                    "total_supply": U128(self.total_supply) }),
        );
    }

    /// Sends the caller its pending royalties and compute payments. If the transfer
    /// fails they are restored and can be claimed again.
    pub fn claim(&mut self) -> Promise {
        let account_id = env::predecessor_account_id();
        let mut holder = self.internal_settled_holder(&account_id);
        let (royalties, dust) = holder.royalties_scaled.to_yocto_floor();
        let compute = holder.compute_owed;
        let total = royalties + compute;
        require!(
            total > 0,
            "nothing to claim yet: no royalties or compute payments are pending"
        );
        holder.royalties_scaled = dust;
        holder.compute_owed = 0;
        self.holders.insert(account_id.clone(), holder);
        self.royalties_claimed += royalties;
        self.compute_sent += compute;
        events::emit(
            "claim",
            json!({ "account_id": account_id, "royalties": U128(royalties),
                    "compute_payments": U128(compute) }),
        );
        Promise::new(account_id.clone())
            .transfer(NearToken::from_yoctonear(total))
            .then(
                Self::ext(env::current_account_id())
                    .with_static_gas(GAS_FOR_ON_CLAIM)
                    .on_claim(account_id, U128(royalties), U128(compute)),
            )
    }

    /// Callback of `claim`: restores the amounts when the transfer failed.
    #[private]
    pub fn on_claim(&mut self, account_id: AccountId, royalties: U128, compute: U128) -> bool {
        let ok = !matches!(env::promise_result_checked(0, 0), Err(PromiseError::Failed));
        if !ok {
            self.internal_restore_claim(&account_id, royalties.0, compute.0);
            events::emit(
                "claim_restored",
                json!({ "account_id": account_id, "royalties": royalties, "compute_payments": compute }),
            );
        }
        ok
    }

    /// What `account_id` could claim now (zero for unknown accounts).
    pub fn pending(&self, account_id: AccountId) -> Pending {
        let Some(mut holder) = self.holders.get(&account_id).cloned() else {
            return Pending {
                royalties: U128(0),
                compute_payments: U128(0),
            };
        };
        self.internal_accrue(&mut holder);
        Pending {
            royalties: U128(holder.royalties_scaled.to_yocto_floor().0),
            compute_payments: U128(holder.compute_owed),
        }
    }
}
