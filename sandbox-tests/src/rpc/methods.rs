//! The JSON-RPC methods near-jsonrpc-client and near-workspaces call, answering
//! with nearcore's own view types so clients parse them unchanged.

use base64::Engine;
use borsh::BorshDeserialize;
use near_jsonrpc_primitives::types::query::{
    QueryResponseKind, RpcQueryError, RpcQueryRequest, RpcQueryResponse,
};
use near_primitives::hash::CryptoHash;
use near_primitives::state_record::StateRecord;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::{BlockId, BlockReference};
use near_primitives::version::PROTOCOL_VERSION;
use near_primitives::views::{BlockHeaderView, BlockView, FinalExecutionOutcomeView, QueryRequest};
use serde_json::{Value, json};

use super::errors::RpcFailure;
use crate::chain::{Block, Chain, GAS_PRICE};

type Reply = Result<Value, RpcFailure>;

fn to_value<T: serde::Serialize>(v: &T) -> Reply {
    serde_json::to_value(v).map_err(|e| RpcFailure::internal(e.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcFailure> {
    serde_json::from_value(params).map_err(|e| RpcFailure::parse(e.to_string()))
}

/// Runs one method against the chain.
pub fn dispatch(chain: &mut Chain, method: &str, params: Value) -> Reply {
    match method {
        "status" => status(chain),
        "health" => Ok(Value::Null),
        "block" => block(chain, params),
        "gas_price" => Ok(json!({"gas_price": GAS_PRICE.to_string()})),
        "query" => query(chain, params),
        "broadcast_tx_commit" => Ok(outcome_value(&send(chain, first_param(params)?)?, false)?),
        "broadcast_tx_async" => Ok(Value::String(
            send(chain, first_param(params)?)?
                .transaction_outcome
                .id
                .to_string(),
        )),
        "send_tx" => {
            let encoded = params
                .get("signed_tx_base64")
                .cloned()
                .unwrap_or(Value::Null);
            tx_reply(&send(chain, encoded)?, false)
        }
        "tx" | "EXPERIMENTAL_tx_status" => tx_status(chain, params, method != "tx"),
        "sandbox_patch_state" => {
            let records: Vec<StateRecord> =
                parse(params.get("records").cloned().unwrap_or(Value::Null))?;
            chain
                .patch_state(records)
                .map_err(|e| RpcFailure::internal(e.to_string()))?;
            Ok(json!({}))
        }
        "sandbox_fast_forward" => {
            let delta = params
                .get("delta_height")
                .and_then(Value::as_u64)
                .ok_or_else(|| RpcFailure::parse("delta_height"))?;
            chain
                .fast_forward(delta)
                .map_err(|e| RpcFailure::internal(e.to_string()))?;
            Ok(json!({}))
        }
        other => Err(RpcFailure::method_not_found(other)),
    }
}

fn status(chain: &Chain) -> Reply {
    let head = chain.head();
    let time = chrono::DateTime::from_timestamp_nanos(head.timestamp_ns as i64).to_rfc3339();
    let node_key = chain.config().root_key.to_string();
    Ok(json!({
        "version": {"version": "crowdtrain-localnet", "build": env!("CARGO_PKG_VERSION"), "commit": "", "rustc_version": ""},
        "chain_id": chain.config().chain_id,
        "protocol_version": PROTOCOL_VERSION,
        "latest_protocol_version": PROTOCOL_VERSION,
        "validators": [{"account_id": chain.config().root}],
        "sync_info": {
            "latest_block_hash": head.hash,
            "latest_block_height": head.height,
            "latest_state_root": CryptoHash::default(),
            "latest_block_time": time,
            "syncing": false,
            "earliest_block_hash": null,
            "earliest_block_height": null,
            "earliest_block_time": null,
            "epoch_id": CryptoHash::default(),
            "epoch_start_height": 1,
        },
        "validator_account_id": chain.config().root,
        "validator_public_key": node_key,
        "node_public_key": node_key,
        "node_key": null,
        "uptime_sec": 0,
        "genesis_hash": chain.genesis_hash(),
    }))
}

/// Finds the block a request refers to; finality always means the head.
fn resolve<'a>(chain: &'a Chain, reference: &BlockReference) -> Result<&'a Block, RpcFailure> {
    let found = match reference {
        BlockReference::BlockId(BlockId::Height(h)) => chain.block_at(*h),
        BlockReference::BlockId(BlockId::Hash(h)) => chain.block_by_hash(h),
        _ => Some(chain.head()),
    };
    found.ok_or_else(|| {
        RpcFailure::unknown_block(serde_json::to_value(reference).unwrap_or(Value::Null))
    })
}

fn block(chain: &Chain, params: Value) -> Reply {
    let reference: BlockReference = match params {
        // `[height]` / `[hash]`, the positional form.
        Value::Array(mut items) if !items.is_empty() => {
            BlockReference::BlockId(parse(items.swap_remove(0))?)
        }
        other => parse(other)?,
    };
    let b = resolve(chain, &reference)?;
    let header = BlockHeaderView {
        height: b.height,
        prev_height: b.height.checked_sub(1),
        hash: b.hash,
        prev_hash: b.prev_hash,
        timestamp: b.timestamp_ns,
        timestamp_nanosec: b.timestamp_ns,
        gas_price: near_primitives::types::Balance::from_yoctonear(GAS_PRICE),
        latest_protocol_version: PROTOCOL_VERSION,
        ..Default::default()
    };
    to_value(&BlockView {
        author: chain.config().root.clone(),
        header,
        chunks: Vec::new(),
    })
}

fn query(chain: &Chain, params: Value) -> Reply {
    let request: RpcQueryRequest = parse(params)?;
    let b = resolve(chain, &request.block_reference)?;
    let (block_height, block_hash) = (b.height, b.hash);
    let kind = match request.request {
        QueryRequest::ViewAccount { account_id } => {
            QueryResponseKind::ViewAccount(chain.view_account(&account_id).ok_or_else(|| {
                RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                })
            })?)
        }
        QueryRequest::ViewCode { account_id } => {
            if chain.view_account(&account_id).is_none() {
                return Err(RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                }));
            }
            QueryResponseKind::ViewCode(chain.view_code(&account_id).ok_or_else(|| {
                RpcFailure::query(RpcQueryError::NoContractCode {
                    contract_account_id: account_id,
                    block_height,
                    block_hash,
                })
            })?)
        }
        QueryRequest::ViewState {
            account_id, prefix, ..
        } => {
            if chain.view_account(&account_id).is_none() {
                return Err(RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                }));
            }
            QueryResponseKind::ViewState(chain.view_state(&account_id, prefix.as_ref()))
        }
        QueryRequest::ViewAccessKey {
            account_id,
            public_key,
        } => {
            if chain.view_account(&account_id).is_none() {
                return Err(RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                }));
            }
            QueryResponseKind::AccessKey(
                chain
                    .view_access_key(&account_id, &public_key)
                    .ok_or_else(|| {
                        RpcFailure::query(RpcQueryError::UnknownAccessKey {
                            public_key,
                            block_height,
                            block_hash,
                        })
                    })?,
            )
        }
        QueryRequest::ViewAccessKeyList { account_id, .. } => {
            if chain.view_account(&account_id).is_none() {
                return Err(RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                }));
            }
            QueryResponseKind::AccessKeyList(chain.view_access_key_list(&account_id))
        }
        QueryRequest::CallFunction {
            account_id,
            method_name,
            args,
        } => {
            if chain.view_account(&account_id).is_none() {
                return Err(RpcFailure::query(RpcQueryError::UnknownAccount {
                    requested_account_id: account_id,
                    block_height,
                    block_hash,
                }));
            }
            let result = chain.call_function(&account_id, &method_name, args.as_ref());
            QueryResponseKind::CallResult(result.map_err(|error| {
                let vm_error = format!("{error:?}");
                RpcFailure::query(RpcQueryError::ContractExecutionError {
                    vm_error,
                    error,
                    block_height,
                    block_hash,
                })
            })?)
        }
        other => {
            return Err(RpcFailure::internal(format!(
                "query kind not supported by the local chain: {other:?}"
            )));
        }
    };
    to_value(&RpcQueryResponse {
        kind,
        block_height,
        block_hash,
    })
}

