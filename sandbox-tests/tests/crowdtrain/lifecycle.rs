//! The full lifecycle on the real contracts: factory → run → three funders reach
//! the goal → three providers register → two rounds of receipts signed with real
//! ed25519 keys → finalize → an auditor disputes one credit → the window passes →
//! settle → revenue paid → everyone claims. Shares, compute payments, royalties
//! and every NEAR balance are checked to the yocto.

use crate::common::crowdtrain::{FreshRun, burnt, fresh_run, signed};
use crate::common::*;
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};
use near_crypto::{KeyType, SecretKey};
use near_workspaces::types::NearToken;
use near_workspaces::{Account, AccountId};
use serde_json::{Value, json};

const TOKENS: u64 = 1000;
const PRICE_PER_TOKEN: u128 = 1000;
const SHARES_PER_TOKEN: u128 = 1000;

struct Ledger {
    /// NEAR balance each account should have, tracked from the outcomes.
    expected: Vec<(Account, u128)>,
}

impl Ledger {
    fn spend(&mut self, who: &AccountId, yocto: u128) {
        let e = self
            .expected
            .iter_mut()
            .find(|(a, _)| a.id() == who)
            .expect("tracked account");
        e.1 -= yocto;
    }
    fn earn(&mut self, who: &AccountId, yocto: u128) {
        let e = self
            .expected
            .iter_mut()
            .find(|(a, _)| a.id() == who)
            .expect("tracked account");
        e.1 += yocto;
    }
}

