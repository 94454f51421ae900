//! Receipts as the runtime routes them: an action receipt waits for its input data
//! (the results of the promises it depends on) and sends its own result to the
//! data receivers that depend on it.

use near_crypto::PublicKey;
use near_primitives::action::Action;
use near_primitives::hash::{CryptoHash, hash};
use near_primitives::types::AccountId;

/// Where the result of a receipt goes: the receipt on `receiver_id` waiting for `data_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataReceiver {
    /// The id the waiting receipt lists among its inputs.
    pub data_id: CryptoHash,
    /// The account of the waiting receipt.
    pub receiver_id: AccountId,
}

/// An action receipt: actions to apply on `receiver_id` on behalf of `predecessor_id`.
#[derive(Clone, Debug)]
pub struct ActionReceipt {
    /// Unique id (hash), reported in outcomes.
    pub id: CryptoHash,
    /// The account that created the receipt.
    pub predecessor_id: AccountId,
    /// The account the actions apply to.
    pub receiver_id: AccountId,
    /// The transaction signer (gets gas refunds).
    pub signer_id: AccountId,
    /// The key that signed the transaction (visible to contracts).
    pub signer_public_key: PublicKey,
    /// Who gets deposits back if the receipt fails.
    pub refund_to: AccountId,
    /// Results this receipt waits for, in order (promise results).
    pub input_data_ids: Vec<CryptoHash>,
    /// Receipts waiting for this receipt's result.
    pub output_data_receivers: Vec<DataReceiver>,
    /// The actions, applied atomically.
    pub actions: Vec<Action>,
}

/// Derives a child id from a parent id and an index, like nearcore derives receipt ids.
pub fn child_id(parent: &CryptoHash, index: u64) -> CryptoHash {
    let mut bytes = parent.as_ref().to_vec();
    bytes.extend_from_slice(&index.to_le_bytes());
    hash(&bytes)
}

/// The account that stands for the protocol itself (refunds come from it).
pub fn system_account() -> AccountId {
    "system".parse().expect("valid account id")
}
