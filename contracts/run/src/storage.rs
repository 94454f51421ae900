//! NEP-145 storage management for the share token: one fixed-size registration
//! per account (min = max); `storage_unregister` settles and pays out what the
//! account is owed before it forgets the account.

use crate::RunExt;
use crate::{Holder, Run, events};
use near_contract_standards::storage_management::{
    StorageBalance, StorageBalanceBounds, StorageManagement,
};
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, NearToken, assert_one_yocto, env, near, require};

impl Run {
    /// Forgets a settled holder whose whole-yocto royalties were already paid or
    /// included by the caller: its sub-yocto dust is carried to all other holders.
    pub(crate) fn internal_unregister_with_dust(
        &mut self,
        account_id: &AccountId,
        holder: &Holder,
    ) {
        let (_, dust) = holder.royalties_scaled.to_yocto_floor();
        self.holder_storage_held -= holder.storage_deposit;
        self.holders.remove(account_id);
        self.internal_redistribute_dust(dust);
    }

    fn internal_storage_balance(&self, account_id: &AccountId) -> Option<StorageBalance> {
        self.holders.get(account_id).map(|h| StorageBalance {
            total: NearToken::from_yoctonear(h.storage_deposit),
            available: NearToken::from_yoctonear(0),
        })
    }
}

#[near]
impl StorageManagement for Run {
    /// Registers `account_id` (default: the caller) with the share token; any deposit
    /// above the storage cost, or the whole deposit if already registered, comes back.
    #[payable]
    fn storage_deposit(
        &mut self,
        account_id: Option<AccountId>,
        registration_only: Option<bool>,
    ) -> StorageBalance {
        let _ = registration_only; // min == max: an extra deposit is always refunded.
        let amount = env::attached_deposit().as_yoctonear();
        let account_id = account_id.unwrap_or_else(env::predecessor_account_id);
        let refund = if self.holders.contains_key(&account_id) {
            amount
        } else {
            let cost = self.internal_account_storage_cost();
            require!(
                amount >= cost,
                format!("attach at least {cost} yoctoNEAR to pay for the account's storage")
            );
            self.internal_register(&account_id, cost);
            self.holder_storage_held += cost;
            events::emit(
                "storage_deposit",
                json!({ "account_id": account_id, "storage_cost": U128(cost) }),
            );
            amount - cost
        };
        if refund > 0 {
            self.internal_payout(env::predecessor_account_id(), refund)
                .detach();
        }
        self.internal_storage_balance(&account_id)
            .expect("just registered")
    }

    /// Nothing is ever available to withdraw (registration is fixed size): only
    /// `amount` 0 is accepted.
    #[payable]
    fn storage_withdraw(&mut self, amount: Option<NearToken>) -> StorageBalance {
        assert_one_yocto();
        let account_id = env::predecessor_account_id();
        let balance = self
            .internal_storage_balance(&account_id)
            .unwrap_or_else(|| {
                env::panic_str(&format!(
                    "{account_id} is not registered with the share token"
                ))
            });
        require!(
            amount.is_none_or(|a| a.is_zero()),
            "no storage deposit is available to withdraw; use storage_unregister to close the account"
        );
        balance
    }

    /// Closes the caller's share account: sends back the storage deposit with any
    /// pending royalties and compute payments, and the 1 yoctoNEAR attached. Shares
    /// held must be transferred first, or burned with `force: true`.
    #[payable]
    fn storage_unregister(&mut self, force: Option<bool>) -> bool {
        assert_one_yocto();
        let account_id = env::predecessor_account_id();
        if !self.holders.contains_key(&account_id) {
            return false;
        }
        let burned = self.internal_settled_holder(&account_id).balance;
        if burned > 0 {
            require!(
                force.unwrap_or(false),
                format!(
                    "the account still holds {} shares: transfer them first, or pass force: true to burn them",
                    burned
                )
            );
            self.internal_burn(&account_id, burned, "storage_unregister force");
        }
        let holder = self.internal_settled_holder(&account_id);
        let (royalties, _) = holder.royalties_scaled.to_yocto_floor();
        self.royalties_claimed += royalties;
        self.compute_sent += holder.compute_owed;
        let amount = holder.storage_deposit + royalties + holder.compute_owed + 1;
        self.internal_unregister_with_dust(&account_id, &holder);
        events::emit(
            "storage_unregister",
            json!({ "account_id": account_id, "burned": U128(burned),
                    "royalties": U128(royalties), "compute_payments": U128(holder.compute_owed),
                    "amount": U128(amount) }),
        );
        self.internal_payout(account_id, amount).detach();
        true
    }

    /// Every registration costs the same: min = max.
    fn storage_balance_bounds(&self) -> StorageBalanceBounds {
        let cost = NearToken::from_yoctonear(self.internal_account_storage_cost());
        StorageBalanceBounds {
            min: cost,
            max: Some(cost),
        }
    }

    /// The account's storage deposit, or null when it is not registered.
    fn storage_balance_of(&self, account_id: AccountId) -> Option<StorageBalance> {
        self.internal_storage_balance(&account_id)
    }
}
