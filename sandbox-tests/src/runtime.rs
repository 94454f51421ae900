//! Executing one action receipt with NEAR's semantics: all actions or none, exec
//! fees burnt, unused gas refunded to the signer, deposits refunded when the
//! receipt fails, storage staking enforced, the result routed to whoever waits.

use std::sync::Arc;

use near_primitives::action::Action;
use near_primitives::errors::{ActionError, ActionErrorKind, FunctionCallError, TxExecutionError};
use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::views::ExecutionStatusView;
use near_primitives_core::config::ViewConfig;
use near_vm_runner::logic::types::PromiseResult;
use near_vm_runner::logic::{ReturnData, VMContext};

use crate::actions::{self, BlockContext, CallEffects};
use crate::fees;
use crate::receipt::{ActionReceipt, DataReceiver, child_id, system_account};
use crate::state::State;
use crate::vm::{Vm, code_does_not_exist};

/// What executing a receipt produced.
pub struct ReceiptOutcome {
    /// Logs of every function call, in order.
    pub logs: Vec<String>,
    /// Gas burnt by this receipt (exec fees plus contract execution).
    pub gas_burnt: Gas,
    /// Value, forwarded receipt, or the failure.
    pub status: ExecutionStatusView,
    /// Receipts to route next (empty if the receipt failed, except refunds' effects).
    pub new_receipts: Vec<ActionReceipt>,
    /// Results to deliver to waiting receipts (`None` = the promise failed).
    pub outgoing_data: Vec<(DataReceiver, Option<Vec<u8>>)>,
}

/// Applies `r` to `state`. On failure the state is exactly as before except for
/// refunds: the deposits go back to `refund_to`, unused gas to the signer.
pub fn apply_receipt(
    vm: &Vm,
    state: &mut State,
    r: &ActionReceipt,
    promise_results: Vec<PromiseResult>,
    block: &BlockContext,
    gas_price: u128,
) -> ReceiptOutcome {
    let config = vm.config().clone();
    // Balance refunds from the protocol cost nothing; everything else paid its
    // exec fees up front when it was created.
    let exec_gas = if r.predecessor_id == system_account() {
        0
    } else {
        fees::exec_gas(&config.fees, &r.actions, &r.receiver_id).as_gas()
    };
    let prepaid = fees::prepaid_gas(&r.actions).as_gas();
    let checkpoint = state.clone();
    let promise_results: Arc<[PromiseResult]> = promise_results.into();
    let mut effects = CallEffects::default();
    let result = apply_actions(vm, state, r, promise_results, block, &mut effects).and_then(|()| {
        actions::check_storage_stake(vm, state, &r.receiver_id)
            .map_err(|kind| ActionError { index: None, kind })
    });

    let gas_burnt = exec_gas.saturating_add(effects.burnt);
    let (status, new_receipts, outgoing_data, gas_refund) = match result {
        Ok(()) => {
            let ids: Vec<CryptoHash> = (0..effects.receipts.len() as u64)
                .map(|i| child_id(&r.id, i))
                .collect();
            let mut new_receipts: Vec<ActionReceipt> = effects
                .receipts
                .into_iter()
                .zip(&ids)
                .map(|(nr, id)| ActionReceipt {
                    id: *id,
                    predecessor_id: match &nr.refund_to {
                        Some(system) if *system == system_account() => system.clone(),
                        _ => r.receiver_id.clone(),
                    },
                    receiver_id: nr.receiver_id,
                    signer_id: r.signer_id.clone(),
                    signer_public_key: r.signer_public_key.clone(),
                    refund_to: nr.refund_to.unwrap_or_else(|| r.receiver_id.clone()),
                    input_data_ids: nr.input_data_ids,
                    output_data_receivers: nr.output_data_receivers,
                    actions: nr.actions,
                })
                .collect();
            let mut outgoing = Vec::new();
            let status = match effects.return_data {
                Some(ReturnData::ReceiptIndex(i)) if (i as usize) < new_receipts.len() => {
                    // The returned promise answers whoever waits for this receipt.
                    new_receipts[i as usize]
                        .output_data_receivers
                        .extend(r.output_data_receivers.iter().cloned());
                    ExecutionStatusView::SuccessReceiptId(ids[i as usize])
                }
                Some(ReturnData::Value(v)) => {
                    outgoing.extend(
                        r.output_data_receivers
                            .iter()
                            .map(|d| (d.clone(), Some(v.clone()))),
                    );
                    ExecutionStatusView::SuccessValue(v)
                }
                _ => {
                    outgoing.extend(
                        r.output_data_receivers
                            .iter()
                            .map(|d| (d.clone(), Some(Vec::new()))),
                    );
                    ExecutionStatusView::SuccessValue(Vec::new())
                }
            };
            (
                status,
                new_receipts,
                outgoing,
                prepaid.saturating_sub(effects.used),
            )
        }
        Err(error) => {
            *state = checkpoint;
            let deposit = fees::deposit(&r.actions);
            if r.predecessor_id != system_account() {
                credit(state, &r.refund_to, deposit);
            }
            let outgoing = r
                .output_data_receivers
                .iter()
                .map(|d| (d.clone(), None))
                .collect();
            let status = ExecutionStatusView::Failure(TxExecutionError::ActionError(error));
            (
                status,
                Vec::new(),
                outgoing,
                prepaid.saturating_sub(effects.burnt),
            )
        }
    };
    if r.predecessor_id != system_account() {
        credit(
            state,
            &r.signer_id,
            gas_price.saturating_mul(gas_refund as u128),
        );
    }
    // The contract's share of the gas its code burnt (0 since protocol 87).
    let reward = &config.fees.burnt_gas_reward;
    let reward_gas =
        effects.burnt as u128 * *reward.numer() as u128 / (*reward.denom()).max(1) as u128;
    credit(state, &r.receiver_id, reward_gas * gas_price);
    ReceiptOutcome {
        logs: effects.logs,
        gas_burnt: Gas::from_gas(gas_burnt),
        status,
        new_receipts,
        outgoing_data,
    }
}

