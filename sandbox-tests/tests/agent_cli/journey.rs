//! A newcomer's path through the binary: init → fund → register → status → claim →
//! exit, each a separate `crowdtrain` process against `crowdtrain-localnet`; the
//! claim pays exactly what `status` said was pending, to the yocto.

use crate::common::NEAR;
use crate::support::{World, num};
use near_workspaces::types::NearToken;
use serde_json::json;

#[tokio::test]
async fn init_fund_register_status_claim_and_exit_from_the_binary() {
    let Some(world) = World::start(5 * NEAR).await else {
        return;
    };
    let alice = world.person("alice", 30, false).await;
    let agent = world.agent("alice", alice.id().as_str(), 10);

    // init wrote a commented config and a signing key in near-cli's format.
    let config = std::fs::read_to_string(agent.state.join("config.toml")).unwrap();
    assert!(config.contains("# NEAR JSON-RPC endpoint"), "{config}");
    assert!(
        config.contains(&format!("run = \"{}\"", world.run)),
        "{config}"
    );
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(agent.state.join("signing_key.json")).unwrap())
            .unwrap();
    let signing_key = key["public_key"].as_str().unwrap().to_string();
    assert!(signing_key.starts_with("ed25519:"));

    // Before funding: the run is open and alice holds nothing.
    let s = agent.status();
    assert_eq!(s["phase"], "Open");
    assert_eq!(s["shares"], "0");

    // fund 6 NEAR: the 5 NEAR goal is reached, shares minted 1:1 less storage.
    let out = agent.ok(&["fund", "--amount", "6"]);
    assert!(
        out.contains("funded gpt.factory.test.near with 6 NEAR"),
        "{out}"
    );
    let funding = world.view("funding_status", json!({})).await;
    assert_eq!(funding["phase"], "Funded");
    let s = agent.status();
    assert_eq!(s["phase"], "Funded");
    assert_eq!(num(&s["shares"]), num(&funding["raised"]));
    assert_eq!(num(&s["raised"]), 6 * NEAR - num(&funding["storage_cost"]));

    // register: the signing key from init is on the run, with the node id.
    let out = agent.ok(&["register", "--node-id", "alice-node"]);
    assert!(out.contains(&format!("signing key {signing_key}")), "{out}");
    let providers = world.view("providers", json!({})).await;
    assert_eq!(providers[0]["account_id"], "alice.test.near");
    assert_eq!(providers[0]["signing_key"], signing_key.as_str());
    assert_eq!(providers[0]["node_id"], "alice-node");
    assert_eq!(providers[0]["status"], "Active");
    let text = agent.ok(&["status"]);
    assert!(
        text.contains("provider    #0 active, bond 1 NEAR"),
        "{text}"
    );

    // Revenue comes in; status shows alice's royalties; claim pays exactly that.
    let run: near_workspaces::AccountId = world.run.parse().unwrap();
    let paid = world
        .root
        .call(&run, "pay_revenue")
        .deposit(NearToken::from_near(2))
        .transact()
        .await
        .unwrap();
    assert!(paid.is_success(), "{paid:?}");
    let s = agent.status();
    let pending = num(&s["pending"]["royalties"]) + num(&s["pending"]["compute_payments"]);
    assert!(pending > 0 && pending <= 2 * NEAR, "{s}");
    let text = agent.ok(&["status"]);
    assert!(
        text.contains("`crowdtrain claim` sends them to you"),
        "{text}"
    );

    let before = world.balance(&alice).await;
    let out = agent.ok(&["claim"]);
    // "claimed X NEAR = R yoctoNEAR royalties + C yoctoNEAR compute payments (tx H, G Tgas, fee F yoctoNEAR)"
    let number_before = |marker: &str| -> u128 {
        let head = &out[..out
            .find(marker)
            .unwrap_or_else(|| panic!("{marker:?} in {out}"))];
        head.rsplit(' ').nth(1).unwrap().parse().unwrap()
    };
    let royalties = number_before(" royalties");
    let compute = number_before(" compute payments");
    let fee: u128 = out
        .split("fee ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("fee in {out}"));
    assert_eq!(royalties + compute, pending, "{out}");
    let after = world.balance(&alice).await;
    assert_eq!(after, before + pending - fee, "{out}");
    let s = agent.status();
    assert_eq!(s["pending"]["royalties"], "0");

    // exit: the first call starts the challenge window.
    let out = agent.ok(&["exit"]);
    assert!(
        out.contains("exiting: alice.test.near posts no more receipts"),
        "{out}"
    );
    let providers = world.view("providers", json!({})).await;
    assert!(providers[0]["status"]["Exiting"].is_object(), "{providers}");
    assert!(
        std::fs::read_dir(agent.state.join("outbox"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".json"))
    );
}
