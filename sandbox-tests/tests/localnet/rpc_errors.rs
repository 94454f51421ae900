//! Malformed and failing requests get JSON-RPC errors in neard's shapes, never a
//! crash, and the server keeps serving afterwards.

use std::sync::{Arc, Mutex};

use crate::common::*;
use base64::Engine;
use crowdtrain_localnet::rpc::handle_request;
use near_primitives::action::{Action, TransferAction};
use near_primitives::types::Balance;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn shared() -> crowdtrain_localnet::rpc::SharedChain {
    Arc::new(Mutex::new(chain()))
}

fn call(chain: &crowdtrain_localnet::rpc::SharedChain, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": "t", "method": method, "params": params});
    handle_request(chain, body.to_string().as_bytes())
}

fn error_of(reply: &Value) -> &Value {
    assert!(reply.get("result").is_none(), "expected an error: {reply}");
    let error = &reply["error"];
    assert!(
        error["code"].is_i64() && error["message"].is_string(),
        "code and message are required: {reply}"
    );
    error
}

#[test]
fn malformed_requests_get_parse_or_method_errors() {
    let chain = shared();
    let reply = handle_request(&chain, b"{not json");
    assert_eq!(error_of(&reply)["code"], -32700);
    let reply = handle_request(&chain, br#"{"jsonrpc":"2.0","id":"1"}"#);
    assert_eq!(error_of(&reply)["code"], -32700);
    let reply = call(&chain, "no_such_method", json!({}));
    assert_eq!(error_of(&reply)["cause"]["name"], "METHOD_NOT_FOUND");
    let reply = call(&chain, "query", json!({"request_type": "view_account"}));
    assert_eq!(error_of(&reply)["name"], "REQUEST_VALIDATION_ERROR");
    let reply = call(&chain, "broadcast_tx_commit", json!(["%%%"]));
    assert_eq!(error_of(&reply)["code"], -32700);
    let reply = call(
        &chain,
        "broadcast_tx_commit",
        json!([base64::engine::general_purpose::STANDARD.encode([1, 2, 3])]),
    );
    assert_eq!(error_of(&reply)["code"], -32700);
    let reply = call(
        &chain,
        "sandbox_fast_forward",
        json!({"delta_height": "many"}),
    );
    error_of(&reply);
    // Still serving.
    let reply = call(&chain, "status", Value::Null);
    assert_eq!(reply["result"]["chain_id"], "localnet");
}

#[test]
fn query_errors_name_the_cause_with_the_block() {
    let chain = shared();
    let reply = call(
        &chain,
        "query",
        json!({"request_type": "view_account", "finality": "final", "account_id": "nobody.near"}),
    );
    let error = error_of(&reply);
    assert_eq!(error["name"], "HANDLER_ERROR");
    assert_eq!(error["cause"]["name"], "UNKNOWN_ACCOUNT");
    assert!(error["cause"]["info"]["block_height"].is_u64());
    let reply = call(
        &chain,
        "query",
        json!({"request_type": "call_function", "finality": "final",
        "account_id": "test.near", "method_name": "x", "args_base64": ""}),
    );
    assert_eq!(
        error_of(&reply)["cause"]["name"],
        "CONTRACT_EXECUTION_ERROR"
    );
    let reply = call(&chain, "block", json!({"block_id": 999_999}));
    assert_eq!(error_of(&reply)["cause"]["name"], "UNKNOWN_BLOCK");
    let reply = call(
        &chain,
        "tx",
        json!({"tx_hash": "11111111111111111111111111111111", "sender_account_id": "test.near"}),
    );
    assert_eq!(error_of(&reply)["cause"]["name"], "UNKNOWN_TRANSACTION");
}

#[test]
fn invalid_transactions_report_the_reason_in_both_error_forms() {
    let chain = shared();
    let head = chain.lock().unwrap().head().hash;
    let transfer = |nonce| {
        let tx = sign(
            "test.near",
            &key("test.near"),
            nonce,
            "test.near",
            head,
            vec![Action::Transfer(TransferAction {
                deposit: Balance::from_yoctonear(1),
            })],
        );
        base64::engine::general_purpose::STANDARD.encode(borsh::to_vec(&tx).unwrap())
    };
    let ok = call(
        &chain,
        "send_tx",
        json!({"signed_tx_base64": transfer(5), "wait_until": "FINAL"}),
    );
    assert_eq!(ok["result"]["final_execution_status"], "FINAL", "{ok}");
    assert!(ok["result"]["status"]["SuccessValue"].is_string());
    let reply = call(&chain, "broadcast_tx_commit", json!([transfer(4)]));
    let error = error_of(&reply);
    assert_eq!(error["cause"]["name"], "INVALID_TRANSACTION");
    assert_eq!(
        error["data"]["TxExecutionError"]["InvalidTxError"]["InvalidNonce"],
        json!({"tx_nonce": 4, "ak_nonce": 5})
    );
    assert_eq!(
        error["cause"]["info"]["context"]["InvalidNonce"]["ak_nonce"],
        5
    );
}

#[tokio::test]
async fn the_http_server_answers_with_status_200_and_json() {
    let net = crowdtrain_localnet::LocalNet::start(Default::default())
        .await
        .unwrap();
    for body in ["{broken", r#"{"jsonrpc":"2.0","id":"s","method":"status"}"#] {
        let mut stream = tokio::net::TcpStream::connect(net.addr()).await.unwrap();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let json: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(json["jsonrpc"], "2.0");
        assert!(json.get("result").is_some() != json.get("error").is_some());
    }
    net.stop().await;
}

/// Sends one raw HTTP/1.1 request and returns the whole response as text.
async fn raw_http(net: &crowdtrain_localnet::LocalNet, request: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(net.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn a_page_on_another_origin_may_call_the_chain() {
    let net = crowdtrain_localnet::LocalNet::start(Default::default())
        .await
        .unwrap();
    // The browser's preflight for a JSON POST from the page's origin.
    let preflight = raw_http(
        &net,
        "OPTIONS / HTTP/1.1\r\nHost: localhost\r\nOrigin: http://127.0.0.1:8080\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\
         Connection: close\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
    assert!(
        preflight.contains("access-control-allow-origin: *"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-methods: post"),
        "{preflight}"
    );
    assert!(
        preflight.contains("access-control-allow-headers: *"),
        "{preflight}"
    );
    // The call itself carries the header too, or the browser hides the reply.
    let body = r#"{"jsonrpc":"2.0","id":"s","method":"status"}"#;
    let reply = raw_http(
        &net,
        &format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nOrigin: http://127.0.0.1:8080\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{reply}"
    );
    net.stop().await;
}
