//! The chain without RPC: transactions, receipts, refunds and staking rules,
//! checked to the yocto against the outcomes the chain reports.

use std::collections::HashMap;

use crate::common::*;
use crowdtrain_localnet::chain::{Chain, ChainConfig};
use near_crypto::SecretKey;
use near_primitives::account::{AccessKey, AccessKeyPermission, FunctionCallPermission};
use near_primitives::action::{
    Action, AddKeyAction, CreateAccountAction, DeleteAccountAction, DeployContractAction,
    FunctionCallAction, TransferAction,
};
use near_primitives::errors::{
    ActionErrorKind, FunctionCallError, InvalidAccessKeyError, InvalidTxError, TxExecutionError,
};
use near_primitives::types::{Balance, Gas};
use near_primitives::views::{
    ExecutionStatusView, FinalExecutionOutcomeView, FinalExecutionStatus,
};

struct Tester {
    chain: Chain,
    keys: HashMap<String, SecretKey>,
    nonces: HashMap<String, u64>,
}

impl Tester {
    fn new() -> Self {
        let mut keys = HashMap::new();
        keys.insert("test.near".to_string(), key("test.near"));
        Tester {
            chain: chain(),
            keys,
            nonces: HashMap::new(),
        }
    }

    fn tx(
        &mut self,
        signer: &str,
        receiver: &str,
        actions: Vec<Action>,
    ) -> Result<FinalExecutionOutcomeView, InvalidTxError> {
        let sk = self.keys[signer].clone();
        let nonce = self.nonces.get(signer).copied().unwrap_or(0) + 1;
        let head = self.chain.head().hash;
        let result = self
            .chain
            .process_transaction(sign(signer, &sk, nonce, receiver, head, actions));
        if result.is_ok() {
            self.nonces.insert(signer.to_string(), nonce);
        }
        result
    }

    /// Creates `name` funded with `near` NEAR, with its test key; returns the outcome.
    fn create(&mut self, name: &str, amount: u128) -> FinalExecutionOutcomeView {
        let sk = key(name);
        let out = self
            .tx(
                "test.near",
                name,
                vec![
                    Action::CreateAccount(CreateAccountAction {}),
                    Action::Transfer(TransferAction {
                        deposit: Balance::from_yoctonear(amount),
                    }),
                    Action::AddKey(Box::new(AddKeyAction {
                        public_key: sk.public_key(),
                        access_key: AccessKey::full_access(),
                    })),
                ],
            )
            .expect("valid tx");
        assert_success(&out);
        // New keys start at (height - 1) * 1e6, like nearcore's.
        let ak = self
            .chain
            .view_access_key(&id(name), &sk.public_key())
            .unwrap();
        self.nonces.insert(name.to_string(), ak.nonce);
        self.keys.insert(name.to_string(), sk);
        out
    }

    fn deploy(&mut self, name: &str) {
        let out = self
            .tx(
                name,
                name,
                vec![Action::DeployContract(DeployContractAction {
                    code: test_contract(),
                })],
            )
            .unwrap();
        assert_success(&out);
    }

    fn call(
        &mut self,
        signer: &str,
        contract: &str,
        method: &str,
        args: &[u8],
        deposit: u128,
    ) -> FinalExecutionOutcomeView {
        self.tx(signer, contract, vec![call_action(method, args, deposit)])
            .expect("valid tx")
    }

    fn balance(&self, name: &str) -> u128 {
        self.chain
            .view_account(&id(name))
            .map_or(0, |a| a.amount.as_yoctonear())
    }

    fn view(&self, contract: &str, method: &str) -> Vec<u8> {
        self.chain
            .call_function(&id(contract), method, &[])
            .expect("view succeeds")
            .result
    }
}

fn call_action(method: &str, args: &[u8], deposit: u128) -> Action {
    Action::FunctionCall(Box::new(FunctionCallAction {
        method_name: method.into(),
        args: args.to_vec(),
        gas: Gas::from_gas(100 * TGAS),
        deposit: Balance::from_yoctonear(deposit),
    }))
}

