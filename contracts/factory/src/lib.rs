//! The crowdtrain factory: `create_run` makes `<name>.<factory>`, deploys the run
//! contract (embedded at build time, see build.rs) and calls its `new`; if any
//! step fails the caller's deposit comes back. `runs` lists what it created.

use near_sdk::json_types::U128;
use near_sdk::serde_json::{self, Value, json};
use near_sdk::store::Vector;
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
        }
    }

    /// Creates `<name>.<factory>`, deploys the run contract and calls
    /// `new(config)` with the attached deposit as the run's balance (it pays the
    /// code's and state's storage). On failure the deposit comes back.
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
            !self.runs.iter().any(|r| r.account_id == account_id),
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
        Promise::new(account_id.clone())
            .create_account()
            .transfer(attached)
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
                    .on_run_created(account_id, creator, U128(attached.as_yoctonear())),
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
