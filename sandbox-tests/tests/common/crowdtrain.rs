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

/// A fresh chain with the factory deployed and run `name` created by `test.near`.
pub struct FreshRun {
    /// The chain and the near-workspaces worker on it.
    pub net: super::Net,
    /// `test.near`.
    pub root: Account,
    /// The run's account.
    pub run: AccountId,
    /// Block time when the run was configured, unix ms.
    pub now_ms: u64,
}

/// Starts a chain, deploys the factory and creates run `name` from [`config`] with
/// funding goal `goal`, changed by `edit`; `None`, with the reason printed, when
/// `make contracts` has not built the wasm.
pub async fn fresh_run(name: &str, goal: u128, edit: impl FnOnce(&mut Value)) -> Option<FreshRun> {
    let (Some(factory_wasm), Some(_)) =
        (wasm("crowdtrain_factory.wasm"), wasm("crowdtrain_run.wasm"))
    else {
        return None;
    };
    let net = super::start().await;
    let root = net.worker.root_account().unwrap();
    let factory = deploy_factory(&root, &factory_wasm).await;
    let now_ms = net.worker.view_block().await.unwrap().timestamp() / 1_000_000;
    let mut cfg = config("test.near", now_ms, goal);
    edit(&mut cfg);
    let (out, run) = create_run(&root, &factory, name, cfg).await;
    assert!(out.is_success(), "{out:?}");
    Some(FreshRun {
        net,
        root,
        run,
        now_ms,
    })
}

/// `submit_receipt` arguments: the receipt and its ed25519 signature, base64.
pub fn signed(receipt: &crowdtrain_protocol::Receipt, sk: &near_crypto::SecretKey) -> Value {
    use base64::Engine;
    let near_crypto::Signature::ED25519(sig) = sk.sign(&receipt.signing_hash().0) else {
        unreachable!("ed25519 key")
    };
    let signature = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
    json!({"receipt": receipt, "signature": signature})
}

/// Replaces the section `name` of `sandbox-tests/GAS.md` (between
/// `<!-- name -->` and `<!-- /name -->`, appended if absent) with `table`. Two gas
/// tests of this binary write their own sections; the lock keeps their writes apart.
pub fn write_gas_section(name: &str, table: &str) {
    static GAS_MD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = GAS_MD.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("GAS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    let section = format!("{open}\n{table}{close}\n");
    let text = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if a < b => {
            let end = b + close.len() + usize::from(text[b + close.len()..].starts_with('\n'));
            format!("{}{section}{}", &text[..a], &text[end..])
        }
        _ => format!("{text}\n{section}"),
    };
    std::fs::write(&path, text).unwrap();
}
