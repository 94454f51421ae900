//! The durable outbox across an outage and a crash: calls decided while the
//! endpoint is down wait on disk and land in order, once each, when it returns; a
//! signed transaction left behind by a killed process is not posted twice; one
//! whose block hash expired is re-signed and lands once.

use crate::common::NEAR;
use crate::support::{World, num};
use crowdtrain_agent::chain::outbox::{Call, Outbox, Signed};
use crowdtrain_agent::chain::rpc::Rpc;
use near_crypto::{KeyType, SecretKey};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::gas::Gas;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance};
use serde_json::json;

/// The deposit the agent would have made, signed as alice against the chain's
/// current nonce and block.
async fn signed_deposit(url: &str, amount: u128) -> (Call, SignedTransaction) {
    let alice: AccountId = "alice.test.near".parse().unwrap();
    let run: AccountId = "gpt.factory.test.near".parse().unwrap();
    let sk = SecretKey::from_seed(KeyType::ED25519, "alice");
    let (nonce, block_hash) = Rpc::new(url)
        .access_key(&alice, &sk.public_key())
        .await
        .ok()
        .flatten()
        .expect("alice's key is on chain");
    let call = Call {
        signer: alice.clone(),
        receiver: run.clone(),
        method: "deposit".into(),
        args: b"{}".to_vec(),
        deposit: amount,
        gas: 30_000_000_000_000,
        label: format!("fund {} yocto", amount),
    };
    let tx = Transaction::V0(TransactionV0 {
        signer_id: alice,
        public_key: sk.public_key(),
        nonce: nonce + 1,
        receiver_id: run,
        block_hash,
        actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
            method_name: call.method.clone(),
            args: call.args.clone(),
            gas: Gas::from_gas(call.gas),
            deposit: Balance::from_yoctonear(amount),
        }))],
    });
    let (hash, _) = tx.get_hash_and_size();
    (call, SignedTransaction::new(sk.sign(hash.as_ref()), tx))
}

#[tokio::test]
async fn calls_made_while_the_endpoint_is_down_land_in_order_once_each() {
    let Some(mut world) = World::start(100 * NEAR).await else {
        return;
    };
    let alice = world.person("alice", 30, false).await;
    let agent = world.agent("alice", alice.id().as_str(), 1);
    let storage = num(&world.view("funding_status", json!({})).await["storage_cost"]);

    world.net.stop();
    for amount in ["2", "3"] {
        let r = agent.run(&["fund", "--amount", amount]);
        assert_eq!(
            r.code, 75,
            "queued calls exit with EX_TEMPFAIL: {}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains(&format!("`fund {amount} NEAR` is queued in")),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("`crowdtrain outbox` sends it now"),
            "{}",
            r.stderr
        );
    }
    let listed = agent.ok(&["outbox", "--list"]);
    let first = listed.find("fund 2 NEAR").expect("first queued");
    let second = listed.find("fund 3 NEAR").expect("second queued");
    assert!(first < second, "{listed}");
    // status reads the chain, which is down: it fails and names the endpoint.
    let err = agent.fails(&["status"]);
    assert!(
        err.contains(&format!(
            "the NEAR endpoint {} did not answer",
            world.net.url()
        )),
        "{err}"
    );

    world.net.restart();
    let out = agent.ok(&["outbox"]);
    let first = out.find("(fund 2 NEAR)").expect("first sent");
    let second = out.find("(fund 3 NEAR)").expect("second sent");
    assert!(first < second, "{out}");
    let drain_ms: u64 = out
        .split("drained 2 call(s) in ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("drain time in {out}"));
    println!("outbox drain after the outage: 2 calls in {drain_ms} ms");

    // Once each, in order: 2 NEAR (less alice's storage) then 3 NEAR.
    let funding = world.view("funding_status", json!({})).await;
    assert_eq!(num(&funding["raised"]), 5 * NEAR - storage);
    assert_eq!(
        agent.ok(&["outbox"]).trim(),
        format!(
            "the outbox {} is empty",
            agent.state.join("outbox").display()
        )
    );
}

#[tokio::test]
async fn a_transaction_left_by_a_killed_agent_is_not_posted_twice() {
    let Some(mut world) = World::start(100 * NEAR).await else {
        return;
    };
    let alice = world.person("alice", 30, false).await;
    let agent = world.agent("alice", alice.id().as_str(), 5);
    let url = world.net.url();
    let outbox = Outbox::open(&agent.state.join("outbox")).unwrap();

    // Crash after sending: the deposit landed, but the entry is still on disk.
    let (call, tx) = signed_deposit(&url, 2 * NEAR).await;
    let landed = Rpc::new(&url).send(tx.clone()).await.expect("lands");
    assert!(landed.result.is_ok());
    let mut entry = outbox.push(call).unwrap();
    entry.signed = Some(Signed::new(&tx));
    outbox.write(&entry).unwrap();
    let raised = num(&world.view("funding_status", json!({})).await["raised"]);

    let out = agent.ok(&["outbox"]);
    assert!(
        out.contains(&format!("tx {}", tx.get_hash())),
        "the same transaction: {out}"
    );
    let after = num(&world.view("funding_status", json!({})).await["raised"]);
    assert_eq!(after, raised, "the deposit must not be posted twice");

    // Signed, never sent, and the chain restarted meanwhile: its block hash is
    // unknown now (expired); the agent checks it did not land, re-signs, sends once.
    let (call, tx) = signed_deposit(&url, 3 * NEAR).await;
    let mut entry = outbox.push(call).unwrap();
    entry.signed = Some(Signed::new(&tx));
    outbox.write(&entry).unwrap();
    // A new block, so that after the restart (which keeps only the head) the
    // transaction's block is unknown to the chain.
    world.worker.fast_forward(1).await.unwrap();
    world.net.restart();
    let out = agent.ok(&["outbox"]);
    assert!(out.contains("sent queued call"), "{out}");
    assert!(
        !out.contains(&tx.get_hash().to_string()),
        "re-signed, so a new hash: {out}"
    );
    let after = num(&world.view("funding_status", json!({})).await["raised"]);
    assert_eq!(after, raised + 3 * NEAR, "landed exactly once");
}
