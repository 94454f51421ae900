//! The real crowdtrain contracts (near-sdk 5.30 wasm from `make contracts`) on the
//! chain: the factory creates a run account through a cross-contract batch, the
//! callback records it, a funder deposits; a run whose `new` panics is rolled
//! back and the creator gets the deposit back to the yocto. Skipped, with the
//! reason printed, when the wasm has not been built.

use crate::common::crowdtrain::{burnt, config, wasm};
use crate::common::*;
use near_workspaces::types::{Gas, NearToken};
use serde_json::{Value, json};

#[tokio::test]
async fn the_factory_creates_a_run_and_refunds_a_failed_one() {
    let (Some(factory_wasm), Some(_)) =
        (wasm("crowdtrain_factory.wasm"), wasm("crowdtrain_run.wasm"))
    else {
        return;
    };
    let net = start().await;
    let root = net.worker.root_account().unwrap();
    let factory = root
        .create_subaccount("factory")
        .initial_balance(NearToken::from_near(50))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let factory = factory.deploy(&factory_wasm).await.unwrap().unwrap();
    factory
        .call("new")
        .transact()
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let cost: Value = factory
        .view("create_run_cost")
        .await
        .unwrap()
        .json()
        .unwrap();
    let deposit: u128 = cost["deposit"].as_str().unwrap().parse().unwrap();
    let creator = root
        .create_subaccount("creator")
        .initial_balance(NearToken::from_near(100))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let now_ms = net.worker.view_block().await.unwrap().timestamp() / 1_000_000;

    let out = creator
        .call(factory.id(), "create_run")
        .args_json(
            json!({"name": "alpha", "config": config(creator.id().as_str(), now_ms, 10 * NEAR)}),
        )
        .deposit(NearToken::from_yoctonear(deposit))
        .gas(Gas::from_tgas(300))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    assert!(out.clone().json::<bool>().unwrap());
    let runs: Value = factory
        .view("runs")
        .args_json(json!({}))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(runs[0]["account_id"], "alpha.factory.test.near");
    let run_id: near_workspaces::AccountId = "alpha.factory.test.near".parse().unwrap();
    let code = net.worker.view_code(&run_id).await.unwrap();
    assert_eq!(code, wasm("crowdtrain_run.wasm").unwrap());

    let funder = root
        .create_subaccount("funder")
        .initial_balance(NearToken::from_near(20))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let out = funder
        .call(&run_id, "deposit")
        .deposit(NearToken::from_near(5))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    assert!(
        out.logs()
            .iter()
            .any(|l| l.starts_with("EVENT_JSON:") && l.contains("\"deposit\""))
    );

    // A config the run rejects: `new` panics, the whole batch is undone, the
    // callback sends the deposit back.
    let before = creator.view_account().await.unwrap().balance.as_yoctonear();
    let factory_before = factory.view_account().await.unwrap().balance.as_yoctonear();
    let out = creator
        .call(factory.id(), "create_run")
        .args_json(json!({"name": "broken", "config": config(creator.id().as_str(), now_ms, 0)}))
        .deposit(NearToken::from_yoctonear(deposit))
        .gas(Gas::from_tgas(300))
        .transact()
        .await
        .unwrap();
    assert!(!out.clone().json::<bool>().unwrap(), "{out:?}");
    let failure = format!("{:?}", out.receipt_failures());
    assert!(
        failure.contains("funding_goal"),
        "the panic names the field: {failure}"
    );
    assert!(
        net.worker
            .view_account(&"broken.factory.test.near".parse().unwrap())
            .await
            .is_err()
    );
    let after = creator.view_account().await.unwrap().balance.as_yoctonear();
    assert_eq!(
        after,
        before - burnt(&out),
        "deposit back to the yocto; only gas was spent"
    );
    assert_eq!(
        factory.view_account().await.unwrap().balance.as_yoctonear(),
        factory_before
    );
}
