//! Action fees from the protocol's `RuntimeFeesConfig`, as nearcore charges them:
//! the send part is burnt when a receipt is created, the exec part when it runs.

use near_parameters::{ActionCosts, RuntimeFeesConfig};
use near_primitives::account::AccessKeyPermission;
use near_primitives::action::Action;
use near_primitives::types::{AccountId, Gas};

/// Whether `id` is a 64-hex NEAR-implicit account (created by a transfer).
pub fn is_near_implicit(id: &AccountId) -> bool {
    let s = id.as_str();
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Gas fee of one action, split by phase.
fn action_fee(
    fees: &RuntimeFeesConfig,
    action: &Action,
    receiver: &AccountId,
    sir: bool,
    exec: bool,
) -> u64 {
    let cost = |c: ActionCosts| -> u64 {
        let fee = fees.fee(c);
        if exec {
            fee.exec_fee().gas.as_gas()
        } else {
            fee.send_fee(sir).gas.as_gas()
        }
    };
    match action {
        Action::CreateAccount(_) => cost(ActionCosts::create_account),
        Action::DeployContract(a) => cost(ActionCosts::deploy_contract_base).saturating_add(
            cost(ActionCosts::deploy_contract_byte).saturating_mul(a.code.len() as u64),
        ),
        Action::FunctionCall(a) => {
            let bytes = (a.method_name.len() + a.args.len()) as u64;
            cost(ActionCosts::function_call_base)
                .saturating_add(cost(ActionCosts::function_call_byte).saturating_mul(bytes))
        }
        Action::Transfer(_) => {
            let mut gas = cost(ActionCosts::transfer);
            if is_near_implicit(receiver) {
                // The transfer also creates the account and its full-access key.
                gas = gas
                    .saturating_add(cost(ActionCosts::create_account))
                    .saturating_add(cost(ActionCosts::add_full_access_key));
            }
            gas
        }
        Action::Stake(_) => cost(ActionCosts::stake),
        Action::AddKey(a) => match &a.access_key.permission {
            AccessKeyPermission::FunctionCall(p) => {
                let bytes: u64 = p.method_names.iter().map(|m| m.len() as u64 + 1).sum();
                cost(ActionCosts::add_function_call_key_base).saturating_add(
                    cost(ActionCosts::add_function_call_key_byte).saturating_mul(bytes),
                )
            }
            _ => cost(ActionCosts::add_full_access_key),
        },
        Action::DeleteKey(_) => cost(ActionCosts::delete_key),
        Action::DeleteAccount(_) => cost(ActionCosts::delete_account),
        // Unsupported actions are rejected before fees matter; charge the receipt base.
        _ => 0,
    }
}

/// Gas burnt when a receipt with `actions` is created (the send fees).
pub fn send_gas(
    fees: &RuntimeFeesConfig,
    actions: &[Action],
    sender: &AccountId,
    receiver: &AccountId,
) -> Gas {
    let sir = sender == receiver;
    let base = fees
        .fee(ActionCosts::new_action_receipt)
        .send_fee(sir)
        .gas
        .as_gas();
    let total = actions.iter().fold(base, |acc, a| {
        acc.saturating_add(action_fee(fees, a, receiver, sir, false))
    });
    Gas::from_gas(total)
}

/// Gas burnt when a receipt with `actions` executes, before any contract runs.
pub fn exec_gas(fees: &RuntimeFeesConfig, actions: &[Action], receiver: &AccountId) -> Gas {
    let base = fees
        .fee(ActionCosts::new_action_receipt)
        .exec_fee()
        .gas
        .as_gas();
    let total = actions.iter().fold(base, |acc, a| {
        acc.saturating_add(action_fee(fees, a, receiver, false, true))
    });
    Gas::from_gas(total)
}

/// Gas attached to function calls in `actions`.
pub fn prepaid_gas(actions: &[Action]) -> Gas {
    let total = actions
        .iter()
        .map(|a| match a {
            Action::FunctionCall(f) => f.gas.as_gas(),
            _ => 0,
        })
        .fold(0u64, u64::saturating_add);
    Gas::from_gas(total)
}

/// NEAR attached to `actions` (transfers and function-call deposits), in yocto.
pub fn deposit(actions: &[Action]) -> u128 {
    actions
        .iter()
        .map(|a| match a {
            Action::FunctionCall(f) => f.deposit.as_yoctonear(),
            Action::Transfer(t) => t.deposit.as_yoctonear(),
            _ => 0,
        })
        .fold(0u128, u128::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_parameters::RuntimeConfigStore;
    use near_primitives::action::{FunctionCallAction, TransferAction};
    use near_primitives::types::Balance;
    use near_primitives::version::PROTOCOL_VERSION;

    fn fees() -> std::sync::Arc<RuntimeFeesConfig> {
        RuntimeConfigStore::new(None)
            .get_config(PROTOCOL_VERSION)
            .fees
            .clone()
    }

    #[test]
    fn function_call_fee_grows_with_argument_bytes() {
        let fees = fees();
        let call = |n: usize| {
            vec![Action::FunctionCall(Box::new(FunctionCallAction {
                method_name: "m".into(),
                args: vec![0; n],
                gas: Gas::from_gas(0),
                deposit: Balance::ZERO,
            }))]
        };
        let r: AccountId = "c.test.near".parse().unwrap();
        let per_byte = fees
            .fee(ActionCosts::function_call_byte)
            .exec_fee()
            .gas
            .as_gas();
        assert!(per_byte > 0);
        let diff =
            exec_gas(&fees, &call(100), &r).as_gas() - exec_gas(&fees, &call(0), &r).as_gas();
        assert_eq!(diff, 100 * per_byte);
    }

    #[test]
    fn transfer_to_implicit_account_also_pays_account_creation() {
        let fees = fees();
        let actions = vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(1),
        })];
        let named: AccountId = "bob.test.near".parse().unwrap();
        let implicit: AccountId = "a".repeat(64).parse().unwrap();
        let s = send_gas(&fees, &actions, &named, &named).as_gas();
        let si = send_gas(&fees, &actions, &named, &implicit).as_gas();
        assert!(si > s);
        assert_eq!(deposit(&actions), 1);
    }
}
