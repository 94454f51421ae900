//! Read-only views of the chain state and the sandbox's state patching.

use near_crypto::{PublicKey, PublicKeyHandle};
use near_primitives::account::{AccessKey, AccountContract};
use near_primitives::errors::FunctionCallError;
use near_primitives::state_record::StateRecord;
use near_primitives::types::AccountId;
use near_primitives::views::{
    AccessKeyInfoView, AccessKeyList, AccessKeyView, AccountView, CallResult, ContractCodeView,
    StateItem, ViewStateResult,
};

use crate::actions::BlockContext;
use crate::chain::Chain;
use crate::runtime::view_call;

/// Why a state patch was refused.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A record kind the local chain does not store (receipts, gas keys, ML-DSA keys).
    #[error("unsupported state record: {0}")]
    Unsupported(String),
    /// Data or code for an account that does not exist and is not created by the patch.
    #[error("account {0} does not exist")]
    MissingAccount(AccountId),
}

fn full_key(handle: &PublicKeyHandle) -> Option<PublicKey> {
    match handle {
        PublicKeyHandle::ED25519(k) => Some(PublicKey::ED25519(k.clone())),
        PublicKeyHandle::SECP256K1(k) => Some(PublicKey::SECP256K1(k.clone())),
        PublicKeyHandle::MlDsa65(_) => None,
    }
}

impl Chain {
    /// `view_account`.
    pub fn view_account(&self, id: &AccountId) -> Option<AccountView> {
        self.state.account(id).map(AccountView::from)
    }

    /// `view_access_key`.
    pub fn view_access_key(&self, id: &AccountId, pk: &PublicKey) -> Option<AccessKeyView> {
        self.state
            .access_key(id, pk)
            .cloned()
            .map(AccessKeyView::from)
    }

    /// `view_access_key_list`: all keys in one page (no `last_key`).
    pub fn view_access_key_list(&self, id: &AccountId) -> AccessKeyList {
        self.state
            .access_keys(id)
            .map(|(pk, ak)| AccessKeyInfoView::new(pk.clone(), AccessKeyView::from(ak.clone())))
            .collect()
    }

    /// `view_code`.
    pub fn view_code(&self, id: &AccountId) -> Option<ContractCodeView> {
        let code = self.state.account_code(id)?;
        Some(ContractCodeView {
            code: code.code().to_vec(),
            hash: *code.hash(),
        })
    }

    /// `view_state`: every key starting with `prefix`, sorted.
    pub fn view_state(&self, id: &AccountId, prefix: &[u8]) -> ViewStateResult {
        let values = self
            .state
            .storage(id)
            .into_iter()
            .flat_map(|s| s.range(prefix.to_vec()..))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| StateItem {
                key: k.clone().into(),
                value: v.clone().into(),
            })
            .collect();
        ViewStateResult {
            values,
            proof: Vec::new(),
            last_key: None,
        }
    }

    /// `call_function`: a read-only contract call at the head block.
    pub fn call_function(
        &self,
        id: &AccountId,
        method: &str,
        args: &[u8],
    ) -> Result<CallResult, FunctionCallError> {
        let head = self.head();
        let block = BlockContext {
            height: head.height,
            timestamp_ns: head.timestamp_ns,
            random_seed: head.hash.as_ref().to_vec(),
        };
        let (result, logs) = view_call(&self.vm, &self.state, id, method, args, &block)?;
        Ok(CallResult { result, logs })
    }

    /// `sandbox_patch_state`: writes records as given (idempotent; creates accounts).
    /// Validates every record first so a refused patch changes nothing.
    pub fn patch_state(&mut self, records: Vec<StateRecord>) -> Result<(), PatchError> {
        let mut state = self.state.clone();
        for record in records {
            match record {
                StateRecord::Account {
                    account_id,
                    account,
                } => state.set_account(account_id, account),
                StateRecord::AccessKey {
                    account_id,
                    public_key,
                    access_key,
                } => {
                    let pk = full_key(&public_key)
                        .ok_or_else(|| PatchError::Unsupported("ML-DSA key".into()))?;
                    state.set_access_key(&account_id, pk, AccessKey::clone(&access_key));
                }
                StateRecord::Data {
                    account_id,
                    data_key,
                    value,
                } => {
                    if state.account(&account_id).is_none() {
                        return Err(PatchError::MissingAccount(account_id));
                    }
                    state
                        .storage_mut(&account_id)
                        .insert(data_key.into(), value.into());
                }
                StateRecord::Contract { account_id, code } => {
                    let mut account = state
                        .account(&account_id)
                        .cloned()
                        .ok_or(PatchError::MissingAccount(account_id.clone()))?;
                    let hash = state.put_code(code);
                    let _ = account.set_contract(AccountContract::Local(hash));
                    state.set_account(account_id, account);
                }
                other => return Err(PatchError::Unsupported(format!("{other}"))),
            }
        }
        self.state = state;
        if let Err(e) = self.persist() {
            tracing::error!("could not persist chain state: {e}");
        }
        Ok(())
    }
}
