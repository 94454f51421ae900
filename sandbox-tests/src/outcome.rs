//! Outcome views in neard's shapes: one per transaction and receipt, and the
//! final status a client reads.

use near_primitives::hash::CryptoHash;
use near_primitives::types::{AccountId, Balance, Gas};
use near_primitives::views::{
    ExecutionMetadataView, ExecutionOutcomeView, ExecutionOutcomeWithIdView, ExecutionStatusView,
    FinalExecutionStatus,
};

use crate::chain::GAS_PRICE;

/// The outcome of one transaction or receipt; tokens burnt at the chain's gas price.
pub fn outcome_view(
    id: CryptoHash,
    block_hash: CryptoHash,
    executor_id: AccountId,
    logs: Vec<String>,
    receipt_ids: Vec<CryptoHash>,
    gas_burnt: Gas,
    status: ExecutionStatusView,
) -> ExecutionOutcomeWithIdView {
    let tokens_burnt = Balance::from_yoctonear(gas_burnt.as_gas() as u128 * GAS_PRICE);
    ExecutionOutcomeWithIdView {
        proof: Vec::new(),
        block_hash,
        id,
        outcome: ExecutionOutcomeView {
            logs,
            receipt_ids,
            gas_burnt,
            tokens_burnt,
            executor_id,
            status,
            metadata: ExecutionMetadataView::default(),
        },
    }
}

/// Follows the chain of `SuccessReceiptId`s from the first receipt, like nearcore.
pub fn final_status(
    first: CryptoHash,
    outcomes: &[ExecutionOutcomeWithIdView],
) -> FinalExecutionStatus {
    let mut looking_for = first;
    for o in outcomes {
        if o.id != looking_for {
            continue;
        }
        match &o.outcome.status {
            ExecutionStatusView::SuccessReceiptId(next) => looking_for = *next,
            ExecutionStatusView::SuccessValue(v) => {
                return FinalExecutionStatus::SuccessValue(v.clone());
            }
            ExecutionStatusView::Failure(e) => return FinalExecutionStatus::Failure(e.clone()),
            ExecutionStatusView::Unknown => return FinalExecutionStatus::Started,
        }
    }
    FinalExecutionStatus::Started
}
