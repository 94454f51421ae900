//! The `External` the VM calls back into: one account's storage and the receipts
//! a contract creates while it runs.
//!
//! Storage writes go to a private copy of the account's storage; the runtime keeps
//! the copy only if the whole receipt succeeds.

use near_crypto::PublicKey;
use near_primitives::account::{AccessKey, AccessKeyPermission, FunctionCallPermission};
use near_primitives::action::{
    Action, AddKeyAction, CreateAccountAction, DeleteAccountAction, DeleteKeyAction,
    DeployContractAction, FunctionCallAction, StakeAction, TransferAction,
};
use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, Balance, Gas, GasWeight, Nonce, NonceIndex};
use near_primitives_core::hash::YieldId;
use near_primitives_core::universal_state_init::{
    DecodeMode, RawStateInit, StateInitError, UniversalStateInitCounts,
};
use near_vm_runner::logic::errors::HostError;
use near_vm_runner::logic::types::{
    ActionIndex, GlobalContractDeployMode, GlobalContractIdentifier, ReceiptIndex,
};
use near_vm_runner::logic::{External, StorageAccessTracker, VMLogicError, ValuePtr};

use crate::receipt::{DataReceiver, child_id};
use crate::state::Storage;

/// A receipt created by a running contract, not yet routed.
#[derive(Clone, Debug)]
pub struct NewReceipt {
    /// The account the receipt goes to.
    pub receiver_id: AccountId,
    /// Actions in the order the contract appended them.
    pub actions: Vec<Action>,
    /// Gas weights of the function calls (index into `actions`, weight).
    pub weights: Vec<(usize, u64)>,
    /// Results this receipt waits for.
    pub input_data_ids: Vec<CryptoHash>,
    /// Receipts waiting for this one.
    pub output_data_receivers: Vec<DataReceiver>,
    /// Overrides who gets the deposits back on failure.
    pub refund_to: Option<AccountId>,
}

/// The VM's window onto the chain while one function call runs.
pub struct RuntimeExt<'a> {
    storage: &'a mut Storage,
    receipt_id: CryptoHash,
    data_count: u64,
    chain_id: String,
    /// Receipts created by the contract, by receipt index.
    pub receipts: Vec<NewReceipt>,
    /// Set when the contract used a host feature this chain does not implement.
    pub unsupported: Option<&'static str>,
}

impl<'a> RuntimeExt<'a> {
    /// An `External` over `storage`, deriving data ids from `receipt_id`.
    pub fn new(storage: &'a mut Storage, receipt_id: CryptoHash, chain_id: String) -> Self {
        Self {
            storage,
            receipt_id,
            data_count: 0,
            chain_id,
            receipts: Vec::new(),
            unsupported: None,
        }
    }

    fn push(&mut self, index: ReceiptIndex, action: Action) {
        if let Some(r) = self.receipts.get_mut(index as usize) {
            r.actions.push(action);
        }
    }
}

/// A stored value handed to the VM.
struct Value(Vec<u8>);

impl ValuePtr for Value {
    fn len(&self) -> u32 {
        self.0.len() as u32
    }
    fn deref(&self, _tracker: &mut dyn StorageAccessTracker) -> Result<Vec<u8>, VMLogicError> {
        Ok(self.0.clone())
    }
}

fn unsupported(what: &str) -> VMLogicError {
    VMLogicError::HostError(HostError::Deprecated {
        method_name: format!("{what} (not supported by the local chain)"),
    })
}

