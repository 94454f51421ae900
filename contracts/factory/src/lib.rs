//! The crowdtrain factory: `create_run` makes `<name>.<factory>`, deploys the run
//! contract (embedded at build time, see build.rs) and calls its `new`; if any
//! step fails the caller's deposit comes back. `runs` lists what it created.

use near_sdk::json_types::U128;
use near_sdk::serde_json::{self, Value, json};
use near_sdk::store::{LookupSet, Vector};
use near_sdk::{
    AccountId, Gas, NearToken, PanicOnDefault, Promise, PromiseError, env, near, require,
};

/// The run contract's wasm (empty when built before `make contracts`).
pub const RUN_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/run.wasm"));
/// Storage bytes reserved for a new run's own state, beyond its code.
pub const RUN_STATE_ALLOWANCE_BYTES: u128 = 50_000;
/// Gas for the run's `new`.
const GAS_FOR_NEW: Gas = Gas::from_tgas(30);
/// Gas for the `on_run_created` callback.
const GAS_FOR_CALLBACK: Gas = Gas::from_tgas(15);
/// Longest run name (the label before `.<factory>`).
pub const MAX_NAME_LEN: usize = 32;

/// A run this factory created.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RunEntry {
    /// The run contract's account, `<name>.<factory>`.
    pub account_id: AccountId,
    /// Who called `create_run` (and paid for it).
    pub creator: AccountId,
    /// When it was created, unix ms.
    pub created_at_ms: u64,
}

/// The factory's state: the runs it created, in creation order.
#[near(contract_state)]
#[derive(PanicOnDefault)]
pub struct Factory {
    runs: Vector<RunEntry>,
    /// Accounts of `runs`, so a taken name is found without a scan of every run.
    taken: LookupSet<AccountId>,
}

/// NEP-297 event of the factory (standard `crowdtrain`).
fn emit(event: &str, data: Value) {
    let body =
        json!({ "standard": "crowdtrain", "version": "1.0.0", "event": event, "data": [data] });
    env::log_str(&format!("EVENT_JSON:{body}"));
}

/// yoctoNEAR `create_run` needs: the run's code and state allowance in storage.
pub fn required_deposit() -> u128 {
    (RUN_WASM.len() as u128 + RUN_STATE_ALLOWANCE_BYTES) * env::storage_byte_cost().as_yoctonear()
}

fn assert_run_name(name: &str) {
    require!(
        !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !name.starts_with(['-', '_'])
            && !name.ends_with(['-', '_']),
        "the run name must be 1 to 32 lowercase letters, digits, '-' or '_' (not at either end)"
    );
}

#[near]
impl Factory {
    /// An empty factory.
    #[init]
    pub fn new() -> Self {
        Self {
            runs: Vector::new(b"r"),
            taken: LookupSet::new(b"t"),
        }
    }

    /// Creates `<name>.<factory>`, deploys the run contract and calls
    /// `new(config)` with `create_run_cost.deposit` as the run's balance (it pays
    /// the code's and state's storage); any deposit above that comes back at once,
    /// and on failure the rest comes back too.
    #[payable]
    pub fn create_run(&mut self, name: String, config: Value) -> Promise {
        require!(
            !RUN_WASM.is_empty(),
            "this factory was built without the run contract; rebuild it with `make contracts`"
        );
        assert_run_name(&name);
        let account_id: AccountId = format!("{name}.{}", env::current_account_id())
            .parse()
            .unwrap_or_else(|_| env::panic_str("the run name makes an invalid account id"));
        require!(
            !self.taken.contains(&account_id),
            format!("{account_id} already exists; choose another name")
        );
        let attached = env::attached_deposit();
        let required = required_deposit();
        require!(
            attached.as_yoctonear() >= required,
            format!(
                "attach at least {} to pay the run's storage ({required} yoctoNEAR)",
                NearToken::from_yoctonear(required).exact_amount_display()
            )
        );
        let creator = env::predecessor_account_id();
        let args = serde_json::to_vec(&json!({ "config": config })).expect("JSON");
        // Only what the run needs goes to it; the rest comes back now.
        let excess = attached.as_yoctonear() - required;
        if excess > 0 {
            Promise::new(creator.clone())
                .transfer(NearToken::from_yoctonear(excess))
                .detach();
        }
        Promise::new(account_id.clone())
            .create_account()
            .transfer(NearToken::from_yoctonear(required))
            .deploy_contract(RUN_WASM.to_vec())
            .function_call(
                "new".to_string(),
                args,
                NearToken::from_yoctonear(0),
                GAS_FOR_NEW,
            )
            .then(
                Self::ext(env::current_account_id())
                    .with_static_gas(GAS_FOR_CALLBACK)
                    .on_run_created(account_id, creator, U128(required)),
            )
    }