fn burnt(out: &FinalExecutionOutcomeView) -> u128 {
    std::iter::once(&out.transaction_outcome)
        .chain(&out.receipts_outcome)
        .map(|o| o.outcome.tokens_burnt.as_yoctonear())
        .sum()
}

fn assert_success(out: &FinalExecutionOutcomeView) {
    assert!(
        matches!(out.status, FinalExecutionStatus::SuccessValue(_)),
        "expected success, got {:?}",
        out.status
    );
}

fn action_error(out: &FinalExecutionOutcomeView) -> ActionErrorKind {
    match &out.status {
        FinalExecutionStatus::Failure(TxExecutionError::ActionError(e)) => e.kind.clone(),
        other => panic!("expected an action error, got {other:?}"),
    }
}

#[test]
fn transfers_cost_exactly_the_amount_plus_the_fees_the_outcome_reports() {
    let mut t = Tester::new();
    let root_before = t.balance("test.near");
    let out = t.create("alice.test.near", 10 * NEAR);
    assert_eq!(t.balance("alice.test.near"), 10 * NEAR);
    assert_eq!(
        t.balance("test.near"),
        root_before - 10 * NEAR - burnt(&out)
    );
    assert!(
        burnt(&out) > 0,
        "fees come from the protocol config, not zero"
    );

    t.create("bob.test.near", NEAR);
    let alice_before = t.balance("alice.test.near");
    let out = t.tx(
        "alice.test.near",
        "bob.test.near",
        vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(3 * NEAR),
        })],
    );
    let out = out.unwrap();
    assert_success(&out);
    assert_eq!(t.balance("bob.test.near"), 4 * NEAR);
    assert_eq!(
        t.balance("alice.test.near"),
        alice_before - 3 * NEAR - burnt(&out)
    );
}

#[test]
fn only_the_parent_creates_sub_accounts_and_only_the_registrar_short_top_level_names() {
    let mut t = Tester::new();
    t.create("alice.test.near", 10 * NEAR);
    let out = t
        .tx(
            "alice.test.near",
            "carol.test.near",
            vec![Action::CreateAccount(CreateAccountAction {})],
        )
        .unwrap();
    assert!(matches!(
        action_error(&out),
        ActionErrorKind::CreateAccountNotAllowed { .. }
    ));
    let out = t
        .tx(
            "alice.test.near",
            "short",
            vec![Action::CreateAccount(CreateAccountAction {})],
        )
        .unwrap();
    assert!(matches!(
        action_error(&out),
        ActionErrorKind::CreateAccountOnlyByRegistrar { .. }
    ));
    assert!(t.chain.view_account(&id("short")).is_none());
    // The root is the registrar, as in a sandbox.
    t.create("short", NEAR);
    assert_eq!(t.balance("short"), NEAR);
}

