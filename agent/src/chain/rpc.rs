//! NEAR JSON-RPC through near-jsonrpc-client: views, access keys, `send_tx`
//! (waiting for finality) and `tx` status, with every failure sorted into what the
//! caller should do next: wait and retry, re-sign, or give up with a message.

use super::{ChainError, Result};
use near_crypto::PublicKey;
use near_jsonrpc_client::errors::{JsonRpcError, JsonRpcServerError};
use near_jsonrpc_client::{JsonRpcClient, methods};
use near_jsonrpc_primitives::types::query::{QueryResponseKind, RpcQueryError};
use near_jsonrpc_primitives::types::transactions::{RpcTransactionError, TransactionInfo};
use near_primitives::errors::{InvalidTxError, TxExecutionError};
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::{AccountId, BlockReference, Finality, FunctionArgs};
use near_primitives::views::{
    FinalExecutionOutcomeView, FinalExecutionOutcomeViewEnum, QueryRequest, TxExecutionStatus,
};
use std::time::Duration;

/// What a failed request means for the caller.
#[derive(Debug)]
pub enum Failure {
    /// The endpoint did not answer, or answered "try later": wait and retry.
    Transient(String),
    /// The transaction's block hash is too old: check it did not land, then re-sign.
    Expired,
    /// The nonce was already used: the transaction may have landed; check, then re-sign.
    Nonce,
    /// The chain refused the transaction for good (balance, key, size...).
    Rejected(String),
    /// Anything else, already phrased for a person.
    Fatal(ChainError),
}

/// The outcome of a final transaction: its hash, what it returned or the
/// contract's panic message, the logs and the gas burnt by it and all its receipts.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The transaction hash.
    pub hash: CryptoHash,
    /// The return value (JSON bytes) or the failure message.
    pub result: std::result::Result<Vec<u8>, String>,
    /// Logs of every receipt, in order (NEP-297 events start with `EVENT_JSON:`).
    pub logs: Vec<String>,
    /// Gas burnt by the transaction and all its receipts.
    pub gas_burnt: u64,
    /// yoctoNEAR burnt for that gas.
    pub tokens_burnt: u128,
}

impl Outcome {
    fn from_view(view: FinalExecutionOutcomeView) -> Self {
        let all = std::iter::once(&view.transaction_outcome).chain(view.receipts_outcome.iter());
        let (mut gas, mut tokens, mut logs) = (0u64, 0u128, Vec::new());
        for o in all {
            gas += o.outcome.gas_burnt.as_gas();
            tokens += o.outcome.tokens_burnt.as_yoctonear();
            logs.extend(o.outcome.logs.iter().cloned());
        }
        let result = match view.status {
            near_primitives::views::FinalExecutionStatus::SuccessValue(v) => Ok(v),
            near_primitives::views::FinalExecutionStatus::Failure(e) => Err(failure_message(&e)),
            other => Err(format!("not final: {other:?}")),
        };
        Self {
            hash: view.transaction_outcome.id,
            result,
            logs,
            gas_burnt: gas,
            tokens_burnt: tokens,
        }
    }
}

/// The contract's own words for a failed call ("Smart contract panicked: ..." → the
/// message after the colon), or the chain's description of other failures.
pub fn failure_message(e: &TxExecutionError) -> String {
    use near_primitives::errors::{ActionErrorKind, FunctionCallError};
    if let TxExecutionError::ActionError(a) = e
        && let ActionErrorKind::FunctionCallError(FunctionCallError::ExecutionError(msg)) = &a.kind
    {
        return msg
            .strip_prefix("Smart contract panicked: ")
            .unwrap_or(msg)
            .to_string();
    }
    e.to_string()
}

/// A JSON-RPC endpoint.
#[derive(Clone)]
pub struct Rpc {
    client: JsonRpcClient,
    endpoint: String,
}

fn transport<E: std::fmt::Debug>(e: &JsonRpcError<E>) -> Option<String> {
    match e {
        JsonRpcError::TransportError(t) => Some(format!("{t}")),
        JsonRpcError::ServerError(JsonRpcServerError::ResponseStatusError(s)) => {
            Some(format!("{s}"))
        }
        JsonRpcError::ServerError(JsonRpcServerError::InternalError { info }) => {
            Some(format!("internal error: {info:?}"))
        }
        _ => None,
    }
}

