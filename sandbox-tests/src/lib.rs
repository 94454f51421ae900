//! A local NEAR chain for tests and demos: contracts run on nearcore's own VM
//! (`near-vm-runner`, wasmtime) with the real protocol config (`near-parameters`),
//! behind the JSON-RPC subset near-jsonrpc-client and near-workspaces use.
//!
//! Layers, bottom up: [`state`] (accounts, keys, code, storage) → [`tx`]
//! (validation and charging) → [`runtime`] with [`actions`] and [`ext`] (receipt
//! execution on the [`vm`]) → [`chain`] (blocks, receipt routing, outcomes) →
//! [`rpc`] (the JSON-RPC server) → [`node`] (starting it all on a port).

pub mod actions;
pub mod chain;
pub mod deploy;
pub mod ext;
pub mod fees;
pub mod node;
pub mod outcome;
pub mod query;
pub mod receipt;
pub mod rpc;
pub mod runtime;
pub mod state;
pub mod tx;
pub mod vm;

pub use chain::{Chain, ChainConfig};
pub use node::{LocalNet, LocalNetOptions, ROOT_ACCOUNT};
