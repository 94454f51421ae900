//! Funding missed: three funders deposit, the deadline passes below the goal,
//! and each `refund` returns every yoctoNEAR deposited (shares and storage
//! deposit) — a funder ends with exactly its start balance minus the gas its
//! two transactions burnt.

use crate::common::crowdtrain::{FreshRun, burnt, fresh_run};
use crate::common::*;
use near_workspaces::types::NearToken;
use serde_json::Value;

#[tokio::test]
async fn a_missed_goal_refunds_every_funder_in_full() {
    let Some(FreshRun { net, root, run, .. }) = fresh_run("missed", 100 * NEAR, |_| {}).await
    else {
        return;
    };

    let mut funders = Vec::new();
    for (name, near) in [("f1", 2u128), ("f2", 3), ("f3", 4)] {
        let funder = root
            .create_subaccount(name)
            .initial_balance(NearToken::from_near(10))
            .transact()
            .await
            .unwrap()
            .unwrap();
        let start = funder.view_account().await.unwrap().balance.as_yoctonear();
        let out = funder
            .call(&run, "deposit")
            .deposit(NearToken::from_yoctonear(near * NEAR))
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        funders.push((funder, start, burnt(&out)));
    }
    let status: Value = net
        .worker
        .view(&run, "funding_status")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["phase"], "Open");
    let refund = funders[0].0.call(&run, "refund").transact().await.unwrap();
    assert!(refund.is_failure(), "no refunds before the deadline");
    funders[0].2 += burnt(&refund);

    // One day and a bit of blocks, at one second each.
    net.worker.fast_forward(90_000).await.unwrap();
    let status: Value = net
        .worker
        .view(&run, "funding_status")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["phase"], "Failed");

    for (funder, start, spent) in &funders {
        let out = funder
            .call(&run, "refund")
            .max_gas()
            .transact()
            .await
            .unwrap();
        assert!(out.is_success(), "{out:?}");
        let now = funder.view_account().await.unwrap().balance.as_yoctonear();
        assert_eq!(
            now,
            start - spent - burnt(&out),
            "{} gets every yocto back",
            funder.id()
        );
    }
    let status: Value = net
        .worker
        .view(&run, "funding_status")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["refunded"], status["raised"]);
}