    /// Callback of `create_run`: records the run, or refunds the creator.
    #[private]
    pub fn on_run_created(
        &mut self,
        account_id: AccountId,
        creator: AccountId,
        deposit: U128,
    ) -> bool {
        let ok = !matches!(env::promise_result_checked(0, 0), Err(PromiseError::Failed));
        if ok {
            self.taken.insert(account_id.clone());
            self.runs.push(RunEntry {
                account_id: account_id.clone(),
                creator: creator.clone(),
                created_at_ms: env::block_timestamp_ms(),
            });
            emit(
                "run_deployed",
                json!({ "account_id": account_id, "creator": creator }),
            );
        } else {
            emit(
                "run_failed",
                json!({ "account_id": account_id, "creator": creator, "refunded": deposit }),
            );
            Promise::new(creator)
                .transfer(NearToken::from_yoctonear(deposit.0))
                .detach();
        }
        ok
    }

    /// Runs created, oldest first, `limit` (default 100) from `from_index`.
    pub fn runs(&self, from_index: Option<u32>, limit: Option<u32>) -> Vec<RunEntry> {
        self.runs
            .iter()
            .skip(from_index.unwrap_or(0) as usize)
            .take(limit.unwrap_or(100) as usize)
            .cloned()
            .collect()
    }

    /// yoctoNEAR `create_run` needs attached, and the embedded run wasm's size and sha256.
    pub fn create_run_cost(&self) -> Value {
        json!({ "deposit": U128(required_deposit()), "run_wasm_bytes": RUN_WASM.len(),
                "run_wasm_sha256": hex(&env::sha256(RUN_WASM)) })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_sdk::mock::MockAction;
    use near_sdk::test_utils::{VMContextBuilder, get_created_receipts, get_logs};
    use near_sdk::{PromiseResult, testing_env};

    fn ctx(caller: &str, deposit: u128, results: Vec<PromiseResult>) {
        let c = VMContextBuilder::new()
            .current_account_id("factory.test.near".parse().unwrap())
            .predecessor_account_id(caller.parse().unwrap())
            .attached_deposit(NearToken::from_yoctonear(deposit))
            .build();
        testing_env!(
            c,
            near_sdk::test_vm_config(),
            near_sdk::RuntimeFeesConfig::test(),
            Default::default(),
            results
        );
    }

    fn panic_message(f: impl FnOnce()) -> String {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("should fail");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn create_run_deploys_the_embedded_wasm_and_calls_new() {
        if RUN_WASM.is_empty() {
            eprintln!("skipped: the factory was built without the run wasm (run `make contracts`)");
            return;
        }
        ctx("alice.near", 0, vec![]);
        let mut f = Factory::new();
        let deposit = required_deposit();
        ctx("alice.near", deposit, vec![]);
        let config = json!({ "owner": "alice.near" });
        let _ = f.create_run("demo".into(), config.clone());
        let receipts = get_created_receipts();
        assert_eq!(receipts[0].receiver_id.as_str(), "demo.factory.test.near");
        let actions = &receipts[0].actions;
        assert!(matches!(actions[0], MockAction::CreateAccount { .. }));
        assert!(
            matches!(&actions[1], MockAction::Transfer { deposit: d, .. } if d.as_yoctonear() == deposit)
        );
        assert!(matches!(&actions[2], MockAction::DeployContract { code, .. } if code == RUN_WASM));
        match &actions[3] {
            MockAction::FunctionCallWeight {
                method_name, args, ..
            } => {
                assert_eq!(method_name, b"new");
                let args: Value = serde_json::from_slice(args).unwrap();
                assert_eq!(args, json!({ "config": config }));
            }
            other => panic!("expected the call to new, got {other:?}"),
        }
        // Success records the run.
        ctx(
            "factory.test.near",
            0,
            vec![PromiseResult::Successful(vec![])],
        );
        assert!(f.on_run_created(
            "demo.factory.test.near".parse().unwrap(),
            "alice.near".parse().unwrap(),
            U128(deposit)
        ));
        let runs = f.runs(None, None);
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].creator.as_str(), "alice.near");
        assert!(get_logs()[0].contains("\"event\":\"run_deployed\""));
        ctx("alice.near", deposit, vec![]);
        let msg = panic_message(|| {
            let _ = f.create_run("demo".into(), json!({}));
        });
        assert!(
            msg.contains("demo.factory.test.near already exists"),
            "{msg}"
        );
    }

