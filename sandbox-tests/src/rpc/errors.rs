//! JSON-RPC error objects in neard's shapes: `name`/`cause` for new clients,
//! `code`/`message`/`data` for old ones (near-jsonrpc-client reads both).

use near_jsonrpc_primitives::types::query::RpcQueryError;
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::CryptoHash;
use serde_json::{Value, json};

/// An `error` object ready to put into a JSON-RPC reply.
#[derive(Debug)]
pub struct RpcFailure(pub Value);

impl RpcFailure {
    /// The request's params could not be parsed.
    pub fn parse(message: impl Into<String>) -> Self {
        let message = message.into();
        RpcFailure(json!({
            "name": "REQUEST_VALIDATION_ERROR",
            "cause": {"name": "PARSE_ERROR", "info": {"error_message": message}},
            "code": -32700,
            "message": "Parse error",
            "data": message,
        }))
    }

    /// The method does not exist here.
    pub fn method_not_found(method: &str) -> Self {
        RpcFailure(json!({
            "name": "REQUEST_VALIDATION_ERROR",
            "cause": {"name": "METHOD_NOT_FOUND", "info": {"method_name": method}},
            "code": -32601,
            "message": "Method not found",
            "data": method,
        }))
    }

    /// A handler error with a typed cause (`{"name","info"}`) and a legacy `data`.
    pub fn handler(cause: Value, data: Value) -> Self {
        RpcFailure(json!({
            "name": "HANDLER_ERROR",
            "cause": cause,
            "code": -32000,
            "message": "Server error",
            "data": data,
        }))
    }

    /// Something went wrong inside the node.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        RpcFailure(json!({
            "name": "INTERNAL_ERROR",
            "cause": {"name": "INTERNAL_ERROR", "info": {"error_message": message}},
            "code": -32000,
            "message": "Server error",
            "data": message,
        }))
    }

    /// A query failed (unknown account, contract panic, …).
    pub fn query(e: RpcQueryError) -> Self {
        let data = Value::String(e.to_string());
        let cause = serde_json::to_value(&e).unwrap_or(Value::Null);
        Self::handler(cause, data)
    }

    /// The transaction was rejected before execution (bad nonce, balance, signature, …).
    pub fn invalid_tx(e: &InvalidTxError) -> Self {
        let context = serde_json::to_value(e).unwrap_or(Value::Null);
        Self::handler(
            json!({"name": "INVALID_TRANSACTION", "info": {"context": context.clone()}}),
            json!({"TxExecutionError": {"InvalidTxError": context}}),
        )
    }

    /// `tx` for a hash this chain never saw.
    pub fn unknown_transaction(hash: &CryptoHash) -> Self {
        Self::handler(
            json!({"name": "UNKNOWN_TRANSACTION", "info": {"requested_transaction_hash": hash}}),
            Value::String(format!("Transaction {hash} doesn't exist")),
        )
    }

    /// A block this chain does not have.
    pub fn unknown_block(reference: Value) -> Self {
        Self::handler(
            json!({"name": "UNKNOWN_BLOCK", "info": {"block_reference": reference}}),
            Value::String("DB Not Found Error: BLOCK HEIGHT".into()),
        )
    }
}
