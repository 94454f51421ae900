//! Gas burnt by the run contract's methods, measured on the local chain with 10
//! and with 1,000 share holders, written to `sandbox-tests/GAS.md`. `pay_revenue`
//! and `claim` must not grow with the number of holders (O(1) accounting).

const HOLDERS: usize = 1000;

use crate::common::crowdtrain::{
    config, create_run, deploy_factory, signed, wasm, write_gas_section,
};
use crate::common::*;
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};
use near_crypto::{KeyType, SecretKey};
use near_workspaces::result::ExecutionFinalResult;
use near_workspaces::types::NearToken;
use serde_json::json;

fn tgas(out: &ExecutionFinalResult) -> f64 {
    assert!(out.is_success(), "{out:?}");
    out.total_gas_burnt.as_gas() as f64 / 1e12
}

/// Runs one round with `holders` funders and returns (method, Tgas) in call order.
async fn measure(holders: usize, factory_wasm: &[u8]) -> Vec<(&'static str, f64)> {
    let net = start().await;
    let root = net.worker.root_account().unwrap();
    let factory = deploy_factory(&root, factory_wasm).await;
    let now_ms = net.worker.view_block().await.unwrap().timestamp() / 1_000_000;
    let mut cfg = config("test.near", now_ms, holders as u128 * NEAR);
    cfg["auditors"] = json!(["auditor.test.near"]);
    let (out, run) = create_run(&root, &factory, "gas", cfg).await;
    let mut rows = vec![("factory.create_run", tgas(&out))];

    let mut funders = Vec::new();
    for i in 0..holders {
        let f = root
            .create_subaccount(&format!("f{i}"))
            .initial_balance(NearToken::from_near(4))
            .transact()
            .await
            .unwrap()
            .unwrap();
        funders.push(f);
    }
    for chunk in funders.chunks(50) {
        let deposits = chunk.iter().map(|f| {
            f.call(&run, "deposit")
                .deposit(NearToken::from_near(2))
                .transact()
        });
        for (i, out) in futures::future::join_all(deposits)
            .await
            .into_iter()
            .enumerate()
        {
            let out = out.unwrap();
            if rows.len() == 1 && i == 0 {
                rows.push(("deposit (new holder)", tgas(&out)));
            }
            assert!(out.is_success(), "{out:?}");
        }
    }
    let out = funders[0]
        .call(&run, "deposit")
        .deposit(NearToken::from_near(1))
        .transact()
        .await
        .unwrap();
    rows.push(("deposit (existing holder)", tgas(&out)));

    let auditor = root
        .create_subaccount("auditor")
        .initial_balance(NearToken::from_near(5))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let mut providers = Vec::new();
    for name in ["p1", "p2"] {
        let p = root
            .create_subaccount(name)
            .initial_balance(NearToken::from_near(10))
            .transact()
            .await
            .unwrap()
            .unwrap();
        let sk = SecretKey::from_seed(KeyType::ED25519, name);
        let out = p
            .call(&run, "register_provider")
            .args_json(json!({"signing_key": sk.public_key().to_string(), "node_id": name}))
            .deposit(NearToken::from_near(2))
            .max_gas()
            .transact()
            .await
            .unwrap();
        if name == "p1" {
            rows.push(("register_provider", tgas(&out)));
        }
        providers.push((p, sk, sha256(name.as_bytes())));
    }
    let blobs: Vec<Hash32> = providers.iter().map(|p| p.2).collect();
    for (p, sk, blob) in &providers {
        let receipt = Receipt {
            run: run.to_string(),
            round: 1,
            provider: p.id().to_string(),
            base_checkpoint: Hash32::default(),
            result_checkpoint: sha256(b"checkpoint 1"),
            blob: *blob,
            blob_set: blob_set_digest(&blobs),
            inner_steps: 10,
            tokens: 1000,
            loss_start: 2.5,
            loss_end: 2.0,
            unix_ms: now_ms,
        };
        let out = p
            .call(&run, "submit_receipt")
            .args_json(signed(&receipt, sk))
            .max_gas()
            .transact()
            .await
            .unwrap();
        if rows.len() == 4 {
            rows.push(("submit_receipt", tgas(&out)));
        }
        assert!(out.is_success(), "{out:?}");
    }
    let out = root
        .call(&run, "finalize_round")
        .args_json(json!({"round": 1, "blob_hashes": blobs}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    rows.push(("finalize_round", tgas(&out)));
    let out = auditor
        .call(&run, "dispute")
        .args_json(json!({"round": 1, "provider": providers[1].0.id(), "reason": "blob does not reproduce"}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    rows.push(("dispute", tgas(&out)));
    net.worker.fast_forward(120).await.unwrap();
    let out = root
        .call(&run, "settle_round")
        .args_json(json!({"round": 1}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    rows.push(("settle_round", tgas(&out)));
    let out = root
        .call(&run, "pay_revenue")
        .deposit(NearToken::from_near(10))
        .max_gas()
        .transact()
        .await
        .unwrap();
    rows.push(("pay_revenue", tgas(&out)));
    let out = funders[holders - 1]
        .call(&run, "claim")
        .max_gas()
        .transact()
        .await
        .unwrap();
    rows.push(("claim (transfer + callback)", tgas(&out)));
    rows
}

#[tokio::test]
async fn gas_per_method_with_10_and_1000_holders() {
    let (Some(factory_wasm), Some(_)) =
        (wasm("crowdtrain_factory.wasm"), wasm("crowdtrain_run.wasm"))
    else {
        return;
    };
    let small = measure(10, &factory_wasm).await;
    let large = measure(HOLDERS, &factory_wasm).await;
    let mut table = String::from(
        "## Per method, by share holders\n\n\
         Measured by `tests/crowdtrain/gas.rs`. One round: 2 providers, one disputed.\n\n\
         | method | 10 holders | 1,000 holders | ratio |\n|---|---:|---:|---:|\n",
    );
    for ((name, a), (_, b)) in small.iter().zip(&large) {
        table.push_str(&format!("| `{name}` | {a:.2} | {b:.2} | {:.2} |\n", b / a));
    }
    println!("{table}");
    write_gas_section("holders", &table);
    for (name, a) in &small {
        let b = large.iter().find(|r| r.0 == *name).unwrap().1;
        if name.starts_with("pay_revenue") || name.starts_with("claim") {
            assert!(
                b < a * 1.5,
                "{name} grows with holders: {a:.2} -> {b:.2} Tgas"
            );
        }
    }
}
