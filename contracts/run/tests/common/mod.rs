//! Shared fixtures for the run contract's native tests: a mocked chain context,
//! a configuration, signed receipts.
#![allow(dead_code)]

use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest, sha256};
use crowdtrain_run::{Run, RunConfig};
use ed25519_dalek::{Signer, SigningKey};
use near_sdk::json_types::{Base64VecU8, U64, U128};
use near_sdk::mock::MockAction;
use near_sdk::test_utils::{VMContextBuilder, get_created_receipts};
use near_sdk::{AccountId, NearToken, PromiseResult, PublicKey, testing_env};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// 1 NEAR in yocto.
pub const NEAR: u128 = 10u128.pow(24);
/// The run's account: the one the protocol's pinned test vector was signed for.
pub const RUN: &str = "demo.factory.test.near";
/// Funding deadline of the test config (unix ms).
pub const DEADLINE_MS: u64 = 2_000_000;
/// Challenge window of the test config (ms).
pub const WINDOW_MS: u64 = 10_000;
/// Test config: funding goal.
pub const GOAL: u128 = 100 * NEAR;
/// Test config: bond.
pub const BOND: u128 = 5 * NEAR;
/// Test config: price per token (yocto).
pub const PRICE: u128 = NEAR / 1_000;
/// Test config: shares per token.
pub const SHARES_PER_TOKEN: u128 = 1_000;

/// An account id.
pub fn acc(s: &str) -> AccountId {
    s.parse().unwrap()
}

/// The test configuration (owner "owner.near", auditor "auditor.near").
pub fn config() -> RunConfig {
    RunConfig {
        owner: acc("owner.near"),
        auditors: vec![acc("auditor.near")],
        funding_goal: U128(GOAL),
        funding_deadline_ms: U64(DEADLINE_MS),
        min_deposit: U128(NEAR / 10),
        provider_bond: U128(BOND),
        price_per_token: U128(PRICE),
        shares_per_token: U128(SHARES_PER_TOKEN),
        quorum: 2,
        quorum_bps: None,
        auditor_delay_ms: None,
        stall_timeout_ms: None,
        challenge_window_ms: U64(WINDOW_MS),
        inner_steps: 50,
        max_tokens_per_round: U64(1_000_000),
        model_spec_hash: sha256(b"model"),
        dataset_hash: sha256(b"dataset"),
        initial_checkpoint_hash: sha256(b"checkpoint 0"),
        initial_checkpoint_uri: "sha256:initial".into(),
    }
}

/// Sets the next call's context: caller, attached yocto, block time, and the
/// results of the promises a callback is waiting on.
pub fn call_with(caller: &str, deposit: u128, now_ms: u64, results: Vec<PromiseResult>) {
    let ctx = VMContextBuilder::new()
        .current_account_id(acc(RUN))
        .predecessor_account_id(acc(caller))
        .signer_account_id(acc(caller))
        .attached_deposit(NearToken::from_yoctonear(deposit))
        .block_timestamp(now_ms * 1_000_000)
        .account_balance(NearToken::from_near(1_000_000_000))
        .build();
    testing_env!(
        ctx,
        near_sdk::test_vm_config(),
        near_sdk::RuntimeFeesConfig::test(),
        Default::default(),
        results
    );
}

/// Sets the next call's context (no promise results).
pub fn call(caller: &str, deposit: u128, now_ms: u64) {
    call_with(caller, deposit, now_ms, vec![]);
}

/// A new run at time 1000 ms.
pub fn new_run() -> Run {
    call("factory.test.near", 0, 1_000);
    Run::new(config())
}

/// Runs `f` and returns its panic message (the test fails if it does not panic).
pub fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    let err = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected the call to fail"),
        Err(e) => e,
    };
    err.downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Asserts `f` panics with a message containing `needle`.
pub fn assert_fails<R>(needle: &str, f: impl FnOnce() -> R) {
    let msg = panic_message(f);
    assert!(
        msg.contains(needle),
        "expected a message containing {needle:?}, got {msg:?}"
    );
}

/// yoctoNEAR sent by transfers created in the current call, by receiver.
pub fn transfers() -> Vec<(AccountId, u128)> {
    get_created_receipts()
        .into_iter()
        .flat_map(|r| {
            let to = r.receiver_id.clone();
            r.actions.into_iter().filter_map(move |a| match a {
                MockAction::Transfer { deposit, .. } => Some((to.clone(), deposit.as_yoctonear())),
                _ => None,
            })
        })
        .collect()
}

/// Total yoctoNEAR sent by the current call.
pub fn sent() -> u128 {
    transfers().iter().map(|t| t.1).sum()
}

/// A deterministic provider key: seed = [n; 32] (seed 7 is the protocol vector's key).
pub fn signing_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The near-sdk public key of a dalek key.
pub fn public_key(key: &SigningKey) -> PublicKey {
    let mut bytes = vec![0u8];
    bytes.extend_from_slice(key.verifying_key().as_bytes());
    PublicKey::try_from(bytes).unwrap()
}

/// base64 of the signature of `receipt` by `key`.
pub fn sign(receipt: &Receipt, key: &SigningKey) -> Base64VecU8 {
    Base64VecU8(key.sign(&receipt.signing_hash().0).to_bytes().to_vec())
}

/// The blob hash of a provider in a round.
pub fn blob(provider: &str, round: u64) -> Hash32 {
    sha256(format!("{provider} blob {round}").as_bytes())
}

/// A receipt for `round` from `provider`, on top of `base`, agreeing on `result`
/// and the blob set of `providers`.
pub fn receipt(
    round: u64,
    provider: &str,
    base: Hash32,
    result: Hash32,
    providers: &[&str],
) -> Receipt {
    let blobs: Vec<Hash32> = providers.iter().map(|p| blob(p, round)).collect();
    Receipt {
        run: RUN.into(),
        round,
        provider: provider.into(),
        base_checkpoint: base,
        result_checkpoint: result,
        blob: blob(provider, round),
        blob_set: blob_set_digest(&blobs),
        inner_steps: 50,
        tokens: 1_000,
        loss_start: 3.0,
        loss_end: 2.5,
        unix_ms: 1_795_000_000_000,
    }
}

/// Checkpoint hash named like the protocol vectors: sha256("checkpoint <r>").
pub fn ckpt(r: u64) -> Hash32 {
    sha256(format!("checkpoint {r}").as_bytes())
}

/// Funds `run` to its goal (one deposit by "funder.near") at time 2000 ms.
pub fn fund(run: &mut Run) {
    call("funder.near", GOAL + NEAR, 2_000);
    run.deposit();
}

/// Registers `provider` with key seed `seed`, attaching bond + 1 NEAR for storage.
pub fn register(run: &mut Run, provider: &str, seed: u8, now_ms: u64) {
    call(provider, BOND + NEAR, now_ms);
    run.register_provider(public_key(&signing_key(seed)), format!("node-{provider}"));
}

/// Shares held by `who`.
pub fn bal(run: &Run, who: &str) -> u128 {
    use near_contract_standards::fungible_token::core::FungibleTokenCore;
    run.ft_balance_of(acc(who)).0
}

/// Shares outstanding.
pub fn supply(run: &Run) -> u128 {
    use near_contract_standards::fungible_token::core::FungibleTokenCore;
    run.ft_total_supply().0
}

/// `ft_transfer` of `amount` to `to` (context already set, with 1 yocto).
pub fn xfer(run: &mut Run, to: &str, amount: u128) {
    use near_contract_standards::fungible_token::core::FungibleTokenCore;
    run.ft_transfer(acc(to), U128(amount), None);
}