fn first_param(params: Value) -> Result<Value, RpcFailure> {
    match params {
        Value::Array(mut items) if !items.is_empty() => Ok(items.swap_remove(0)),
        _ => Err(RpcFailure::parse(
            "expected [\"<base64 borsh SignedTransaction>\"]",
        )),
    }
}

fn decode_tx(encoded: &Value) -> Result<SignedTransaction, RpcFailure> {
    let text = encoded
        .as_str()
        .ok_or_else(|| RpcFailure::parse("signed transaction must be a base64 string"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| RpcFailure::parse(format!("invalid base64: {e}")))?;
    SignedTransaction::try_from_slice(&bytes)
        .map_err(|e| RpcFailure::parse(format!("invalid SignedTransaction: {e}")))
}

fn send(chain: &mut Chain, encoded: Value) -> Result<FinalExecutionOutcomeView, RpcFailure> {
    let tx = decode_tx(&encoded)?;
    chain
        .process_transaction(tx)
        .map_err(|e| RpcFailure::invalid_tx(&e))
}

fn outcome_value(outcome: &FinalExecutionOutcomeView, with_receipts: bool) -> Reply {
    let mut value = to_value(outcome)?;
    if with_receipts {
        value["receipts"] = json!([]);
    }
    Ok(value)
}

/// `send_tx`/`tx` replies: the outcome flattened next to the status reached.
fn tx_reply(outcome: &FinalExecutionOutcomeView, with_receipts: bool) -> Reply {
    let mut value = outcome_value(outcome, with_receipts)?;
    value["final_execution_status"] = json!("FINAL");
    Ok(value)
}

fn tx_status(chain: &Chain, params: Value, with_receipts: bool) -> Reply {
    let hash_value = match &params {
        Value::Array(items) => items.first().cloned(),
        Value::Object(map) => {
            if let Some(encoded) = map.get("signed_tx_base64") {
                Some(Value::String(decode_tx(encoded)?.get_hash().to_string()))
            } else {
                map.get("tx_hash").cloned()
            }
        }
        _ => None,
    };
    let hash: CryptoHash = parse(hash_value.unwrap_or(Value::Null))?;
    let outcome = chain
        .outcome(&hash)
        .ok_or_else(|| RpcFailure::unknown_transaction(&hash))?;
    tx_reply(outcome, with_receipts)
}
