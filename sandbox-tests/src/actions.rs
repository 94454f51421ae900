//! Applying each action kind to the state, with nearcore's rules and errors
//! (account naming, key bookkeeping, storage usage, the function call itself).

use std::sync::Arc;

use near_crypto::{ED25519PublicKey, PublicKey};
use near_primitives::account::{AccessKey, Account, AccountContract};
use near_primitives::action::{AddKeyAction, DeleteAccountAction, FunctionCallAction};
use near_primitives::errors::ActionErrorKind;
use near_primitives::types::{AccountId, Balance, Gas};
use near_vm_runner::logic::types::PromiseResult;
use near_vm_runner::logic::{ReturnData, VMContext};

use crate::ext::NewReceipt;
use crate::receipt::ActionReceipt;
use crate::state::State;
use crate::vm::{Vm, code_does_not_exist};

/// Accounts at or under this many bytes need no balance for storage (NEP-448).
pub const ZERO_BALANCE_ACCOUNT_STORAGE_LIMIT: u64 = 770;

/// The block a receipt executes in.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// Block height.
    pub height: u64,
    /// Block timestamp, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Seed contracts read through `random_seed`.
    pub random_seed: Vec<u8>,
}

/// What the function calls of one receipt produced so far.
#[derive(Default)]
pub struct CallEffects {
    /// Gas burnt by contract execution.
    pub burnt: u64,
    /// Gas used (burnt plus gas attached to new receipts).
    pub used: u64,
    /// Logs in order.
    pub logs: Vec<String>,
    /// Receipts created, in promise index order.
    pub receipts: Vec<NewReceipt>,
    /// The return value of the last function call.
    pub return_data: Option<ReturnData>,
}

fn err_missing(id: &AccountId) -> ActionErrorKind {
    ActionErrorKind::AccountDoesNotExist {
        account_id: id.clone(),
    }
}

fn key_storage(pk: &PublicKey, key: &AccessKey, extra: u64) -> u64 {
    pk.len() as u64 + borsh::object_length(key).unwrap_or(0) as u64 + extra
}

/// `CreateAccount`: only the parent creates a sub-account; short top-level names
/// only the registrar.
pub fn create_account(
    vm: &Vm,
    state: &mut State,
    r: &ActionReceipt,
) -> Result<(), ActionErrorKind> {
    let config = vm.config();
    let id = &r.receiver_id;
    if state.account(id).is_some() {
        return Err(ActionErrorKind::AccountAlreadyExists {
            account_id: id.clone(),
        });
    }
    let creation = &config.account_creation_config;
    if id.is_top_level() {
        if id.len() < creation.min_allowed_top_level_account_length as usize
            && r.predecessor_id != creation.registrar_account_id
        {
            return Err(ActionErrorKind::CreateAccountOnlyByRegistrar {
                account_id: id.clone(),
                registrar_account_id: creation.registrar_account_id.clone(),
                predecessor_id: r.predecessor_id.clone(),
            });
        }
    } else if !id.is_sub_account_of(&r.predecessor_id) {
        return Err(ActionErrorKind::CreateAccountNotAllowed {
            account_id: id.clone(),
            predecessor_id: r.predecessor_id.clone(),
        });
    }
    let bytes = config.fees.storage_usage_config.num_bytes_account;
    state.set_account(
        id.clone(),
        Account::new(Balance::ZERO, Balance::ZERO, AccountContract::None, bytes),
    );
    Ok(())
}

/// `Transfer`: credits the receiver; a missing 64-hex implicit account is created
/// with the full-access key its name spells.
pub fn transfer(
    vm: &Vm,
    state: &mut State,
    id: &AccountId,
    deposit: Balance,
) -> Result<(), ActionErrorKind> {
    if state.account(id).is_none() && crate::fees::is_near_implicit(id) {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&id.as_str()[2 * i..2 * i + 2], 16).unwrap_or(0);
        }
        let pk = PublicKey::ED25519(ED25519PublicKey(bytes));
        let usage = &vm.config().fees.storage_usage_config;
        let key = AccessKey::full_access();
        let storage =
            usage.num_bytes_account + key_storage(&pk, &key, usage.num_extra_bytes_record);
        state.set_account(
            id.clone(),
            Account::new(Balance::ZERO, Balance::ZERO, AccountContract::None, storage),
        );
        state.set_access_key(id, pk, key);
    }
    let mut account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    account.set_amount(account.amount().saturating_add(deposit));
    state.set_account(id.clone(), account);
    Ok(())
}

