//! Payouts whose transfer fails: a holder (a contract) claims, or closes its share
//! account, and deletes itself in the same step, so the run's transfer finds no
//! account. The run's callback must restore what was owed, and the NEAR stays with
//! the run.

use crate::common::crowdtrain::{FreshRun, burnt, fresh_run};
use crate::common::*;
use near_workspaces::types::NearToken;
use near_workspaces::{Account, AccountId, Contract};
use serde_json::{Value, json};

/// A holder contract: `fund(run)` forwards the attached deposit to `run.deposit`;
/// `claim_and_die(run)` calls `run.claim` and deletes this account (to test.near);
/// `unregister_and_die(run)` calls `run.storage_unregister({"force":true})` with 1
/// yoctoNEAR and deletes this account.
const HOLDER_WAT: &str = r#"
(module
  (import "env" "input" (func $input (param i64)))
  (import "env" "read_register" (func $read_register (param i64 i64)))
  (import "env" "register_len" (func $register_len (param i64) (result i64)))
  (import "env" "current_account_id" (func $current_account_id (param i64)))
  (import "env" "attached_deposit" (func $attached_deposit (param i64)))
  (import "env" "promise_batch_create" (func $batch (param i64 i64) (result i64)))
  (import "env" "promise_batch_action_function_call"
    (func $call (param i64 i64 i64 i64 i64 i64 i64)))
  (import "env" "promise_batch_action_delete_account" (func $delete (param i64 i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 16) "deposit")
  (data (i32.const 32) "claim")
  (data (i32.const 48) "test.near")
  (data (i32.const 64) "storage_unregister")
  (data (i32.const 96) "{\"force\":true}")
  (data (i32.const 640) "\01")
  (func $run (result i64)
    (call $input (i64.const 0))
    (call $read_register (i64.const 0) (i64.const 1024))
    (call $batch (call $register_len (i64.const 0)) (i64.const 1024)))
  (func (export "fund")
    (call $attached_deposit (i64.const 256))
    (call $call (call $run) (i64.const 7) (i64.const 16) (i64.const 0) (i64.const 0)
      (i64.const 256) (i64.const 30000000000000)))
  (func (export "claim_and_die")
    (local $self i64)
    (call $call (call $run) (i64.const 5) (i64.const 32) (i64.const 0) (i64.const 0)
      (i64.const 512) (i64.const 60000000000000))
    (call $current_account_id (i64.const 1))
    (call $read_register (i64.const 1) (i64.const 2048))
    (local.set $self (call $batch (call $register_len (i64.const 1)) (i64.const 2048)))
    (call $delete (local.get $self) (i64.const 9) (i64.const 48)))
  (func (export "unregister_and_die")
    (local $self i64)
    (call $call (call $run) (i64.const 18) (i64.const 64) (i64.const 14) (i64.const 96)
      (i64.const 640) (i64.const 60000000000000))
    (call $current_account_id (i64.const 1))
    (call $read_register (i64.const 1) (i64.const 2048))
    (local.set $self (call $batch (call $register_len (i64.const 1)) (i64.const 2048)))
    (call $delete (local.get $self) (i64.const 9) (i64.const 48)))
)
"#;

/// The holder contract, deployed as `holder.test.near`, holding 3 NEAR of the run's shares.
async fn funded_holder(root: &Account, run: &AccountId) -> Contract {
    let holder = root
        .create_subaccount("holder")
        .initial_balance(NearToken::from_near(10))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let holder = holder
        .deploy(&wat::parse_str(HOLDER_WAT).unwrap())
        .await
        .unwrap()
        .unwrap();
    let out = holder
        .call("fund")
        .args(run.as_bytes().to_vec())
        .deposit(NearToken::from_near(3))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        out.is_success() && out.receipt_failures().is_empty(),
        "{out:?}"
    );
    holder
}

#[tokio::test]
async fn a_claim_to_a_deleted_account_restores_the_pending_royalties() {
    let Some(FreshRun { net, root, run, .. }) = fresh_run("claims", 5 * NEAR, |_| {}).await else {
        return;
    };

    let holder = funded_holder(&root, &run).await;
    let out = root
        .call(&run, "pay_revenue")
        .deposit(NearToken::from_near(10))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    let pending = |who: String| {
        let net = &net;
        let run = run.clone();
        async move {
            let v: Value = net
                .worker
                .view(&run, "pending")
                .args_json(json!({"account_id": who}))
                .await
                .unwrap()
                .json()
                .unwrap();
            v["royalties"].as_str().unwrap().parse::<u128>().unwrap()
        }
    };
    let owed = pending(holder.id().to_string()).await;
    assert!(owed > 0, "the holder earned royalties");
    let run_before = net
        .worker
        .view_account(&run)
        .await
        .unwrap()
        .balance
        .as_yoctonear();

    let out = holder
        .call("claim_and_die")
        .args(run.as_bytes().to_vec())
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        net.worker.view_account(holder.id()).await.is_err(),
        "the holder deleted itself"
    );
    assert!(
        out.logs().iter().any(|l| l.contains("claim_restored")),
        "{:?}",
        out.logs()
    );
    assert_eq!(
        pending(holder.id().to_string()).await,
        owed,
        "pending royalties restored"
    );
    let run_after = net
        .worker
        .view_account(&run)
        .await
        .unwrap()
        .balance
        .as_yoctonear();
    assert_eq!(run_after, run_before, "the NEAR came back to the run");
}

#[tokio::test]
async fn a_payout_to_a_deleted_account_is_kept_for_it() {
    let Some(FreshRun { net, root, run, .. }) = fresh_run("payouts", 5 * NEAR, |_| {}).await else {
        return;
    };
    let holder = funded_holder(&root, &run).await;
    let run_before = net
        .worker
        .view_account(&run)
        .await
        .unwrap()
        .balance
        .as_yoctonear();
    let out = holder
        .call("unregister_and_die")
        .args(run.as_bytes().to_vec())
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        net.worker.view_account(holder.id()).await.is_err(),
        "the holder deleted itself"
    );
    assert!(
        out.logs().iter().any(|l| l.contains("payout_restored")),
        "{:?}",
        out.logs()
    );
    let owed: Value = net
        .worker
        .view(&run, "payout_owed")
        .args_json(json!({"account_id": holder.id()}))
        .await
        .unwrap()
        .json()
        .unwrap();
    let owed: u128 = owed.as_str().unwrap().parse().unwrap();
    assert!(
        owed > 0,
        "the storage deposit (and the yocto) are kept for the account"
    );
    let run_after = net
        .worker
        .view_account(&run)
        .await
        .unwrap()
        .balance
        .as_yoctonear();
    // The run got the 1 yocto attached and kept what it could not deliver.
    assert_eq!(run_after, run_before + 1, "the NEAR came back to the run");

    // The account comes back and takes what it was owed, to the yocto.
    let holder = root
        .create_subaccount("holder")
        .initial_balance(NearToken::from_near(1))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let start = holder.view_account().await.unwrap().balance.as_yoctonear();
    let out = holder
        .call(&run, "retry_payout")
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        out.is_success() && out.receipt_failures().is_empty(),
        "{out:?}"
    );
    let now = holder.view_account().await.unwrap().balance.as_yoctonear();
    assert_eq!(now, start + owed - burnt(&out), "the owed payout arrives");
    let left: Value = net
        .worker
        .view(&run, "payout_owed")
        .args_json(json!({"account_id": holder.id()}))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(left, json!("0"), "nothing is owed twice");
}
