//! Transaction validation and conversion into the first receipt, as nearcore's
//! `verify_and_charge_transaction`: signature, key permission, nonce, balance,
//! then the signer pays send fees, prepaid exec fees, attached gas and deposits.
//! A rejected transaction changes nothing.

use near_primitives::account::AccessKeyPermission;
use near_primitives::action::Action;
use near_primitives::errors::{ActionsValidationError, InvalidAccessKeyError, InvalidTxError};
use near_primitives::transaction::{SignedTransaction, TransactionNonce};
use near_primitives::types::{Balance, Gas};

use crate::actions::ZERO_BALANCE_ACCOUNT_STORAGE_LIMIT;
use crate::fees;
use crate::receipt::{ActionReceipt, child_id};
use crate::state::State;
use crate::vm::Vm;

/// A transaction turned into its first receipt.
pub struct Converted {
    /// The receipt to execute.
    pub receipt: ActionReceipt,
    /// Send fees burnt at conversion.
    pub gas_burnt: Gas,
}

fn check_actions(vm: &Vm, actions: &[Action]) -> Result<(), ActionsValidationError> {
    let limits = &vm.config().wasm_config.limit_config;
    let total = fees::prepaid_gas(actions);
    if total > limits.max_total_prepaid_gas {
        return Err(ActionsValidationError::TotalPrepaidGasExceeded {
            total_prepaid_gas: total,
            limit: limits.max_total_prepaid_gas,
        });
    }
    for (i, action) in actions.iter().enumerate() {
        match action {
            Action::DeleteAccount(_) if i + 1 != actions.len() => {
                return Err(ActionsValidationError::DeleteActionMustBeFinal);
            }
            Action::DeployContract(d) if d.code.len() as u64 > limits.max_contract_size => {
                return Err(ActionsValidationError::ContractSizeExceeded {
                    size: d.code.len() as u64,
                    limit: limits.max_contract_size,
                });
            }
            Action::FunctionCall(f) => {
                if f.gas.as_gas() == 0 {
                    return Err(ActionsValidationError::FunctionCallZeroAttachedGas);
                }
                if f.method_name.len() as u64 > limits.max_length_method_name {
                    return Err(
                        ActionsValidationError::FunctionCallMethodNameLengthExceeded {
                            length: f.method_name.len() as u64,
                            limit: limits.max_length_method_name,
                        },
                    );
                }
                if f.args.len() as u64 > limits.max_arguments_length {
                    return Err(
                        ActionsValidationError::FunctionCallArgumentsLengthExceeded {
                            length: f.args.len() as u64,
                            limit: limits.max_arguments_length,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates `tx` against `state` at head `height`, charges the signer and bumps
/// the key's nonce. `Err` leaves `state` untouched.
pub fn verify_and_charge(
    vm: &Vm,
    state: &mut State,
    tx: &SignedTransaction,
    height: u64,
    gas_price: u128,
) -> Result<Converted, InvalidTxError> {
    let t = &tx.transaction;
    let (signer_id, receiver_id, pk) = (t.signer_id(), t.receiver_id(), t.public_key());
    if !tx.signature.verify(tx.get_hash().as_ref(), pk) {
        return Err(InvalidTxError::InvalidSignature);
    }
    let TransactionNonce::Nonce { nonce } = t.nonce() else {
        return Err(InvalidTxError::InvalidTransactionVersion);
    };
    let size = tx.get_size();
    let limit = vm.config().wasm_config.limit_config.max_transaction_size;
    if size > limit {
        return Err(InvalidTxError::TransactionSizeExceeded { size, limit });
    }
    check_actions(vm, t.actions()).map_err(InvalidTxError::ActionsValidation)?;
    let mut account =
        state
            .account(signer_id)
            .cloned()
            .ok_or_else(|| InvalidTxError::SignerDoesNotExist {
                signer_id: signer_id.clone(),
            })?;
    let mut key = state.access_key(signer_id, pk).cloned().ok_or_else(|| {
        InvalidTxError::InvalidAccessKeyError(InvalidAccessKeyError::AccessKeyNotFound {
            account_id: signer_id.clone(),
            public_key: Box::new(pk.clone()),
        })
    })?;
    if nonce <= key.nonce {
        return Err(InvalidTxError::InvalidNonce {
            tx_nonce: nonce,
            ak_nonce: key.nonce,
        });
    }
    let upper_bound =
        (height + 1) * near_primitives::account::AccessKey::ACCESS_KEY_NONCE_RANGE_MULTIPLIER;
    if nonce >= upper_bound {
        return Err(InvalidTxError::NonceTooLarge {
            tx_nonce: nonce,
            upper_bound,
        });
    }

    let config = vm.config();
    let send = fees::send_gas(&config.fees, t.actions(), signer_id, receiver_id).as_gas();
    let exec = fees::exec_gas(&config.fees, t.actions(), receiver_id).as_gas();
    let attached = fees::prepaid_gas(t.actions()).as_gas();
    let gas_total = (send as u128) + (exec as u128) + (attached as u128);
    let gas_cost = gas_total
        .checked_mul(gas_price)
        .ok_or(InvalidTxError::CostOverflow)?;
    let total_cost = gas_cost
        .checked_add(fees::deposit(t.actions()))
        .ok_or(InvalidTxError::CostOverflow)?;

    let balance = account.amount().as_yoctonear();
    if balance < total_cost {
        return Err(InvalidTxError::NotEnoughBalance {
            signer_id: signer_id.clone(),
            balance: account.amount(),
            cost: Balance::from_yoctonear(total_cost),
        });
    }
    if let AccessKeyPermission::FunctionCall(p) = &mut key.permission {
        let [Action::FunctionCall(f)] = t.actions() else {
            return Err(InvalidTxError::InvalidAccessKeyError(
                InvalidAccessKeyError::RequiresFullAccess,
            ));
        };
        if !f.deposit.is_zero() {
            return Err(InvalidTxError::InvalidAccessKeyError(
                InvalidAccessKeyError::DepositWithFunctionCall,
            ));
        }
        if p.receiver_id != receiver_id.as_str() {
            return Err(InvalidTxError::InvalidAccessKeyError(
                InvalidAccessKeyError::ReceiverMismatch {
                    tx_receiver: receiver_id.clone(),
                    ak_receiver: p.receiver_id.clone(),
                },
            ));
        }
        if !p.method_names.is_empty() && !p.method_names.contains(&f.method_name) {
            return Err(InvalidTxError::InvalidAccessKeyError(
                InvalidAccessKeyError::MethodNameMismatch {
                    method_name: f.method_name.clone(),
                },
            ));
        }
        if let Some(allowance) = p.allowance {
            if allowance.as_yoctonear() < gas_cost {
                return Err(InvalidTxError::InvalidAccessKeyError(
                    InvalidAccessKeyError::NotEnoughAllowance {
                        account_id: signer_id.clone(),
                        public_key: Box::new(pk.clone()),
                        allowance,
                        cost: Balance::from_yoctonear(gas_cost),
                    },
                ));
            }
            p.allowance = Some(Balance::from_yoctonear(allowance.as_yoctonear() - gas_cost));
        }
    } else if !matches!(key.permission, AccessKeyPermission::FullAccess) {
        return Err(InvalidTxError::InvalidTransactionVersion);
    }
    account.set_amount(Balance::from_yoctonear(balance - total_cost));
    if account.storage_usage() > ZERO_BALANCE_ACCOUNT_STORAGE_LIMIT {
        let per_byte = config
            .fees
            .storage_usage_config
            .storage_amount_per_byte
            .as_yoctonear();
        let required = per_byte.saturating_mul(account.storage_usage() as u128);
        let available = account.amount().as_yoctonear() + account.locked().as_yoctonear();
        if available < required {
            return Err(InvalidTxError::LackBalanceForState {
                signer_id: signer_id.clone(),
                amount: Balance::from_yoctonear(required - available),
            });
        }
    }

    key.nonce = nonce;
    state.set_account(signer_id.clone(), account);
    state.set_access_key(signer_id, pk.clone(), key);
    let receipt = ActionReceipt {
        id: child_id(&tx.get_hash(), 0),
        predecessor_id: signer_id.clone(),
        receiver_id: receiver_id.clone(),
        signer_id: signer_id.clone(),
        signer_public_key: pk.clone(),
        refund_to: signer_id.clone(),
        input_data_ids: Vec::new(),
        output_data_receivers: Vec::new(),
        actions: t.actions().to_vec(),
    };
    Ok(Converted {
        receipt,
        gas_burnt: Gas::from_gas(send),
    })
}