    #[test]
    fn a_deposit_above_the_cost_comes_back_to_the_creator() {
        // Fails on the old factory: the whole deposit went to the run.
        if RUN_WASM.is_empty() {
            eprintln!("skipped: the factory was built without the run wasm (run `make contracts`)");
            return;
        }
        ctx("alice.near", 0, vec![]);
        let mut f = Factory::new();
        let deposit = required_deposit();
        let extra = 5 * 10u128.pow(24);
        ctx("alice.near", deposit + extra, vec![]);
        let _ = f.create_run("demo".into(), json!({ "owner": "alice.near" }));
        let sent_to = |who: &str| -> u128 {
            get_created_receipts()
                .iter()
                .filter(|r| r.receiver_id.as_str() == who)
                .flat_map(|r| r.actions.iter())
                .map(|a| match a {
                    MockAction::Transfer { deposit, .. } => deposit.as_yoctonear(),
                    _ => 0,
                })
                .sum()
        };
        assert_eq!(sent_to("alice.near"), extra);
        assert_eq!(sent_to("demo.factory.test.near"), deposit);
    }

    #[test]
    fn create_run_costs_the_same_gas_with_one_run_or_hundreds() {
        if RUN_WASM.is_empty() {
            eprintln!("skipped: the factory was built without the run wasm (run `make contracts`)");
            return;
        }
        ctx("alice.near", 0, vec![]);
        let mut f = Factory::new();
        let gas_of_create = |f: &mut Factory, name: &str| {
            ctx("alice.near", required_deposit(), vec![]);
            let before = env::used_gas();
            let _ = f.create_run(name.into(), json!({}));
            (env::used_gas().as_gas() - before.as_gas()) as i128
        };
        let first = gas_of_create(&mut f, "first");
        for i in 0..300 {
            ctx(
                "factory.test.near",
                0,
                vec![PromiseResult::Successful(vec![])],
            );
            f.on_run_created(
                format!("run{i}.factory.test.near").parse().unwrap(),
                "alice.near".parse().unwrap(),
                U128(1),
            );
        }
        // As between two transactions: state written, collections' caches gone.
        let bytes = near_sdk::borsh::to_vec(&f).unwrap();
        drop(f);
        let mut f: Factory = near_sdk::borsh::from_slice(&bytes).unwrap();
        let later = gas_of_create(&mut f, "later");
        // A scan over 300 runs would cost tens of Tgas more; a lookup costs the same.
        assert!(
            (later - first).abs() < Gas::from_tgas(1).as_gas() as i128,
            "first {first} gas, after 300 runs {later} gas"
        );
    }

    #[test]
    fn a_failed_creation_refunds_the_creator() {
        ctx("alice.near", 0, vec![]);
        let mut f = Factory::new();
        ctx("factory.test.near", 0, vec![PromiseResult::Failed]);
        assert!(!f.on_run_created(
            "demo.factory.test.near".parse().unwrap(),
            "alice.near".parse().unwrap(),
            U128(7)
        ));
        let receipts = get_created_receipts();
        assert_eq!(receipts[0].receiver_id.as_str(), "alice.near");
        assert!(
            matches!(&receipts[0].actions[0], MockAction::Transfer { deposit, .. } if deposit.as_yoctonear() == 7)
        );
        assert!(f.runs(None, None).is_empty());
    }

    #[test]
    fn bad_names_and_small_deposits_are_refused() {
        ctx("alice.near", 0, vec![]);
        let mut f = Factory::new();
        if RUN_WASM.is_empty() {
            // Without the wasm, create_run says how to get it.
            ctx("alice.near", 10u128.pow(25), vec![]);
            let msg = panic_message(|| {
                let _ = f.create_run("demo".into(), json!({}));
            });
            assert!(msg.contains("make contracts"), "{msg}");
        } else {
            for bad in ["", "Demo", "a.b", "-x", &"x".repeat(33)] {
                ctx("alice.near", required_deposit(), vec![]);
                let msg = panic_message(|| {
                    let _ = f.create_run(bad.to_string(), json!({}));
                });
                assert!(msg.contains("the run name must be"), "{bad}: {msg}");
            }
            ctx("alice.near", required_deposit() - 1, vec![]);
            let msg = panic_message(|| {
                let _ = f.create_run("demo".into(), json!({}));
            });
            assert!(msg.contains("attach at least"), "{msg}");
        }
    }
}