/// Adds `amount` yocto to `id`; a refund to a deleted account is burnt, as on NEAR.
pub fn credit(state: &mut State, id: &AccountId, amount: u128) {
    if amount == 0 {
        return;
    }
    if let Some(mut account) = state.account(id).cloned() {
        account.set_amount(
            account
                .amount()
                .saturating_add(Balance::from_yoctonear(amount)),
        );
        state.set_account(id.clone(), account);
    }
}

fn apply_actions(
    vm: &Vm,
    state: &mut State,
    r: &ActionReceipt,
    promise_results: Arc<[PromiseResult]>,
    block: &BlockContext,
    effects: &mut CallEffects,
) -> Result<(), ActionError> {
    let id = &r.receiver_id;
    let last = r.actions.len().saturating_sub(1);
    for (index, action) in r.actions.iter().enumerate() {
        let result = match action {
            Action::CreateAccount(_) => actions::create_account(vm, state, r),
            Action::DeployContract(a) => actions::deploy(state, id, &a.code),
            Action::FunctionCall(f) => actions::function_call(
                vm,
                state,
                r,
                f,
                (index, index == last),
                promise_results.clone(),
                block,
                effects,
            ),
            Action::Transfer(t) => actions::transfer(vm, state, id, t.deposit),
            Action::AddKey(a) => actions::add_key(vm, state, id, a, block.height),
            Action::DeleteKey(a) => actions::delete_key(vm, state, id, &a.public_key),
            Action::DeleteAccount(a) => actions::delete_account(state, r, a, effects),
            Action::Stake(s) => Err(ActionErrorKind::TriesToStake {
                account_id: id.clone(),
                stake: s.stake,
                locked: Balance::ZERO,
                balance: state.account(id).map_or(Balance::ZERO, |a| a.amount()),
            }),
            other => Err(ActionErrorKind::FunctionCallError(
                FunctionCallError::ExecutionError(format!(
                    "action {} is not supported by the local chain",
                    action_name(other)
                )),
            )),
        };
        result.map_err(|kind| ActionError {
            index: Some(index as u64),
            kind,
        })?;
        if !matches!(action, Action::FunctionCall(_)) && index == last {
            effects.return_data = None;
        }
    }
    Ok(())
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Delegate(_) | Action::DelegateV2(_) => "Delegate",
        Action::DeployGlobalContract(_) | Action::UseGlobalContract(_) => "GlobalContract",
        _ => "with gas keys or state init",
    }
}

/// A view call: runs `method` read-only with the view gas limit; nothing is kept.
pub fn view_call(
    vm: &Vm,
    state: &State,
    id: &AccountId,
    method: &str,
    args: &[u8],
    block: &BlockContext,
) -> Result<(Vec<u8>, Vec<String>), FunctionCallError> {
    let account = state.account(id).ok_or_else(|| code_does_not_exist(id))?;
    let code = state
        .account_code(id)
        .ok_or_else(|| code_does_not_exist(id))?;
    let max_gas_burnt = vm.config().wasm_config.limit_config.max_gas_burnt;
    let context = VMContext {
        current_account_id: id.clone(),
        signer_account_id: id.clone(),
        signer_account_pk: Vec::new(),
        predecessor_account_id: id.clone(),
        refund_to_account_id: id.clone(),
        input: args.to_vec().into(),
        promise_results: Vec::new().into(),
        block_height: block.height,
        block_timestamp: block.timestamp_ns,
        epoch_height: 1,
        account_balance: account.amount(),
        account_locked_balance: account.locked(),
        storage_usage: account.storage_usage(),
        account_contract: account.contract().into_owned(),
        attached_deposit: Balance::ZERO,
        prepaid_gas: max_gas_burnt,
        random_seed: block.random_seed.clone(),
        view_config: Some(ViewConfig { max_gas_burnt }),
        output_data_receivers: Vec::new(),
    };
    let mut storage = state.storage(id).cloned().unwrap_or_default();
    let call = vm.call(code, method, &context, &mut storage, CryptoHash::default());
    match call.error {
        Some(e) => Err(e),
        None => Ok((
            call.outcome.return_data.as_value().unwrap_or_default(),
            call.outcome.logs,
        )),
    }
}
