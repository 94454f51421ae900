//! The local chain itself: transactions and receipts, near-workspaces against it,
//! JSON-RPC errors, the binary. One test binary, so CI links it once.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod chain;
mod rpc_errors;
mod workspaces;
