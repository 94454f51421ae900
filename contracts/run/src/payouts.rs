//! Every transfer of NEAR out of the run (refunds, bond returns, storage returns,
//! excess deposits) goes through [`Run::internal_payout`]: if the transfer fails
//! (the receiver was deleted meanwhile), the amount is kept for the account as an
//! owed payout it can take with `retry_payout`, never lost and never left to the
//! contract. Claims have their own callback (`on_claim`), which restores royalties.

use crate::RunExt;
use crate::{Run, events};
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, Gas, NearToken, Promise, PromiseError, env, near, require};

/// Gas for the callback that keeps a failed payout.
const GAS_FOR_ON_PAYOUT: Gas = Gas::from_tgas(10);

impl Run {
    /// Sends `amount` to `account_id`; a failed transfer is kept as an owed payout.
    pub(crate) fn internal_payout(&mut self, account_id: AccountId, amount: u128) -> Promise {
        self.payouts_in_flight += amount;
        Promise::new(account_id.clone())
            .transfer(NearToken::from_yoctonear(amount))
            .then(
                Self::ext(env::current_account_id())
                    .with_static_gas(GAS_FOR_ON_PAYOUT)
                    .on_payout(account_id, U128(amount)),
            )
    }
}

#[near]
impl Run {
    /// Callback of every payout: on failure the amount is owed to the account again.
    #[private]
    pub fn on_payout(&mut self, account_id: AccountId, amount: U128) -> bool {
        self.payouts_in_flight -= amount.0;
        let ok = !matches!(env::promise_result_checked(0, 0), Err(PromiseError::Failed));
        if !ok {
            let owed = self.payouts_owed.get(&account_id).copied().unwrap_or(0);
            self.payouts_owed
                .insert(account_id.clone(), owed + amount.0);
            self.payouts_owed_total += amount.0;
            events::emit(
                "payout_restored",
                json!({ "account_id": account_id, "amount": amount }),
            );
        }
        ok
    }

    /// Sends the caller a payout that failed before (e.g. while its account was deleted).
    pub fn retry_payout(&mut self) -> Promise {
        let account_id = env::predecessor_account_id();
        let amount = self.payouts_owed.remove(&account_id).unwrap_or(0);
        require!(amount > 0, "no failed payout is owed to this account");
        self.payouts_owed_total -= amount;
        events::emit(
            "payout_retried",
            json!({ "account_id": account_id, "amount": U128(amount) }),
        );
        self.internal_payout(account_id, amount)
    }

    /// What a failed payout left owed to `account_id` (0 if nothing).
    pub fn payout_owed(&self, account_id: AccountId) -> U128 {
        U128(self.payouts_owed.get(&account_id).copied().unwrap_or(0))
    }
}