#[test]
fn rejected_transactions_change_nothing() {
    let mut t = Tester::new();
    t.create("alice.test.near", 10 * NEAR);
    let before = t.balance("alice.test.near");
    let head = t.chain.head().hash;
    let transfer = vec![Action::Transfer(TransferAction {
        deposit: Balance::from_yoctonear(1),
    })];

    // Signed by a key that is not on the account.
    let stranger = key("stranger");
    let nonce = t.nonces["alice.test.near"] + 1;
    let mut bad = sign(
        "alice.test.near",
        &stranger,
        nonce,
        "test.near",
        head,
        transfer.clone(),
    );
    let err = t.chain.process_transaction(bad.clone()).unwrap_err();
    assert!(matches!(
        err,
        InvalidTxError::InvalidAccessKeyError(InvalidAccessKeyError::AccessKeyNotFound { .. })
    ));
    // Right key, but the signature is over something else.
    bad.transaction = sign(
        "alice.test.near",
        &key("alice.test.near"),
        nonce,
        "test.near",
        head,
        transfer.clone(),
    )
    .transaction;
    bad.init();
    assert_eq!(
        t.chain.process_transaction(bad).unwrap_err(),
        InvalidTxError::InvalidSignature
    );
    // A used nonce.
    t.tx("alice.test.near", "test.near", transfer.clone())
        .unwrap();
    let used = t.nonces["alice.test.near"];
    let replay = sign(
        "alice.test.near",
        &key("alice.test.near"),
        used,
        "test.near",
        head,
        vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(2),
        })],
    );
    assert!(matches!(
        t.chain.process_transaction(replay).unwrap_err(),
        InvalidTxError::InvalidNonce { .. }
    ));
    // More than the balance.
    let err = t
        .tx(
            "alice.test.near",
            "test.near",
            vec![Action::Transfer(TransferAction {
                deposit: Balance::from_yoctonear(100 * NEAR),
            })],
        )
        .unwrap_err();
    assert!(matches!(err, InvalidTxError::NotEnoughBalance { .. }));
    // Only the one valid transfer moved money.
    let after = t.balance("alice.test.near");
    assert!(
        after < before && before - after < NEAR / 100,
        "one tiny transfer and its fees: {before} -> {after}"
    );
}

#[test]
fn a_panicking_call_keeps_no_writes_and_refunds_the_deposit() {
    let mut t = Tester::new();
    t.create("c.test.near", 10 * NEAR);
    t.create("alice.test.near", 10 * NEAR);
    t.deploy("c.test.near");
    let out = t.call("alice.test.near", "c.test.near", "set", b"v1", 0);
    assert_success(&out);
    assert_eq!(
        out.receipts_outcome[0].outcome.logs,
        vec!["hello".to_string()]
    );
    assert_eq!(t.view("c.test.near", "get"), b"v1");

    let alice = t.balance("alice.test.near");
    let contract = t.balance("c.test.near");
    let out = t.call("alice.test.near", "c.test.near", "set_then_fail", b"", NEAR);
    match action_error(&out) {
        ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(msg)) => {
            assert_eq!(msg, "Smart contract panicked: boom")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        t.view("c.test.near", "get"),
        b"v1",
        "the write before the panic is gone"
    );
    assert_eq!(
        t.balance("alice.test.near"),
        alice - burnt(&out),
        "deposit and unused gas come back"
    );
    assert_eq!(t.balance("c.test.near"), contract);
}

#[test]
fn callbacks_see_the_promise_result_on_success_and_on_failure() {
    let mut t = Tester::new();
    t.create("a.test.near", 10 * NEAR);
    t.create("b.test.near", 10 * NEAR);
    t.deploy("a.test.near");
    t.deploy("b.test.near");
    assert_success(&t.call("b.test.near", "b.test.near", "set", b"42", 0));

    let out = t.call("a.test.near", "a.test.near", "call_get", b"b.test.near", 0);
    assert_eq!(
        out.status,
        FinalExecutionStatus::SuccessValue(b"42".to_vec())
    );
    assert_eq!(
        out.receipts_outcome.len(),
        3,
        "call, cross-contract get, callback"
    );
    assert_eq!(
        out.receipts_outcome[1].outcome.executor_id,
        id("b.test.near")
    );
    assert_eq!(
        t.view("a.test.near", "get"),
        b"",
        "nothing stored under k on a"
    );

    let out = t.call("a.test.near", "a.test.near", "call_fail", b"b.test.near", 0);
    assert_eq!(
        out.status,
        FinalExecutionStatus::SuccessValue(b"failed".to_vec())
    );
    assert!(matches!(
        out.receipts_outcome[1].outcome.status,
        ExecutionStatusView::Failure(_)
    ));
}