impl Rpc {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:3030`).
    pub fn new(endpoint: &str) -> Self {
        Self {
            client: JsonRpcClient::connect(endpoint),
            endpoint: endpoint.to_string(),
        }
    }

    /// The URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn query_failure(&self, e: JsonRpcError<RpcQueryError>, what: &str) -> Failure {
        if let Some(reason) = transport(&e) {
            return Failure::Transient(reason);
        }
        match e.handler_error() {
            Some(RpcQueryError::UnknownAccount {
                requested_account_id,
                ..
            }) => Failure::Fatal(ChainError::UnknownAccount(requested_account_id.to_string())),
            Some(RpcQueryError::NoContractCode {
                contract_account_id,
                ..
            }) => Failure::Fatal(ChainError::Server(format!(
                "no contract is deployed at {contract_account_id}: check the run id (`run` in the config)"
            ))),
            Some(RpcQueryError::ContractExecutionError { error, .. }) => {
                let msg = match error {
                    near_primitives::errors::FunctionCallError::ExecutionError(m) => m
                        .strip_prefix("Smart contract panicked: ")
                        .unwrap_or(m)
                        .to_string(),
                    other => format!("{other:?}"),
                };
                Failure::Fatal(ChainError::Server(format!("{what} failed: {msg}")))
            }
            Some(RpcQueryError::NoSyncedBlocks) | Some(RpcQueryError::InternalError { .. }) => {
                Failure::Transient(format!("{e}"))
            }
            _ => Failure::Fatal(ChainError::Server(format!("{what}: {e}"))),
        }
    }

    /// Calls view `method` of `contract` with JSON `args` on the final state.
    pub async fn view(
        &self,
        contract: &AccountId,
        method: &str,
        args: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::CallFunction {
                account_id: contract.clone(),
                method_name: method.to_string(),
                args: FunctionArgs::from(args),
            },
        };
        match self.client.call(req).await {
            Ok(resp) => match resp.kind {
                QueryResponseKind::CallResult(r) => Ok(r.result),
                other => Err(Failure::Fatal(ChainError::Server(format!(
                    "{method}: unexpected answer {other:?}"
                )))),
            },
            Err(e) => Err(self.query_failure(e, &format!("view {method} on {contract}"))),
        }
    }

    /// The account's liquid balance in yoctoNEAR.
    pub async fn balance(&self, account: &AccountId) -> std::result::Result<u128, Failure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccount {
                account_id: account.clone(),
            },
        };
        match self.client.call(req).await {
            Ok(resp) => match resp.kind {
                QueryResponseKind::ViewAccount(a) => Ok(a.amount.as_yoctonear()),
                other => Err(Failure::Fatal(ChainError::Server(format!(
                    "view_account: unexpected answer {other:?}"
                )))),
            },
            Err(e) => Err(self.query_failure(e, &format!("view_account {account}"))),
        }
    }

    /// The access key's nonce and the hash of the block it was read at (what a
    /// new transaction signs against). `Ok(None)`: the key is not on the account.
    pub async fn access_key(
        &self,
        account: &AccountId,
        key: &PublicKey,
    ) -> std::result::Result<Option<(u64, CryptoHash)>, Failure> {
        let req = methods::query::RpcQueryRequest {
            block_reference: BlockReference::Finality(Finality::Final),
            request: QueryRequest::ViewAccessKey {
                account_id: account.clone(),
                public_key: key.clone(),
            },
        };
        match self.client.call(req).await {
            Ok(resp) => match resp.kind {
                QueryResponseKind::AccessKey(ak) => Ok(Some((ak.nonce, resp.block_hash))),
                other => Err(Failure::Fatal(ChainError::Server(format!(
                    "view_access_key: unexpected answer {other:?}"
                )))),
            },
            Err(e) => {
                if let Some(RpcQueryError::UnknownAccessKey { .. }) = e.handler_error() {
                    return Ok(None);
                }
                Err(self.query_failure(e, &format!("view_access_key of {account}")))
            }
        }
    }

    fn tx_failure(e: JsonRpcError<RpcTransactionError>) -> Failure {
        if let Some(reason) = transport(&e) {
            return Failure::Transient(reason);
        }
        match e.handler_error() {
            Some(RpcTransactionError::InvalidTransaction { context }) => match context {
                InvalidTxError::Expired => Failure::Expired,
                InvalidTxError::InvalidNonce { .. } => Failure::Nonce,
                other => Failure::Rejected(other.to_string()),
            },
            Some(RpcTransactionError::TimeoutError(_))
            | Some(RpcTransactionError::InternalError { .. })
            | Some(RpcTransactionError::RequestRouted { .. })
            | Some(RpcTransactionError::DoesNotTrackShard) => Failure::Transient(format!("{e}")),
            _ => Failure::Fatal(ChainError::Server(format!("{e}"))),
        }
    }

    /// Sends `tx` and waits until its outcome is final.
    pub async fn send(&self, tx: SignedTransaction) -> std::result::Result<Outcome, Failure> {
        let req = methods::send_tx::RpcSendTransactionRequest {
            signed_transaction: tx,
            wait_until: TxExecutionStatus::Final,
        };
        match self.client.call(req).await {
            Ok(resp) => final_outcome(resp.final_execution_outcome)
                .ok_or_else(|| Failure::Transient("no final outcome yet".into())),
            Err(e) => Err(Self::tx_failure(e)),
        }
    }

    /// The final outcome of transaction `hash` sent by `sender`, or `None` if the
    /// chain never saw it.
    pub async fn status(
        &self,
        hash: CryptoHash,
        sender: &AccountId,
    ) -> std::result::Result<Option<Outcome>, Failure> {
        let req = methods::tx::RpcTransactionStatusRequest {
            transaction_info: TransactionInfo::TransactionId {
                tx_hash: hash,
                sender_account_id: sender.clone(),
            },
            wait_until: TxExecutionStatus::Final,
        };
        match self.client.call(req).await {
            Ok(resp) => Ok(final_outcome(resp.final_execution_outcome)),
            Err(e) => {
                if let Some(RpcTransactionError::UnknownTransaction { .. }) = e.handler_error() {
                    return Ok(None);
                }
                Err(Self::tx_failure(e))
            }
        }
    }
}

fn final_outcome(view: Option<FinalExecutionOutcomeViewEnum>) -> Option<Outcome> {
    let view = match view? {
        FinalExecutionOutcomeViewEnum::FinalExecutionOutcome(v) => v,
        FinalExecutionOutcomeViewEnum::FinalExecutionOutcomeWithReceipt(v) => v.final_outcome,
    };
    match view.status {
        near_primitives::views::FinalExecutionStatus::NotStarted
        | near_primitives::views::FinalExecutionStatus::Started => None,
        _ => Some(Outcome::from_view(view)),
    }
}

/// Retries `f` while it fails transiently, with doubling pauses from 200 ms up to
/// 5 s, for at most `patience`; the last transient reason comes back as `Err`.
pub async fn with_patience<T, F, Fut>(
    patience: Duration,
    mut f: F,
) -> std::result::Result<T, (Failure, bool)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, Failure>>,
{
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(reason)) => {
                if start.elapsed() + pause > patience {
                    return Err((Failure::Transient(reason), true));
                }
                tracing::debug!(%reason, ?pause, "endpoint not answering; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(other) => return Err((other, false)),
        }
    }
}

/// Turns a failure left after retries into the error a person reads.
pub fn into_error(rpc: &Rpc, failure: Failure) -> ChainError {
    match failure {
        Failure::Transient(reason) => ChainError::Unreachable {
            endpoint: rpc.endpoint().to_string(),
            reason,
        },
        Failure::Expired => ChainError::Server("the transaction expired".into()),
        Failure::Nonce => ChainError::Server("the nonce was already used".into()),
        Failure::Rejected(reason) => ChainError::Server(reason),
        Failure::Fatal(e) => e,
    }
}

/// Views with retries; a failure that is not transient comes back at once.
pub async fn view_patiently(
    rpc: &Rpc,
    patience: Duration,
    contract: &AccountId,
    method: &str,
    args: Vec<u8>,
) -> Result<Vec<u8>> {
    with_patience(patience, || rpc.view(contract, method, args.clone()))
        .await
        .map_err(|(f, _)| into_error(rpc, f))
}