impl External for RuntimeExt<'_> {
    fn storage_set(
        &mut self,
        _tracker: &mut dyn StorageAccessTracker,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, VMLogicError> {
        Ok(self.storage.insert(key.to_vec(), value.to_vec()))
    }

    fn storage_get<'b>(
        &'b self,
        _tracker: &mut dyn StorageAccessTracker,
        key: &[u8],
    ) -> Result<Option<Box<dyn ValuePtr + 'b>>, VMLogicError> {
        Ok(self
            .storage
            .get(key)
            .map(|v| Box::new(Value(v.clone())) as Box<dyn ValuePtr>))
    }

    fn storage_remove(
        &mut self,
        _tracker: &mut dyn StorageAccessTracker,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, VMLogicError> {
        Ok(self.storage.remove(key))
    }

    fn storage_has_key(
        &mut self,
        _tracker: &mut dyn StorageAccessTracker,
        key: &[u8],
    ) -> Result<bool, VMLogicError> {
        Ok(self.storage.contains_key(key))
    }

    fn generate_data_id(&mut self) -> CryptoHash {
        self.data_count += 1;
        // Offset so data ids never equal the ids of the receipts created here.
        child_id(&self.receipt_id, (1 << 32) + self.data_count)
    }

    fn get_recorded_storage_size(&self) -> usize {
        0
    }

    fn storage_proof_size_before_receipt(&self) -> usize {
        0
    }

    fn validator_stake(&self, _account_id: &AccountId) -> Result<Option<Balance>, VMLogicError> {
        Ok(None)
    }

    fn validator_total_stake(&self) -> Result<Balance, VMLogicError> {
        Ok(Balance::ZERO)
    }

    fn chain_id(&self) -> String {
        self.chain_id.clone()
    }

    fn create_action_receipt(
        &mut self,
        receipt_indices: Vec<ReceiptIndex>,
        receiver_id: AccountId,
    ) -> Result<ReceiptIndex, VMLogicError> {
        let mut input_data_ids = Vec::with_capacity(receipt_indices.len());
        for index in receipt_indices {
            let data_id = self.generate_data_id();
            let dep = self
                .receipts
                .get_mut(index as usize)
                .ok_or(VMLogicError::HostError(HostError::InvalidReceiptIndex {
                    receipt_index: index,
                }))?;
            dep.output_data_receivers.push(DataReceiver {
                data_id,
                receiver_id: receiver_id.clone(),
            });
            input_data_ids.push(data_id);
        }
        self.receipts.push(NewReceipt {
            receiver_id,
            actions: Vec::new(),
            weights: Vec::new(),
            input_data_ids,
            output_data_receivers: Vec::new(),
            refund_to: None,
        });
        Ok(self.receipts.len() as u64 - 1)
    }

    fn create_promise_yield_receipt(
        &mut self,
        _receiver_id: AccountId,
    ) -> Result<(ReceiptIndex, CryptoHash), VMLogicError> {
        Err(unsupported("promise_yield_create"))
    }

    fn create_promise_yield_receipt_with_id(
        &mut self,
        _receiver_id: AccountId,
        _user_yield_id: YieldId,
    ) -> Result<Option<(ReceiptIndex, CryptoHash)>, VMLogicError> {
        Err(unsupported("promise_yield_create"))
    }

    fn submit_promise_resume_data(
        &mut self,
        _data_id: CryptoHash,
        _data: Vec<u8>,
    ) -> Result<bool, VMLogicError> {
        Err(unsupported("promise_yield_resume"))
    }

    fn submit_promise_resume_data_with_yield_id(
        &mut self,
        _user_yield_id: YieldId,
        _data: Vec<u8>,
    ) -> Result<bool, VMLogicError> {
        Err(unsupported("promise_yield_resume"))
    }

    fn append_action_create_account(&mut self, receipt_index: ReceiptIndex) {
        self.push(receipt_index, Action::CreateAccount(CreateAccountAction {}));
    }

    fn append_action_deploy_contract(&mut self, receipt_index: ReceiptIndex, code: Vec<u8>) {
        self.push(
            receipt_index,
            Action::DeployContract(DeployContractAction { code }),
        );
    }

    fn append_action_deploy_global_contract(
        &mut self,
        _receipt_index: ReceiptIndex,
        _code: Vec<u8>,
        _mode: GlobalContractDeployMode,
    ) {
        self.unsupported = Some("global contracts");
    }

    fn append_action_use_global_contract(
        &mut self,
        _receipt_index: ReceiptIndex,
        _contract_id: GlobalContractIdentifier,
    ) {
        self.unsupported = Some("global contracts");
    }

    fn append_action_deterministic_state_init(
        &mut self,
        _receipt_index: ReceiptIndex,
        _contract_id: GlobalContractIdentifier,
        _amount: Balance,
    ) -> ActionIndex {
        self.unsupported = Some("deterministic state init");
        0
    }

    fn set_deterministic_state_init_data_entry(
        &mut self,
        _receipt_index: ReceiptIndex,
        _action_index: ActionIndex,
        _key: Vec<u8>,
        _value: Vec<u8>,
    ) -> Result<(), VMLogicError> {
        Err(unsupported("deterministic state init"))
    }

    fn check_state_init(&self, _state_init: &RawStateInit) -> Result<(), StateInitError> {
        Err(StateInitError::Malformed)
    }

    fn state_init_send_counts(
        &self,
        state_init: &RawStateInit,
        _mode: DecodeMode,
    ) -> UniversalStateInitCounts {
        UniversalStateInitCounts {
            num_bytes: state_init.0.len() as u64,
            num_entries: 0,
            num_keys: 0,
        }
    }

    fn append_action_universal_state_init(
        &mut self,
        _receipt_index: ReceiptIndex,
        _state_init: RawStateInit,
        _amount: Balance,
    ) {
        self.unsupported = Some("universal state init");
    }

    fn append_action_function_call_weight(
        &mut self,
        receipt_index: ReceiptIndex,
        method_name: Vec<u8>,
        args: Vec<u8>,
        attached_deposit: Balance,
        prepaid_gas: Gas,
        gas_weight: GasWeight,
    ) -> Result<(), VMLogicError> {
        let method_name = String::from_utf8(method_name)
            .map_err(|_| VMLogicError::HostError(HostError::InvalidMethodName))?;
        let action = Action::FunctionCall(Box::new(FunctionCallAction {
            method_name,
            args,
            gas: prepaid_gas,
            deposit: attached_deposit,
        }));
        if let Some(r) = self.receipts.get_mut(receipt_index as usize) {
            if gas_weight.0 > 0 {
                r.weights.push((r.actions.len(), gas_weight.0));
            }
            r.actions.push(action);
        }
        Ok(())
    }

    fn append_action_transfer(&mut self, receipt_index: ReceiptIndex, deposit: Balance) {
        self.push(receipt_index, Action::Transfer(TransferAction { deposit }));
    }

    fn append_action_transfer_to_gas_key(
        &mut self,
        _receipt_index: ReceiptIndex,
        _public_key: PublicKey,
        _deposit: Balance,
    ) {
        self.unsupported = Some("gas keys");
    }

    fn append_action_add_gas_key_with_full_access(
        &mut self,
        _receipt_index: ReceiptIndex,
        _public_key: PublicKey,
        _num_nonces: NonceIndex,
    ) {
        self.unsupported = Some("gas keys");
    }

    fn append_action_add_gas_key_with_function_call(
        &mut self,
        _receipt_index: ReceiptIndex,
        _public_key: PublicKey,
        _num_nonces: NonceIndex,
        _allowance: Option<Balance>,
        _receiver_id: AccountId,
        _method_names: Vec<Vec<u8>>,
    ) -> Result<(), VMLogicError> {
        Err(unsupported("gas keys"))
    }

    fn append_action_stake(
        &mut self,
        receipt_index: ReceiptIndex,
        stake: Balance,
        public_key: PublicKey,
    ) {
        self.push(
            receipt_index,
            Action::Stake(Box::new(StakeAction { stake, public_key })),
        );
    }

    fn append_action_add_key_with_full_access(
        &mut self,
        receipt_index: ReceiptIndex,
        public_key: PublicKey,
        nonce: Nonce,
    ) {
        let access_key = AccessKey {
            nonce,
            permission: AccessKeyPermission::FullAccess,
        };
        self.push(
            receipt_index,
            Action::AddKey(Box::new(AddKeyAction {
                public_key,
                access_key,
            })),
        );
    }

    fn append_action_add_key_with_function_call(
        &mut self,
        receipt_index: ReceiptIndex,
        public_key: PublicKey,
        nonce: Nonce,
        allowance: Option<Balance>,
        receiver_id: AccountId,
        method_names: Vec<Vec<u8>>,
    ) -> Result<(), VMLogicError> {
        let method_names = method_names
            .into_iter()
            .map(|m| {
                String::from_utf8(m)
                    .map_err(|_| VMLogicError::HostError(HostError::InvalidMethodName))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let permission = AccessKeyPermission::FunctionCall(FunctionCallPermission {
            allowance,
            receiver_id: receiver_id.into(),
            method_names,
        });
        let access_key = AccessKey { nonce, permission };
        self.push(
            receipt_index,
            Action::AddKey(Box::new(AddKeyAction {
                public_key,
                access_key,
            })),
        );
        Ok(())
    }

    fn append_action_delete_key(&mut self, receipt_index: ReceiptIndex, public_key: PublicKey) {
        self.push(
            receipt_index,
            Action::DeleteKey(Box::new(DeleteKeyAction { public_key })),
        );
    }

    fn append_action_delete_account(
        &mut self,
        receipt_index: ReceiptIndex,
        beneficiary_id: AccountId,
    ) {
        self.push(
            receipt_index,
            Action::DeleteAccount(DeleteAccountAction { beneficiary_id }),
        );
    }

    fn get_receipt_receiver(&self, receipt_index: ReceiptIndex) -> &AccountId {
        &self.receipts[receipt_index as usize].receiver_id
    }

    fn set_refund_to(&mut self, receipt_index: ReceiptIndex, refund_to: AccountId) {
        if let Some(r) = self.receipts.get_mut(receipt_index as usize) {
            r.refund_to = Some(refund_to);
        }
    }

    fn post_quantum_keys_enabled(&self) -> bool {
        false
    }
}