#[test]
fn storage_must_be_paid_for_or_the_receipt_fails() {
    let mut t = Tester::new();
    t.create("poor.test.near", NEAR / 2);
    t.deploy("poor.test.near");
    // 100 kB needs 1 NEAR of balance at 10^19 yocto per byte.
    let big = vec![7u8; 100_000];
    let out = t.call("poor.test.near", "poor.test.near", "set", &big, 0);
    assert!(matches!(
        action_error(&out),
        ActionErrorKind::LackBalanceForState { .. }
    ));
    assert_eq!(t.view("poor.test.near", "get"), b"");
    let out = t.call("poor.test.near", "poor.test.near", "set", &big[..1000], 0);
    assert_success(&out);
    assert_eq!(t.view("poor.test.near", "get").len(), 1000);
}

#[test]
fn contracts_send_near_and_a_failed_transfer_comes_back_to_the_contract() {
    let mut t = Tester::new();
    t.create("c.test.near", 10 * NEAR);
    t.create("bob.test.near", NEAR);
    t.deploy("c.test.near");
    let before = t.balance("c.test.near");
    let out = t.call(
        "test.near",
        "c.test.near",
        "send",
        b"bob.test.near",
        2 * NEAR,
    );
    assert_success(&out);
    assert_eq!(t.balance("bob.test.near"), 3 * NEAR);
    assert_eq!(
        t.balance("c.test.near"),
        before,
        "the deposit passed straight through"
    );

    let before = t.balance("c.test.near");
    let out = t.call(
        "test.near",
        "c.test.near",
        "send",
        b"nobody.test.near",
        2 * NEAR,
    );
    assert!(
        out.receipts_outcome
            .iter()
            .any(|o| matches!(o.outcome.status, ExecutionStatusView::Failure(_)))
    );
    // The deposit stays with the contract: its outgoing transfer failed and was refunded to it.
    assert_eq!(t.balance("c.test.near"), before + 2 * NEAR);
}

#[test]
fn deleting_an_account_pays_its_balance_to_the_beneficiary() {
    let mut t = Tester::new();
    t.create("gone.test.near", 5 * NEAR);
    t.create("heir.test.near", NEAR);
    let out = t
        .tx(
            "gone.test.near",
            "gone.test.near",
            vec![Action::DeleteAccount(DeleteAccountAction {
                beneficiary_id: id("heir.test.near"),
            })],
        )
        .unwrap();
    assert_success(&out);
    assert!(t.chain.view_account(&id("gone.test.near")).is_none());
    let tx_fee = out.transaction_outcome.outcome.tokens_burnt.as_yoctonear();
    let first = out.receipts_outcome[0].outcome.tokens_burnt.as_yoctonear();
    assert_eq!(
        t.balance("heir.test.near"),
        NEAR + 5 * NEAR - tx_fee - first
    );
}

