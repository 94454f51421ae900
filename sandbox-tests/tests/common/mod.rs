//! Shared test support: a WAT contract that exercises the host functions the chain
//! must route (storage, logs, panics, promises and callbacks), transaction signing
//! for direct chain tests, and a near-workspaces worker on the local chain.
#![allow(dead_code)]

pub mod crowdtrain;

use crowdtrain_localnet::chain::{Chain, ChainConfig};
use near_crypto::{KeyType, SecretKey};
use near_primitives::action::Action;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::AccountId;

/// One NEAR in yocto.
pub const NEAR: u128 = 10u128.pow(24);
/// One Tgas.
pub const TGAS: u64 = 10u64.pow(12);

/// A contract written directly against NEAR's host functions:
/// - `set(input)`: stores the input under "k", logs "hello"
/// - `get()`: returns "k"
/// - `fail()`: panics with "boom"
/// - `set_then_fail()`: writes "k" then panics (the write must not survive)
/// - `call_get(account)` / `call_fail(account)`: calls `get`/`fail` on `account`,
///   then `on_result` on itself, and returns that callback's result
/// - `on_result()`: stores the promise result under "r" ("failed" if it failed), returns it
/// - `send(account)`: transfers the attached deposit to `account`
pub const TEST_CONTRACT_WAT: &str = r#"
(module
  (import "env" "input" (func $input (param i64)))
  (import "env" "read_register" (func $read_register (param i64 i64)))
  (import "env" "register_len" (func $register_len (param i64) (result i64)))
  (import "env" "storage_write" (func $storage_write (param i64 i64 i64 i64 i64) (result i64)))
  (import "env" "storage_read" (func $storage_read (param i64 i64 i64) (result i64)))
  (import "env" "value_return" (func $value_return (param i64 i64)))
  (import "env" "log_utf8" (func $log_utf8 (param i64 i64)))
  (import "env" "panic_utf8" (func $panic_utf8 (param i64 i64)))
  (import "env" "current_account_id" (func $current_account_id (param i64)))
  (import "env" "attached_deposit" (func $attached_deposit (param i64)))
  (import "env" "promise_create" (func $promise_create (param i64 i64 i64 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "promise_then" (func $promise_then (param i64 i64 i64 i64 i64 i64 i64 i64 i64) (result i64)))
  (import "env" "promise_return" (func $promise_return (param i64)))
  (import "env" "promise_result" (func $promise_result (param i64 i64) (result i64)))
  (import "env" "promise_batch_create" (func $promise_batch_create (param i64 i64) (result i64)))
  (import "env" "promise_batch_action_transfer" (func $promise_batch_action_transfer (param i64 i64)))
  (memory (export "memory") 2)
  (data (i32.const 0) "k")
  (data (i32.const 8) "r")
  (data (i32.const 16) "get")
  (data (i32.const 24) "fail")
  (data (i32.const 32) "on_result")
  (data (i32.const 48) "hello")
  (data (i32.const 56) "boom")
  (data (i32.const 64) "failed")
  (func (export "set")
    (call $input (i64.const 0))
    (call $read_register (i64.const 0) (i64.const 4096))
    (drop (call $storage_write (i64.const 1) (i64.const 0) (call $register_len (i64.const 0)) (i64.const 4096) (i64.const 1)))
    (call $log_utf8 (i64.const 5) (i64.const 48)))
  (func (export "get")
    (if (i64.eq (call $storage_read (i64.const 1) (i64.const 0) (i64.const 0)) (i64.const 1))
      (then
        (call $read_register (i64.const 0) (i64.const 4096))
        (call $value_return (call $register_len (i64.const 0)) (i64.const 4096)))))
  (func (export "fail") (call $panic_utf8 (i64.const 4) (i64.const 56)))
  (func (export "set_then_fail")
    (drop (call $storage_write (i64.const 1) (i64.const 0) (i64.const 5) (i64.const 48) (i64.const 1)))
    (call $panic_utf8 (i64.const 4) (i64.const 56)))
  (func $call (param $name_len i64) (param $name_ptr i64)
    (local $p i64)
    (call $input (i64.const 0))
    (call $read_register (i64.const 0) (i64.const 4096))
    (local.set $p (call $promise_create
      (call $register_len (i64.const 0)) (i64.const 4096)
      (local.get $name_len) (local.get $name_ptr)
      (i64.const 0) (i64.const 0) (i64.const 128) (i64.const 10000000000000)))
    (call $current_account_id (i64.const 1))
    (call $read_register (i64.const 1) (i64.const 8192))
    (call $promise_return (call $promise_then (local.get $p)
      (call $register_len (i64.const 1)) (i64.const 8192)
      (i64.const 9) (i64.const 32) (i64.const 0) (i64.const 0) (i64.const 128) (i64.const 10000000000000))))
  (func (export "call_get") (call $call (i64.const 3) (i64.const 16)))
  (func (export "call_fail") (call $call (i64.const 4) (i64.const 24)))
  (func (export "on_result")
    (if (i64.eq (call $promise_result (i64.const 0) (i64.const 0)) (i64.const 1))
      (then
        (call $read_register (i64.const 0) (i64.const 4096))
        (drop (call $storage_write (i64.const 1) (i64.const 8) (call $register_len (i64.const 0)) (i64.const 4096) (i64.const 2)))
        (call $value_return (call $register_len (i64.const 0)) (i64.const 4096)))
      (else
        (drop (call $storage_write (i64.const 1) (i64.const 8) (i64.const 6) (i64.const 64) (i64.const 2)))
        (call $value_return (i64.const 6) (i64.const 64)))))
  (func (export "send")
    (local $p i64)
    (call $input (i64.const 0))
    (call $read_register (i64.const 0) (i64.const 4096))
    (call $attached_deposit (i64.const 256))
    (local.set $p (call $promise_batch_create (call $register_len (i64.const 0)) (i64.const 4096)))
    (call $promise_batch_action_transfer (local.get $p) (i64.const 256)))
)
"#;

/// The test contract as wasm.
pub fn test_contract() -> Vec<u8> {
    wat::parse_str(TEST_CONTRACT_WAT).expect("test contract compiles")
}

/// Parses an account id.
pub fn id(s: &str) -> AccountId {
    s.parse().expect("valid account id")
}

/// The deterministic key tests use for `account`.
pub fn key(account: &str) -> SecretKey {
    SecretKey::from_seed(KeyType::ED25519, account)
}

/// An in-memory chain whose root `test.near` has `key("test.near")`.
pub fn chain() -> Chain {
    Chain::open(ChainConfig {
        chain_id: "localnet".into(),
        root: id("test.near"),
        root_key: key("test.near").public_key(),
        root_balance: 1_000_000 * NEAR,
        home: None,
    })
    .expect("chain opens")
}

/// Signs a V0 transaction.
pub fn sign(
    signer: &str,
    sk: &SecretKey,
    nonce: u64,
    receiver: &str,
    block_hash: CryptoHash,
    actions: Vec<Action>,
) -> SignedTransaction {
    let tx = Transaction::V0(TransactionV0 {
        signer_id: id(signer),
        public_key: sk.public_key(),
        nonce,
        receiver_id: id(receiver),
        block_hash,
        actions,
    });
    let (hash, _) = tx.get_hash_and_size();
    SignedTransaction::new(sk.sign(hash.as_ref()), tx)
}

/// A near-workspaces worker on the local chain, or on a real neard sandbox when
/// `NEAR_SANDBOX_BIN_PATH` is set. Keeps the local chain alive as long as it lives.
pub struct Net {
    /// The worker tests drive.
    pub worker: near_workspaces::Worker<near_workspaces::network::Sandbox>,
    /// The in-process chain (None on a real sandbox).
    pub local: Option<crowdtrain_localnet::LocalNet>,
}

/// Starts a fresh chain and connects near-workspaces to it.
pub async fn start() -> Net {
    if std::env::var_os("NEAR_SANDBOX_BIN_PATH").is_some() {
        let worker = near_workspaces::sandbox()
            .await
            .expect("neard sandbox starts");
        return Net {
            worker,
            local: None,
        };
    }
    let local = crowdtrain_localnet::LocalNet::start(Default::default())
        .await
        .expect("local chain starts");
    let sk: near_workspaces::types::SecretKey = local
        .root_secret_key()
        .to_string()
        .parse()
        .expect("same key format");
    let worker = near_workspaces::sandbox()
        .rpc_addr(&local.rpc_url())
        .validator_key(near_workspaces::network::ValidatorKey::Known(
            local.root_account().clone(),
            sk,
        ))
        .await
        .expect("near-workspaces connects to the local chain");
    Net {
        worker,
        local: Some(local),
    }
}
