//! NEP-141 (core, transfer-call resolver) and NEP-148 (metadata) for the run's
//! shares. Balances live in `Run::holders`, so every move settles royalties first.

use crate::Run;
use crate::RunExt;
use near_contract_standards::fungible_token::core::FungibleTokenCore;
use near_contract_standards::fungible_token::metadata::{
    FT_METADATA_SPEC, FungibleTokenMetadata, FungibleTokenMetadataProvider,
};
use near_contract_standards::fungible_token::receiver::ext_ft_receiver;
use near_contract_standards::fungible_token::resolver::{FungibleTokenResolver, ext_ft_resolver};
use near_sdk::json_types::U128;
use near_sdk::{AccountId, Gas, PromiseOrValue, assert_one_yocto, env, near, require};

/// Gas kept for `ft_resolve_transfer` after `ft_on_transfer`.
const GAS_FOR_RESOLVE_TRANSFER: Gas = Gas::from_tgas(10);
/// Least prepaid gas `ft_transfer_call` accepts: its own work, the receiver's
/// call and the resolver (as near-contract-standards checks).
const GAS_FOR_FT_TRANSFER_CALL: Gas = Gas::from_tgas(35);

#[near]
impl FungibleTokenCore for Run {
    /// Sends shares (attach exactly 1 yoctoNEAR).
    #[payable]
    fn ft_transfer(&mut self, receiver_id: AccountId, amount: U128, memo: Option<String>) {
        assert_one_yocto();
        let sender_id = env::predecessor_account_id();
        self.internal_transfer(&sender_id, &receiver_id, amount.0, memo.as_deref());
    }

    /// Sends shares and calls `ft_on_transfer` on the receiver; unused shares come back.
    #[payable]
    fn ft_transfer_call(
        &mut self,
        receiver_id: AccountId,
        amount: U128,
        memo: Option<String>,
        msg: String,
    ) -> PromiseOrValue<U128> {
        assert_one_yocto();
        require!(
            env::prepaid_gas() > GAS_FOR_FT_TRANSFER_CALL,
            "More gas is required: attach more than 35 Tgas to ft_transfer_call"
        );
        let sender_id = env::predecessor_account_id();
        self.internal_transfer(&sender_id, &receiver_id, amount.0, memo.as_deref());
        ext_ft_receiver::ext(receiver_id.clone())
            .with_unused_gas_weight(1)
            .ft_on_transfer(sender_id.clone(), amount, msg)
            .then(
                ext_ft_resolver::ext(env::current_account_id())
                    .with_static_gas(GAS_FOR_RESOLVE_TRANSFER)
                    .with_unused_gas_weight(0)
                    .ft_resolve_transfer(sender_id, receiver_id, amount),
            )
            .into()
    }

    /// Shares outstanding.
    fn ft_total_supply(&self) -> U128 {
        U128(self.total_supply)
    }

    /// Shares held by `account_id` (0 when not registered).
    fn ft_balance_of(&self, account_id: AccountId) -> U128 {
        U128(self.holders.get(&account_id).map_or(0, |h| h.balance))
    }
}

#[near]
impl FungibleTokenResolver for Run {
    /// Returns the unused part of an `ft_transfer_call` to the sender (burning it if
    /// the sender has unregistered meanwhile); returns the amount the receiver kept.
    #[private]
    fn ft_resolve_transfer(
        &mut self,
        sender_id: AccountId,
        receiver_id: AccountId,
        amount: U128,
    ) -> U128 {
        let amount = amount.0;
        // Any answer that is not a U128 (whatever its length) means nothing was used.
        // (unbounded, as near-contract-standards reads it).
        let unused = match env::promise_result_checked(0, usize::MAX) {
            Ok(bytes) => {
                near_sdk::serde_json::from_slice::<U128>(&bytes).map_or(amount, |u| u.0.min(amount))
            }
            Err(_) => amount,
        };
        if unused == 0 {
            return U128(amount);
        }
        let receiver_balance = self.holders.get(&receiver_id).map_or(0, |h| h.balance);
        let refund = unused.min(receiver_balance);
        if refund == 0 {
            return U128(amount);
        }
        if self.holders.contains_key(&sender_id) {
            self.internal_transfer(&receiver_id, &sender_id, refund, Some("refund"));
            U128(amount - refund)
        } else {
            // As near-contract-standards: a refund burned for a sender that left
            // counts as used.
            self.internal_burn(&receiver_id, refund, "refund to an unregistered sender");
            U128(amount)
        }
    }
}

#[near]
impl FungibleTokenMetadataProvider for Run {
    /// NEP-148 metadata: one share per yoctoNEAR of funding, so 24 decimals.
    fn ft_metadata(&self) -> FungibleTokenMetadata {
        FungibleTokenMetadata {
            spec: FT_METADATA_SPEC.to_string(),
            name: format!("crowdtrain shares of {}", env::current_account_id()),
            symbol: "CTSHARE".to_string(),
            icon: None,
            reference: None,
            reference_hash: None,
            decimals: 24,
        }
    }
}
