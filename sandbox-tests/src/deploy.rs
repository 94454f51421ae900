//! Contracts the local chain can carry from its start: `crowdtrain-localnet --factory
//! WASM` makes `factory.test.near` with the crowdtrain factory, so a person can create
//! a run with `crowdtrain create-run` at once. It is one ordinary transaction signed by
//! the root key (create, fund, key, deploy, `new`), charged like any other.

use crate::node::LocalNet;
use near_crypto::SecretKey;
use near_primitives::account::AccessKey;
use near_primitives::action::{
    Action, AddKeyAction, CreateAccountAction, DeployContractAction, FunctionCallAction,
    TransferAction,
};
use near_primitives::gas::Gas;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::{AccountId, Balance};

/// Why a contract could not be put on the chain.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// `<name>.<root>` is not a valid account id.
    #[error("{0:?} is not a valid account name under the root account")]
    Name(String),
    /// The chain refused the transaction.
    #[error("the chain refused the transaction: {0}")]
    Refused(String),
    /// The transaction ran and failed (the wasm, or its init method).
    #[error("deploying {account} failed: {reason}")]
    Failed {
        /// The account.
        account: AccountId,
        /// The chain's outcome.
        reason: String,
    },
}

impl LocalNet {
    /// Creates `<name>.<root>` holding `balance` yoctoNEAR and the root's key, deploys
    /// `wasm` and calls `init` (no arguments). An account that already has code is left
    /// as it is (a restarted chain keeps its contracts).
    pub fn deploy_contract(
        &self,
        name: &str,
        wasm: &[u8],
        init: &str,
        balance: u128,
    ) -> Result<AccountId, DeployError> {
        let root = self.root_account().clone();
        let account: AccountId = format!("{name}.{root}")
            .parse()
            .map_err(|_| DeployError::Name(name.to_string()))?;
        let key: &SecretKey = self.root_secret_key();
        let mut chain = self.chain().lock().expect("chain lock");
        if chain.view_code(&account).is_some() {
            return Ok(account);
        }
        let nonce = chain
            .view_access_key(&root, &key.public_key())
            .map_or(0, |k| k.nonce);
        let tx = Transaction::V0(TransactionV0 {
            signer_id: root,
            public_key: key.public_key(),
            nonce: nonce + 1,
            receiver_id: account.clone(),
            block_hash: chain.head().hash,
            actions: vec![
                Action::CreateAccount(CreateAccountAction {}),
                Action::Transfer(TransferAction {
                    deposit: Balance::from_yoctonear(balance),
                }),
                Action::AddKey(Box::new(AddKeyAction {
                    public_key: key.public_key(),
                    access_key: AccessKey::full_access(),
                })),
                Action::DeployContract(DeployContractAction {
                    code: wasm.to_vec(),
                }),
                Action::FunctionCall(Box::new(FunctionCallAction {
                    method_name: init.to_string(),
                    args: b"{}".to_vec(),
                    gas: Gas::from_teragas(100),
                    deposit: Balance::from_yoctonear(0),
                })),
            ],
        });
        let (hash, _) = tx.get_hash_and_size();
        let signed = SignedTransaction::new(key.sign(hash.as_ref()), tx);
        let outcome = chain
            .process_transaction(signed)
            .map_err(|e| DeployError::Refused(format!("{e:?}")))?;
        match outcome.status {
            near_primitives::views::FinalExecutionStatus::SuccessValue(_) => Ok(account),
            other => Err(DeployError::Failed {
                account,
                reason: format!("{other:?}"),
            }),
        }
    }
}