/// `DeployContract`: replaces the code; storage usage follows the code size.
pub fn deploy(state: &mut State, id: &AccountId, code: &[u8]) -> Result<(), ActionErrorKind> {
    let mut account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    let old_len = state.account_code(id).map_or(0, |c| c.code().len() as u64);
    let hash = state.put_code(code.to_vec());
    let usage = account
        .storage_usage()
        .saturating_sub(old_len)
        .saturating_add(code.len() as u64);
    account.set_storage_usage(usage);
    // Setting a local contract on an initialized account cannot fail.
    let _ = account.set_contract(AccountContract::Local(hash));
    state.set_account(id.clone(), account);
    Ok(())
}

/// `AddKey`: the new key's nonce starts at `(height - 1) * 1e6` like nearcore's.
pub fn add_key(
    vm: &Vm,
    state: &mut State,
    id: &AccountId,
    a: &AddKeyAction,
    height: u64,
) -> Result<(), ActionErrorKind> {
    let mut account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    if state.access_key(id, &a.public_key).is_some() {
        return Err(ActionErrorKind::AddKeyAlreadyExists {
            account_id: id.clone(),
            public_key: Box::new(a.public_key.clone()),
        });
    }
    let mut key = a.access_key.clone();
    key.nonce = height.saturating_sub(1) * AccessKey::ACCESS_KEY_NONCE_RANGE_MULTIPLIER;
    let extra = vm.config().fees.storage_usage_config.num_extra_bytes_record;
    account.set_storage_usage(account.storage_usage().saturating_add(key_storage(
        &a.public_key,
        &key,
        extra,
    )));
    state.set_access_key(id, a.public_key.clone(), key);
    state.set_account(id.clone(), account);
    Ok(())
}

/// `DeleteKey`.
pub fn delete_key(
    vm: &Vm,
    state: &mut State,
    id: &AccountId,
    pk: &PublicKey,
) -> Result<(), ActionErrorKind> {
    let mut account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    let key =
        state
            .remove_access_key(id, pk)
            .ok_or_else(|| ActionErrorKind::DeleteKeyDoesNotExist {
                account_id: id.clone(),
                public_key: Box::new(pk.clone()),
            })?;
    let extra = vm.config().fees.storage_usage_config.num_extra_bytes_record;
    account.set_storage_usage(
        account
            .storage_usage()
            .saturating_sub(key_storage(pk, &key, extra)),
    );
    state.set_account(id.clone(), account);
    Ok(())
}

/// `DeleteAccount`: only the account itself; the balance goes to the beneficiary
/// in a new receipt (lost if the beneficiary does not exist, as on NEAR).
pub fn delete_account(
    state: &mut State,
    r: &ActionReceipt,
    a: &DeleteAccountAction,
    effects: &mut CallEffects,
) -> Result<(), ActionErrorKind> {
    let id = &r.receiver_id;
    let account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    if r.predecessor_id != *id {
        return Err(ActionErrorKind::ActorNoPermission {
            account_id: id.clone(),
            actor_id: r.predecessor_id.clone(),
        });
    }
    if !account.locked().is_zero() {
        return Err(ActionErrorKind::DeleteAccountStaking {
            account_id: id.clone(),
        });
    }
    if !account.amount().is_zero() && a.beneficiary_id != *id {
        effects.receipts.push(NewReceipt {
            receiver_id: a.beneficiary_id.clone(),
            actions: vec![near_primitives::action::Action::Transfer(
                near_primitives::action::TransferAction {
                    deposit: account.amount(),
                },
            )],
            weights: Vec::new(),
            input_data_ids: Vec::new(),
            output_data_receivers: Vec::new(),
            // Marks a balance refund from the protocol: no fees, lost if it fails.
            refund_to: Some(crate::receipt::system_account()),
        });
    }
    state.remove_account(id);
    Ok(())
}