#[tokio::test]
async fn the_full_lifecycle_pays_everyone_exactly() {
    let Some(FreshRun {
        net,
        root,
        run,
        now_ms,
    }) = fresh_run("life", 9 * NEAR, |cfg| {
        cfg["auditors"] = json!(["auditor.test.near"]);
    })
    .await
    else {
        return;
    };

    let mut ledger = Ledger {
        expected: Vec::new(),
    };
    let make = |name: &'static str| {
        let root = root.clone();
        async move {
            let a = root
                .create_subaccount(name)
                .initial_balance(NearToken::from_near(10))
                .transact()
                .await
                .unwrap()
                .unwrap();
            (a, 10 * NEAR)
        }
    };
    let mut funders = Vec::new();
    for name in ["f1", "f2", "f3"] {
        let (a, start) = make(name).await;
        ledger.expected.push((a.clone(), start));
        funders.push(a);
    }
    let mut providers = Vec::new();
    for name in ["p1", "p2", "p3"] {
        let (a, start) = make(name).await;
        ledger.expected.push((a.clone(), start));
        providers.push((a, SecretKey::from_seed(KeyType::ED25519, name)));
    }
    let (auditor, start) = make("auditor").await;
    ledger.expected.push((auditor.clone(), start));

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
    let num = |v: &Value| v.as_str().unwrap().parse::<u128>().unwrap();

    // Funding: 3 + 3 + 4 NEAR reaches the 9 NEAR goal (storage comes out of the first deposits).
    for (f, near) in funders.iter().zip([3u128, 3, 4]) {
        let out = f
            .call(&run, "deposit")
            .deposit(NearToken::from_yoctonear(near * NEAR))
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        ledger.spend(f.id(), near * NEAR + burnt(&out));
    }
    assert_eq!(view("funding_status", json!({})).await["phase"], "Funded");

    // Providers: bond 1 NEAR plus storage; the excess of the 2 NEAR attached comes back.
    for (p, sk) in &providers {
        let out = p
            .call(&run, "register_provider")
            .args_json(json!({"signing_key": sk.public_key().to_string(), "node_id": p.id()}))
            .deposit(NearToken::from_near(2))
            .max_gas()
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        let storage: u128 = out
            .logs()
            .iter()
            .find_map(|l| l.strip_prefix("EVENT_JSON:"))
            .map(|e| serde_json::from_str::<Value>(e).unwrap()["data"][0]["storage_cost"].clone())
            .map(|v| num(&v))
            .expect("provider_registered event");
        ledger.spend(p.id(), NEAR + storage + burnt(&out));
    }

    // Two rounds; p3's round-1 credit is disputed (its bond is slashed) and it sits out round 2.
    let mut base = Hash32::default();
    for round in 1..=2u64 {
        let active: Vec<_> = if round == 1 {
            providers.iter().collect()
        } else {
            providers[..2].iter().collect()
        };
        let blobs: Vec<Hash32> = active
            .iter()
            .map(|(p, _)| sha256(format!("{round}{}", p.id()).as_bytes()))
            .collect();
        let result = sha256(format!("checkpoint {round}").as_bytes());
        for ((p, sk), blob) in active.iter().zip(&blobs) {
            let receipt = Receipt {
                run: run.to_string(),
                round,
                provider: p.id().to_string(),
                base_checkpoint: base,
                result_checkpoint: result,
                blob: *blob,
                blob_set: blob_set_digest(&blobs),
                inner_steps: 10,
                tokens: TOKENS,
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
            ledger.spend(p.id(), burnt(&out));
        }
        let out = auditor
            .call(&run, "finalize_round")
            .args_json(json!({"round": round, "blob_hashes": blobs}))
            .max_gas()
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        ledger.spend(auditor.id(), burnt(&out));
        if round == 1 {
            let out = auditor
                .call(&run, "dispute")
                .args_json(json!({"round": 1, "provider": providers[2].0.id(), "reason": "blob does not reproduce"}))
                .max_gas()
                .transact()
                .await
                .unwrap();
            assert!(out.is_success(), "{out:?}");
            ledger.spend(auditor.id(), burnt(&out));
        }
        net.worker.fast_forward(120).await.unwrap();
        let out = auditor
            .call(&run, "settle_round")
            .args_json(json!({"round": round}))
            .max_gas()
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        ledger.spend(auditor.id(), burnt(&out));
        base = result;
    }

    // Shares minted and compute owed: two credits each for p1 and p2, none for p3.
    for (i, (p, _)) in providers.iter().enumerate() {
        let credits = if i < 2 { 2 } else { 0 };
        let shares = num(&view("ft_balance_of", json!({"account_id": p.id()})).await);
        assert_eq!(
            shares,
            credits * SHARES_PER_TOKEN * TOKENS as u128,
            "{}",
            p.id()
        );
        let pending = view("pending", json!({"account_id": p.id()})).await;
        assert_eq!(
            num(&pending["compute_payments"]),
            credits * PRICE_PER_TOKEN * TOKENS as u128
        );
    }

    // Revenue: a whole multiple of the supply, so each share earns exactly 7 yocto.
    let supply = num(&view("ft_total_supply", json!({})).await);
    let mut before = Vec::new();
    for (a, _) in &ledger.expected {
        before.push(num(
            &view("pending", json!({"account_id": a.id()})).await["royalties"],
        ));
    }
    let out = root
        .call(&run, "pay_revenue")
        .deposit(NearToken::from_yoctonear(7 * supply))
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    for ((a, _), earlier) in ledger.expected.iter().zip(&before) {
        let shares = num(&view("ft_balance_of", json!({"account_id": a.id()})).await);
        let now = num(&view("pending", json!({"account_id": a.id()})).await["royalties"]);
        assert_eq!(
            now - earlier,
            7 * shares,
            "{} earns 7 yocto per share",
            a.id()
        );
    }

    // Everyone with something pending claims it; the transfer is exactly the pending amount.
    let accounts: Vec<Account> = ledger.expected.iter().map(|(a, _)| a.clone()).collect();
    for a in &accounts {
        let pending = view("pending", json!({"account_id": a.id()})).await;
        let owed = num(&pending["royalties"]) + num(&pending["compute_payments"]);
        if owed == 0 {
            continue;
        }
        let out = a.call(&run, "claim").max_gas().transact().await.unwrap();
        assert!(out.is_success(), "{out:?}");
        ledger.spend(a.id(), burnt(&out));
        ledger.earn(a.id(), owed);
        let after = view("pending", json!({"account_id": a.id()})).await;
        assert_eq!(
            num(&after["royalties"]) + num(&after["compute_payments"]),
            0
        );
    }
    for (a, expected) in &ledger.expected {
        let actual = a.view_account().await.unwrap().balance.as_yoctonear();
        assert_eq!(actual, *expected, "{}'s balance to the yocto", a.id());
    }
}
