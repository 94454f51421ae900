//! Receipts the run contract must refuse on chain, signed with real ed25519 keys:
//! a bad signature, a replay, a receipt for another run, and one that does not pay
//! its storage once the treasury is spent. Each refusal leaves no trace.

use crate::common::crowdtrain::{FreshRun, fresh_run, signed};
use crate::common::*;
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};
use near_crypto::SecretKey;
use near_workspaces::types::NearToken;
use serde_json::{Value, json};

#[tokio::test]
async fn bad_signatures_replays_and_foreign_receipts_are_refused() {
    // A price no treasury can pay: settling round 1 spends it all.
    let Some(FreshRun {
        net,
        root,
        run,
        now_ms,
    }) = fresh_run("rej", 5 * NEAR, |cfg| {
        cfg["price_per_token"] = json!((10 * NEAR).to_string());
    })
    .await
    else {
        return;
    };
    let funder = root
        .create_subaccount("funder")
        .initial_balance(NearToken::from_near(20))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let out = funder
        .call(&run, "deposit")
        .deposit(NearToken::from_near(6))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");

    let provider = root
        .create_subaccount("p1")
        .initial_balance(NearToken::from_near(20))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let signing = SecretKey::from_seed(near_crypto::KeyType::ED25519, "p1 signing key");
    let out = provider
        .call(&run, "register_provider")
        .args_json(json!({"signing_key": signing.public_key().to_string(), "node_id": "node-1"}))
        .deposit(NearToken::from_near(2))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");

    let blob = sha256(b"p1 pseudo-gradient");
    let receipt = Receipt {
        run: run.to_string(),
        round: 1,
        provider: provider.id().to_string(),
        base_checkpoint: Hash32::default(),
        result_checkpoint: sha256(b"checkpoint 1"),
        blob,
        blob_set: blob_set_digest(&[blob]),
        inner_steps: 10,
        tokens: 1000,
        loss_start: 2.5,
        loss_end: 2.0,
        unix_ms: now_ms,
    };
    let submit = |args: Value| {
        let provider = provider.clone();
        let run = run.clone();
        async move {
            provider
                .call(&run, "submit_receipt")
                .args_json(args)
                .max_gas()
                .transact()
                .await
                .unwrap()
        }
    };
    let receipts = || async {
        let v: Value = net
            .worker
            .view(&run, "receipts")
            .args_json(json!({"round": 1}))
            .await
            .unwrap()
            .json()
            .unwrap();
        v.as_array().unwrap().len()
    };

    let stranger = SecretKey::from_seed(near_crypto::KeyType::ED25519, "not the provider");
    let out = submit(signed(&receipt, &stranger)).await;
    assert!(
        format!("{:?}", out.failures()).contains("the signature does not match"),
        "{out:?}"
    );
    assert_eq!(receipts().await, 0);

    let out = submit(signed(&receipt, &signing)).await;
    assert!(out.is_success(), "{out:?}");
    assert_eq!(receipts().await, 1);

    let out = submit(signed(&receipt, &signing)).await;
    assert!(
        format!("{:?}", out.failures()).contains("already posted a receipt"),
        "{out:?}"
    );

    let foreign = Receipt {
        run: "other.factory.test.near".into(),
        ..receipt.clone()
    };
    let out = submit(signed(&foreign, &signing)).await;
    assert!(
        format!("{:?}", out.failures()).contains("this receipt is for run other.factory.test.near"),
        "{out:?}"
    );
    assert_eq!(receipts().await, 1, "refused receipts leave no trace");

    // Unpaid storage: once the treasury is spent, a receipt must bring its storage.
    let out = provider
        .call(&run, "finalize_round")
        .args_json(json!({"round": 1, "blob_hashes": [blob]}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    net.worker.fast_forward(120).await.unwrap();
    // Settling spends the treasury on compute, so its own storage comes from the caller.
    let out = provider
        .call(&run, "settle_round")
        .args_json(json!({"round": 1}))
        .deposit(NearToken::from_near(1))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    let treasury: Value = net
        .worker
        .view(&run, "treasury")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert!(
        treasury.to_string().contains("\"treasury\":\"0\""),
        "{treasury}"
    );
    let next = Receipt {
        round: 2,
        base_checkpoint: receipt.result_checkpoint,
        ..receipt.clone()
    };
    let out = submit(signed(&next, &signing)).await;
    assert!(
        format!("{:?}", out.failures()).contains("the run's treasury is spent"),
        "{out:?}"
    );
    let v: Value = net
        .worker
        .view(&run, "receipts")
        .args_json(json!({"round": 2}))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "the unpaid receipt was not stored"
    );
    let out = provider
        .call(&run, "submit_receipt")
        .args_json(signed(&next, &signing))
        .deposit(NearToken::from_near(1))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        out.is_success(),
        "paying for storage lets it through: {out:?}"
    );
}