#[test]
fn function_call_keys_are_limited_to_their_contract_and_methods() {
    let mut t = Tester::new();
    t.create("c.test.near", 10 * NEAR);
    t.create("alice.test.near", 10 * NEAR);
    t.deploy("c.test.near");
    let limited = key("limited");
    let out = t
        .tx(
            "alice.test.near",
            "alice.test.near",
            vec![Action::AddKey(Box::new(AddKeyAction {
                public_key: limited.public_key(),
                access_key: AccessKey {
                    nonce: 0,
                    permission: AccessKeyPermission::FunctionCall(FunctionCallPermission {
                        allowance: Some(Balance::from_yoctonear(NEAR)),
                        receiver_id: "c.test.near".into(),
                        method_names: vec!["set".into()],
                    }),
                },
            }))],
        )
        .unwrap();
    assert_success(&out);
    let nonce = t
        .chain
        .view_access_key(&id("alice.test.near"), &limited.public_key())
        .unwrap()
        .nonce;
    let head = t.chain.head().hash;
    let get = sign(
        "alice.test.near",
        &limited,
        nonce + 1,
        "c.test.near",
        head,
        vec![call_action("get", b"", 0)],
    );
    assert!(matches!(
        t.chain.process_transaction(get).unwrap_err(),
        InvalidTxError::InvalidAccessKeyError(InvalidAccessKeyError::MethodNameMismatch { .. })
    ));
    let pay = sign(
        "alice.test.near",
        &limited,
        nonce + 1,
        "c.test.near",
        head,
        vec![Action::Transfer(TransferAction {
            deposit: Balance::from_yoctonear(1),
        })],
    );
    assert!(matches!(
        t.chain.process_transaction(pay).unwrap_err(),
        InvalidTxError::InvalidAccessKeyError(InvalidAccessKeyError::RequiresFullAccess)
    ));
    let set = sign(
        "alice.test.near",
        &limited,
        nonce + 1,
        "c.test.near",
        head,
        vec![call_action("set", b"via key", 0)],
    );
    assert_success(&t.chain.process_transaction(set).unwrap());
    assert_eq!(t.view("c.test.near", "get"), b"via key");
    let left = t
        .chain
        .view_access_key(&id("alice.test.near"), &limited.public_key())
        .unwrap();
    match left.permission {
        near_primitives::views::AccessKeyPermissionView::FunctionCall { allowance, .. } => {
            assert!(
                allowance.unwrap().as_yoctonear() < NEAR,
                "gas is paid from the allowance"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_chain_with_a_home_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ChainConfig {
        chain_id: "localnet".into(),
        root: id("test.near"),
        root_key: key("test.near").public_key(),
        root_balance: 1_000_000 * NEAR,
        home: Some(dir.path().to_path_buf()),
    };
    let mut chain = Chain::open(config.clone()).unwrap();
    let tx = sign(
        "test.near",
        &key("test.near"),
        1,
        "kept.test.near",
        chain.head().hash,
        vec![
            Action::CreateAccount(CreateAccountAction {}),
            Action::Transfer(TransferAction {
                deposit: Balance::from_yoctonear(NEAR),
            }),
            Action::DeployContract(DeployContractAction {
                code: test_contract(),
            }),
        ],
    );
    let hash = tx.get_hash();
    chain.process_transaction(tx).unwrap();
    let height = chain.head().height;
    drop(chain);

    let chain = Chain::open(config).unwrap();
    assert_eq!(chain.head().height, height);
    assert_eq!(
        chain
            .view_account(&id("kept.test.near"))
            .unwrap()
            .amount
            .as_yoctonear(),
        NEAR
    );
    assert_eq!(
        chain.view_code(&id("kept.test.near")).unwrap().code,
        test_contract()
    );
    assert!(
        chain.outcome(&hash).is_some(),
        "tx lookups work after a restart"
    );
    assert_eq!(
        chain
            .view_access_key(&id("test.near"), &key("test.near").public_key())
            .unwrap()
            .nonce,
        1
    );
}

#[test]
fn a_transfer_to_an_implicit_account_creates_it_with_the_key_its_name_spells() {
    let mut t = Tester::new();
    let sk = key("implicit owner");
    let near_crypto::PublicKey::ED25519(pk) = sk.public_key() else {
        unreachable!("ed25519 key")
    };
    let name: String = pk.0.iter().map(|b| format!("{b:02x}")).collect();
    let out = t
        .tx(
            "test.near",
            &name,
            vec![Action::Transfer(TransferAction {
                deposit: Balance::from_yoctonear(2 * NEAR),
            })],
        )
        .unwrap();
    assert_success(&out);
    assert_eq!(t.balance(&name), 2 * NEAR);
    // The owner of the key can now spend from it.
    let nonce = t
        .chain
        .view_access_key(&id(&name), &sk.public_key())
        .unwrap()
        .nonce;
    t.keys.insert(name.clone(), sk);
    t.nonces.insert(name.clone(), nonce);
    let out = t
        .tx(
            &name,
            "test.near",
            vec![Action::Transfer(TransferAction {
                deposit: Balance::from_yoctonear(NEAR),
            })],
        )
        .unwrap();
    assert_success(&out);
    assert_eq!(t.balance(&name), NEAR - burnt(&out));
}