/// `FunctionCall`: runs the method (the VM credits the deposit), keeps storage and balance
/// changes, spreads unused gas over weighted calls, and collects the new receipts.
#[allow(clippy::too_many_arguments)]
pub fn function_call(
    vm: &Vm,
    state: &mut State,
    r: &ActionReceipt,
    f: &FunctionCallAction,
    (index, is_last): (usize, bool),
    promise_results: Arc<[PromiseResult]>,
    block: &BlockContext,
    effects: &mut CallEffects,
) -> Result<(), ActionErrorKind> {
    let id = &r.receiver_id;
    // The VM adds the attached deposit to the balance it reports back.
    let mut account = state.account(id).cloned().ok_or_else(|| err_missing(id))?;
    let Some(code) = state.account_code(id) else {
        return Err(ActionErrorKind::FunctionCallError(code_does_not_exist(id)));
    };
    let context = VMContext {
        current_account_id: id.clone(),
        signer_account_id: r.signer_id.clone(),
        signer_account_pk: borsh::to_vec(&r.signer_public_key).unwrap_or_default(),
        predecessor_account_id: r.predecessor_id.clone(),
        refund_to_account_id: r.refund_to.clone(),
        input: f.args.clone().into(),
        promise_results,
        block_height: block.height,
        block_timestamp: block.timestamp_ns,
        epoch_height: 1,
        account_balance: account.amount(),
        account_locked_balance: account.locked(),
        storage_usage: account.storage_usage(),
        account_contract: account.contract().into_owned(),
        attached_deposit: f.deposit,
        prepaid_gas: f.gas,
        random_seed: block.random_seed.clone(),
        view_config: None,
        output_data_receivers: if is_last {
            r.output_data_receivers
                .iter()
                .map(|d| d.receiver_id.clone())
                .collect()
        } else {
            Vec::new()
        },
    };
    let mut storage = state.storage(id).cloned().unwrap_or_default();
    // Each call in the receipt derives its data ids from its own seed.
    let seed = crate::receipt::child_id(&r.id, (1 << 40) + index as u64);
    let call = vm.call(code, &f.method_name, &context, &mut storage, seed);
    let outcome = call.outcome;
    effects.burnt = effects.burnt.saturating_add(outcome.burnt_gas.as_gas());
    effects.logs.extend(outcome.logs.iter().cloned());
    if let Some(error) = call.error {
        effects.used = effects.used.saturating_add(outcome.burnt_gas.as_gas());
        return Err(ActionErrorKind::FunctionCallError(error));
    }
    let mut receipts = call.receipts;
    let mut used = outcome.used_gas.as_gas();
    let unused = f.gas.as_gas().saturating_sub(used);
    let total_weight: u64 = receipts
        .iter()
        .flat_map(|nr| nr.weights.iter().map(|(_, w)| *w))
        .sum();
    if unused > 0 && total_weight > 0 {
        // Same rule as nearcore: proportional shares, the remainder to the last weighted call.
        let mut given = 0u64;
        let mut last = None;
        for (ri, nr) in receipts.iter_mut().enumerate() {
            for (ai, w) in nr.weights.clone() {
                let share = ((unused as u128 * w as u128) / total_weight as u128) as u64;
                add_gas(&mut nr.actions[ai], share);
                given += share;
                last = Some((ri, ai));
            }
        }
        if let Some((ri, ai)) = last {
            add_gas(&mut receipts[ri].actions[ai], unused - given);
        }
        used = f.gas.as_gas();
    }
    effects.used = effects.used.saturating_add(used);
    account.set_amount(outcome.balance);
    account.set_storage_usage(outcome.storage_usage);
    state.set_account(id.clone(), account);
    state.set_storage(id, storage);
    // Promise indices are relative to this call; shift them into the receipt's list.
    let offset = effects.receipts.len() as u64;
    effects.return_data = Some(match outcome.return_data {
        ReturnData::ReceiptIndex(i) => ReturnData::ReceiptIndex(i + offset),
        other => other,
    });
    effects.receipts.extend(receipts.into_iter().map(|mut nr| {
        nr.weights.clear();
        nr
    }));
    Ok(())
}

fn add_gas(action: &mut near_primitives::action::Action, extra: u64) {
    if let near_primitives::action::Action::FunctionCall(f) = action {
        f.gas = Gas::from_gas(f.gas.as_gas().saturating_add(extra));
    }
}

/// Storage staking, checked after every receipt: balance + locked must cover
/// `storage_usage × storage price` unless the account is small enough to be free.
pub fn check_storage_stake(vm: &Vm, state: &State, id: &AccountId) -> Result<(), ActionErrorKind> {
    let Some(account) = state.account(id) else {
        return Ok(());
    };
    if account.storage_usage() <= ZERO_BALANCE_ACCOUNT_STORAGE_LIMIT {
        return Ok(());
    }
    let per_byte = vm
        .config()
        .fees
        .storage_usage_config
        .storage_amount_per_byte
        .as_yoctonear();
    let required = per_byte.saturating_mul(account.storage_usage() as u128);
    let available = account
        .amount()
        .as_yoctonear()
        .saturating_add(account.locked().as_yoctonear());
    if available < required {
        return Err(ActionErrorKind::LackBalanceForState {
            account_id: id.clone(),
            amount: Balance::from_yoctonear(required - available),
        });
    }
    Ok(())
}
