//! A wrong checkpoint on the real contracts: a dishonest minority cannot finalize
//! it (the quorum is a majority of bonded stake); when dishonest providers do carry
//! the stake, an auditor's `dispute_result` rolls the round back, slashes every voter
//! of the wrong result into the holders' revenue, pays none of it, and the honest
//! providers continue from the last undisputed checkpoint in a fresh round.

use crate::common::crowdtrain::{FreshRun, fresh_run, signed};
use crate::common::*;
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};
use near_crypto::{KeyType, SecretKey};
use near_workspaces::types::NearToken;
use serde_json::{Value, json};

#[tokio::test]
async fn a_wrong_checkpoint_is_refused_to_a_minority_and_rolled_back_for_a_majority() {
    let Some(FreshRun {
        net,
        root,
        run,
        now_ms,
    }) = fresh_run("rollback", NEAR, |cfg| {
        cfg["auditors"] = json!(["auditor.test.near"]);
        cfg["quorum"] = json!(2);
    })
    .await
    else {
        return;
    };
    let out = root
        .call(&run, "deposit")
        .deposit(NearToken::from_near(5))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    let auditor = root
        .create_subaccount("auditor")
        .initial_balance(NearToken::from_near(5))
        .transact()
        .await
        .unwrap()
        .unwrap();
    let mut providers = Vec::new();
    for name in ["h1", "h2", "d1", "d2", "d3"] {
        let p = root
            .create_subaccount(name)
            .initial_balance(NearToken::from_near(5))
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
        assert!(out.is_success(), "{out:?}");
        providers.push((p, sk));
    }
    let view = |method: &'static str, args: Value| {
        let (net, run) = (&net, run.clone());
        async move {
            net.worker
                .view(&run, method)
                .args_json(args)
                .await
                .unwrap()
                .json::<Value>()
                .unwrap()
        }
    };
    // `who` post receipts for `round` over the blob set of the providers in `set`.
    let post =
        |round: u64, base: Hash32, result: Hash32, set: &'static [usize], who: &'static [usize]| {
            let blob = move |i: usize| sha256(format!("{round} {i}").as_bytes());
            let blobs: Vec<Hash32> = set.iter().map(|i| blob(*i)).collect();
            let providers = &providers;
            let run = run.clone();
            async move {
                for i in who {
                    let (p, sk) = &providers[*i];
                    let receipt = Receipt {
                        run: run.to_string(),
                        round,
                        provider: p.id().to_string(),
                        base_checkpoint: base,
                        result_checkpoint: result,
                        blob: blob(*i),
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
                    assert!(out.is_success(), "{out:?}");
                }
                blobs
            }
        };
    let finalize = |round: u64, blobs: Vec<Hash32>| {
        let (root, run) = (root.clone(), run.clone());
        async move {
            root.call(&run, "finalize_round")
                .args_json(json!({"round": round, "blob_hashes": blobs}))
                .max_gas()
                .transact()
                .await
                .unwrap()
        }
    };
    let (initial, wrong, right) = (Hash32::default(), sha256(b"wrong"), sha256(b"checkpoint 1"));

    // Two dishonest providers of five: 2 NEAR of 5 NEAR bonded is no quorum.
    let blobs = post(1, initial, wrong, &[2, 3, 4], &[2, 3]).await;
    let out = finalize(1, blobs).await;
    assert!(
        format!("{:?}", out.failures()).contains("no quorum"),
        "{out:?}"
    );

    // A third joins them: now they carry the stake and finalize the wrong checkpoint.
    let blobs = post(1, initial, wrong, &[2, 3, 4], &[4]).await;
    assert!(finalize(1, blobs).await.is_success());
    assert_eq!(view("run_info", json!({})).await["open_round"], 2);

    let revenue_before = view("treasury", json!({})).await["revenue_in"].clone();
    let out = auditor
        .call(&run, "dispute_result")
        .args_json(json!({"round": 1, "reason": "recomputed checkpoint differs"}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    let info = view("run_info", json!({})).await;
    assert_eq!(info["last_finalized_round"], 0);
    assert_eq!(info["open_round"], 3);
    assert_eq!(info["checkpoint"]["hash"], json!(initial));
    assert_eq!(
        view("round", json!({"round": 1})).await["status"],
        "Disputed"
    );
    let list = view("providers", json!({})).await;
    let statuses: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["status"])
        .collect();
    assert_eq!(
        statuses,
        vec![
            &json!("Active"),
            &json!("Active"),
            &json!("Slashed"),
            &json!("Slashed"),
            &json!("Slashed")
        ]
    );
    let treasury = view("treasury", json!({})).await;
    assert_eq!(treasury["bonds_held"], (2 * NEAR).to_string());
    let gained = treasury["revenue_in"]
        .as_str()
        .unwrap()
        .parse::<u128>()
        .unwrap()
        - revenue_before.as_str().unwrap().parse::<u128>().unwrap();
    assert!(
        gained > 3 * NEAR - NEAR / 10,
        "slashed bonds go to the holders: {gained}"
    );

    // The wrong round never pays, even after its window.
    net.worker.fast_forward(120).await.unwrap();
    let out = root
        .call(&run, "settle_round")
        .args_json(json!({"round": 1}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        format!("{:?}", out.failures()).contains("never paid"),
        "{out:?}"
    );

    // The honest two continue from the initial checkpoint in round 3 and are paid.
    let blobs = post(3, initial, right, &[0, 1], &[0, 1]).await;
    assert!(finalize(3, blobs).await.is_success());
    net.worker.fast_forward(120).await.unwrap();
    let out = root
        .call(&run, "settle_round")
        .args_json(json!({"round": 3}))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    let pending = view("pending", json!({"account_id": providers[0].0.id()})).await;
    assert_eq!(pending["compute_payments"], (1000u128 * 1000).to_string());
    let pending = view("pending", json!({"account_id": providers[2].0.id()})).await;
    assert_eq!(pending["compute_payments"], "0");
}
