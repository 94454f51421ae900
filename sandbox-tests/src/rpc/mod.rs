//! The JSON-RPC server: one POST route, the JSON-RPC 2.0 envelope, and dispatch
//! to the chain on a blocking thread (contract calls run the VM).
//!
//! Like neard (whose `cors_allowed_origins` defaults to `*`), it answers CORS
//! preflights from any origin, so a page served elsewhere (web/, `make web-demo`)
//! can read the chain and send signed transactions. It binds loopback only.

mod errors;
mod methods;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, CONTENT_TYPE,
};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};

pub use errors::RpcFailure;

use crate::chain::Chain;

/// The chain shared between request handlers.
pub type SharedChain = Arc<Mutex<Chain>>;

/// Handles one raw request body and returns the JSON-RPC reply. Never panics on
/// bad input: anything malformed becomes a JSON-RPC error.
pub fn handle_request(chain: &SharedChain, body: &[u8]) -> Value {
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return reply(
                Value::Null,
                Err(RpcFailure::parse(format!("invalid JSON: {e}"))),
            );
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return reply(id, Err(RpcFailure::parse("missing method")));
    };
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let result = match chain.lock() {
        Ok(mut chain) => methods::dispatch(&mut chain, method, params),
        Err(_) => Err(RpcFailure::internal("chain lock poisoned")),
    };
    if let Err(RpcFailure(e)) = &result {
        tracing::debug!(method, error = %e, "rpc error");
    }
    reply(id, result)
}

fn reply(id: Value, result: Result<Value, RpcFailure>) -> Value {
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(RpcFailure(error)) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
    }
}

async fn rpc(AxumState(chain): AxumState<SharedChain>, body: Bytes) -> impl IntoResponse {
    let reply = tokio::task::spawn_blocking(move || handle_request(&chain, &body))
        .await
        .unwrap_or_else(|e| {
            reply(
                Value::Null,
                Err(RpcFailure::internal(format!("handler failed: {e}"))),
            )
        });
    (
        [
            (CONTENT_TYPE, "application/json"),
            (ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        reply.to_string(),
    )
}

/// Answers a browser's CORS preflight: any origin may POST JSON (no credentials).
async fn preflight() -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [
            (ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"),
            (ACCESS_CONTROL_ALLOW_HEADERS, "*"),
            (ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
}

/// Serves JSON-RPC for `chain` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    chain: SharedChain,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/", post(rpc).options(preflight))
        .with_state(chain);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// The address a listener ended up on.
pub fn local_addr(listener: &tokio::net::TcpListener) -> std::io::Result<SocketAddr> {
    listener.local_addr()
}
