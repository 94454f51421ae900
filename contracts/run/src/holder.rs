//! Share-token accounts and the only functions that change a balance. Each of them
//! settles the accounts it touches first (see `revenue.rs`), so royalties accrue on
//! the balance an account actually held while each payment came in.

use crate::Run;
use crate::math::U256;
use near_contract_standards::fungible_token::events::{FtBurn, FtMint, FtTransfer};
use near_sdk::json_types::U128;
use near_sdk::{AccountId, env, near, require};

/// One registered account of the share token.
#[near(serializers = [borsh])]
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holder {
    /// Shares held.
    pub balance: u128,
    /// NEP-145 storage deposit (yoctoNEAR), returned on unregister.
    pub storage_deposit: u128,
    /// Reward-per-share value up to which royalties were credited.
    pub(crate) reward_snapshot: U256,
    /// Royalties credited and not claimed, in 2⁻¹²⁸ yocto units (whole yocto + dust).
    pub(crate) royalties_scaled: U256,
    /// Compute payments credited from the treasury and not claimed (yoctoNEAR).
    pub compute_owed: u128,
}

impl Run {
    /// Storage bytes of one token account, measured with the longest account id.
    pub(crate) fn internal_measure_account_storage(&mut self) -> u64 {
        let before = env::storage_usage();
        let probe: AccountId = "a".repeat(64).parse().expect("valid probe account id");
        self.holders.insert(probe.clone(), Holder::default());
        self.holders.flush();
        let used = env::storage_usage() - before;
        self.holders.remove(&probe);
        self.holders.flush();
        used
    }

    /// yoctoNEAR a token account's storage costs (the NEP-145 minimum).
    pub(crate) fn internal_account_storage_cost(&self) -> u128 {
        u128::from(self.account_storage_usage) * env::storage_byte_cost().as_yoctonear()
    }

    /// The holder record, settled up to now (not yet written back).
    pub(crate) fn internal_settled_holder(&self, account_id: &AccountId) -> Holder {
        let mut holder = self.holders.get(account_id).cloned().unwrap_or_else(|| {
            env::panic_str(&format!(
                "{account_id} is not registered with the share token: call storage_deposit for it first"
            ))
        });
        self.internal_accrue(&mut holder);
        holder
    }

    /// Registers `account_id` with `storage_deposit` yocto of storage paid.
    pub(crate) fn internal_register(&mut self, account_id: &AccountId, storage_deposit: u128) {
        let holder = Holder {
            storage_deposit,
            reward_snapshot: self.reward_per_share,
            ..Holder::default()
        };
        self.holders.insert(account_id.clone(), holder);
    }

    /// Mints `amount` shares to a registered account.
    pub(crate) fn internal_mint(&mut self, account_id: &AccountId, amount: u128, memo: &str) {
        if !self.internal_mint_silent(account_id, amount) {
            return;
        }
        FtMint {
            owner_id: account_id,
            amount: U128(amount),
            memo: Some(memo),
        }
        .emit();
    }

    /// Mints without logging (the caller logs one `ft_mint` for many mints);
    /// returns whether anything was minted.
    pub(crate) fn internal_mint_silent(&mut self, account_id: &AccountId, amount: u128) -> bool {
        if amount == 0 {
            return false;
        }
        let mut holder = self.internal_settled_holder(account_id);
        holder.balance = holder
            .balance
            .checked_add(amount)
            .expect("balance overflow");
        self.total_supply = self
            .total_supply
            .checked_add(amount)
            .expect("supply overflow");
        self.holders.insert(account_id.clone(), holder);
        // Revenue paid while no shares existed goes to the first shares minted.
        self.internal_release_waiting();
        true
    }

    /// Burns `amount` shares of a registered account.
    pub(crate) fn internal_burn(&mut self, account_id: &AccountId, amount: u128, memo: &str) {
        if amount == 0 {
            return;
        }
        let mut holder = self.internal_settled_holder(account_id);
        require!(holder.balance >= amount, "not enough shares to burn");
        holder.balance -= amount;
        self.total_supply -= amount;
        self.holders.insert(account_id.clone(), holder);
        FtBurn {
            owner_id: account_id,
            amount: U128(amount),
            memo: Some(memo),
        }
        .emit();
    }

    /// Moves `amount` shares between two registered accounts.
    pub(crate) fn internal_transfer(
        &mut self,
        sender_id: &AccountId,
        receiver_id: &AccountId,
        amount: u128,
        memo: Option<&str>,
    ) {
        require!(sender_id != receiver_id, "sender and receiver must differ");
        require!(amount > 0, "the amount must be more than 0 shares");
        let mut sender = self.internal_settled_holder(sender_id);
        let mut receiver = self.internal_settled_holder(receiver_id);
        require!(
            sender.balance >= amount,
            format!(
                "{sender_id} holds only {} shares, fewer than the {amount} to send",
                sender.balance
            )
        );
        sender.balance -= amount;
        receiver.balance = receiver
            .balance
            .checked_add(amount)
            .expect("balance overflow");
        self.holders.insert(sender_id.clone(), sender);
        self.holders.insert(receiver_id.clone(), receiver);
        FtTransfer {
            old_owner_id: sender_id,
            new_owner_id: receiver_id,
            amount: U128(amount),
            memo,
        }
        .emit();
    }
}
