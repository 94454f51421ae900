//! Helpers for the scenarios on the real crowdtrain contracts (wasm from
//! `make contracts`): loading the wasm, a valid run config, deploying the factory.

use near_workspaces::result::ExecutionFinalResult;
use near_workspaces::types::{Gas, NearToken};
use near_workspaces::{Account, AccountId, Contract};
use serde_json::{Value, json};

use super::NEAR;

/// The wasm `make contracts` built, or `None` (with the reason printed) if absent.
pub fn wasm(name: &str) -> Option<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/contracts")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            eprintln!(
                "skipped: {} not readable ({e}); run `make contracts` first",
                path.display()
            );
            None
        }
    }
}

/// A valid run config: funding open for a day from `now_ms`, goal `funding_goal`.
pub fn config(owner: &str, now_ms: u64, funding_goal: u128) -> Value {
    let hash = "00".repeat(32);
    json!({
        "owner": owner,
        "auditors": [],
        "funding_goal": funding_goal.to_string(),
        "funding_deadline_ms": (now_ms + 86_400_000).to_string(),
        "min_deposit": NEAR.to_string(),
        "provider_bond": NEAR.to_string(),
        "price_per_token": "1000",
        "shares_per_token": "1000",
        "quorum": 1,
        "challenge_window_ms": "60000",
        "inner_steps": 10,
        "max_tokens_per_round": "1000000",
        "model_spec_hash": hash,
        "dataset_hash": hash,
        "initial_checkpoint_hash": hash,
        "initial_checkpoint_uri": "https://example.invalid/ckpt0",
    })
}

/// yoctoNEAR burnt by a transaction and all its receipts.
pub fn burnt(out: &ExecutionFinalResult) -> u128 {
    out.outcomes()
        .iter()
        .map(|o| o.tokens_burnt.as_yoctonear())
        .sum()
}

/// Deploys and initialises the factory as `factory.<root>` (50 NEAR).
pub async fn deploy_factory(root: &Account, factory_wasm: &[u8]) -> Contract {
    let factory = root
        .create_subaccount("factory")
        .initial_balance(NearToken::from_near(50))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let factory = factory.deploy(factory_wasm).await.unwrap().unwrap();
    factory
        .call("new")
        .transact()
        .await
        .unwrap()
        .into_result()
        .unwrap();
    factory
}

/// The deposit `create_run` needs, as the factory reports it.
pub async fn create_run_deposit(factory: &Contract) -> u128 {
    let cost: Value = factory
        .view("create_run_cost")
        .await
        .unwrap()
        .json()
        .unwrap();
    cost["deposit"].as_str().unwrap().parse().unwrap()
}

/// `creator` creates run `name` with `config`; returns the outcome and the run's id.
pub async fn create_run(
    creator: &Account,
    factory: &Contract,
    name: &str,
    config: Value,
) -> (ExecutionFinalResult, AccountId) {
    let deposit = create_run_deposit(factory).await;
    let out = creator
        .call(factory.id(), "create_run")
        .args_json(json!({"name": name, "config": config}))
        .deposit(NearToken::from_yoctonear(deposit))
        .gas(Gas::from_tgas(300))
        .transact()
        .await
        .unwrap();
    let id = format!("{name}.{}", factory.id()).parse().unwrap();
    (out, id)
}
