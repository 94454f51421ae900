//! near-workspaces, unchanged, against the local chain: what sandbox tests use
//! (dev_deploy, call, view, transfer, sub-accounts, keys, patch_state,
//! fast_forward, concurrent transactions) works through JSON-RPC.

use crate::common::*;
use near_workspaces::types::NearToken;

#[tokio::test]
async fn deploy_call_and_view_a_contract() {
    let net = start().await;
    let contract = net.worker.dev_deploy(&test_contract()).await.unwrap();
    let out = contract
        .call("set")
        .args(b"v1".to_vec())
        .transact()
        .await
        .unwrap();
    assert!(out.is_success(), "{out:?}");
    assert_eq!(out.logs(), vec!["hello"]);
    assert!(out.total_gas_burnt.as_gas() > 0);

    let got = contract.view("get").await.unwrap();
    assert_eq!(got.result, b"v1");
    let code = contract.view_code().await.unwrap();
    assert_eq!(code, test_contract());
    let state = contract.view_state().await.unwrap();
    assert_eq!(state.get(b"k".as_slice()), Some(&b"v1".to_vec()));
    let account = contract.view_account().await.unwrap();
    assert!(account.storage_usage > test_contract().len() as u64);
}

#[tokio::test]
async fn contract_panics_reach_the_client_with_their_message() {
    let net = start().await;
    let contract = net.worker.dev_deploy(&test_contract()).await.unwrap();
    let out = contract.call("fail").transact().await.unwrap();
    assert!(out.is_failure());
    let failure = format!("{:?}", out.into_result().unwrap_err());
    assert!(
        failure.contains("Smart contract panicked: boom"),
        "{failure}"
    );

    let err = contract.view("fail").await.unwrap_err();
    assert!(format!("{err:?}").contains("boom"), "{err:?}");
}

#[tokio::test]
async fn sub_accounts_transfers_keys_and_deletion() {
    let net = start().await;
    let root = net.worker.root_account().unwrap();
    let alice = root
        .create_subaccount("alice")
        .initial_balance(NearToken::from_near(5))
        .transact()
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let bob = root
        .create_subaccount("bob")
        .initial_balance(NearToken::from_near(1))
        .transact()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alice.view_account().await.unwrap().balance,
        NearToken::from_near(5)
    );
    assert_eq!(alice.view_access_keys().await.unwrap().len(), 1);

    let out = alice
        .transfer_near(bob.id(), NearToken::from_near(2))
        .await
        .unwrap();
    assert!(out.is_success());
    assert_eq!(
        bob.view_account().await.unwrap().balance,
        NearToken::from_near(3)
    );

    let before = bob.view_account().await.unwrap().balance;
    let out = alice.clone().delete_account(bob.id()).await.unwrap();
    assert!(out.is_success(), "{out:?}");
    assert!(
        net.worker.view_account(alice.id()).await.is_err(),
        "alice is gone"
    );
    assert!(
        bob.view_account().await.unwrap().balance > before,
        "bob inherited alice's balance"
    );
}

#[tokio::test]
async fn cross_contract_callbacks_through_the_client() {
    let net = start().await;
    let a = net.worker.dev_deploy(&test_contract()).await.unwrap();
    let b = net.worker.dev_deploy(&test_contract()).await.unwrap();
    b.call("set")
        .args(b"42".to_vec())
        .transact()
        .await
        .unwrap()
        .into_result()
        .unwrap();
    let out = a
        .call("call_get")
        .args(b.id().as_bytes().to_vec())
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert_eq!(out.clone().raw_bytes().unwrap(), b"42");
    assert_eq!(out.receipt_outcomes().len(), 3);
    let out = a
        .call("call_fail")
        .args(b.id().as_bytes().to_vec())
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert_eq!(out.clone().raw_bytes().unwrap(), b"failed");
    assert_eq!(out.receipt_failures().len(), 1);
}

#[tokio::test]
async fn patch_state_and_fast_forward() {
    let net = start().await;
    let contract = net.worker.dev_deploy(&test_contract()).await.unwrap();
    net.worker
        .patch_state(contract.id(), b"k", b"patched")
        .await
        .unwrap();
    assert_eq!(contract.view("get").await.unwrap().result, b"patched");

    let before = net.worker.view_block().await.unwrap();
    net.worker.fast_forward(500).await.unwrap();
    let after = net.worker.view_block().await.unwrap();
    assert!(after.height() >= before.height() + 500);
    assert!(after.timestamp() >= before.timestamp() + 500 * 1_000_000_000);
}

#[tokio::test]
async fn concurrent_transactions_from_one_account_all_land() {
    let net = start().await;
    let contract = net.worker.dev_deploy(&test_contract()).await.unwrap();
    let calls = (0..6).map(|i| {
        let contract = contract.clone();
        async move {
            contract
                .call("set")
                .args(format!("v{i}").into_bytes())
                .transact()
                .await
        }
    });
    // Sent together so their nonces race like real concurrent clients.
    for out in futures::future::join_all(calls).await {
        assert!(out.unwrap().is_success());
    }
    let v = contract.view("get").await.unwrap().result;
    assert!(v.starts_with(b"v"));
}

#[tokio::test]
async fn async_transactions_are_polled_to_their_final_outcome() {
    let net = start().await;
    let contract = net.worker.dev_deploy(&test_contract()).await.unwrap();
    let status = contract
        .call("set")
        .args(b"async".to_vec())
        .transact_async()
        .await
        .unwrap();
    let out = status.await.unwrap();
    assert!(out.is_success(), "{out:?}");
    assert_eq!(contract.view("get").await.unwrap().result, b"async");
}
