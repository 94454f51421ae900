//! The chain client: everything the agent says to a run contract, over NEAR JSON-RPC
//! only (the local chain, a neard sandbox, testnet or mainnet look the same).
//!
//! Layers, bottom up: [`credentials`] (near-cli key files, the receipt-signing key) →
//! [`rpc`] (views, access keys, `send_tx`, `tx` status, errors sorted into
//! retry / re-sign / give up) → [`outbox`] (signed transactions on disk before they
//! are sent) → [`sender`] (drains the outbox in order, once each) →
//! [`run_contract`] (the run contract's method names and JSON, in one place) →
//! [`client`] (what the commands and the provider loop call).

pub mod client;
pub mod credentials;
pub mod near_amount;
pub mod outbox;
pub mod rpc;
pub mod run_chain;
pub mod run_contract;
pub mod sender;

pub use client::RunClient;
pub use credentials::{AccountKey, SigningKey};
pub use outbox::{Call, Outbox, OutboxEntry};
pub use run_chain::BlockingRunChain;
pub use run_contract::{ChainCheckpoint, FundingStatus, Pending, ProviderInfo, RunInfo};
pub use sender::{Landed, RetryPolicy};

use std::path::PathBuf;

/// Everything that can go wrong talking to the chain. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No near-cli key file for the account.
    #[error(
        "no key for {account} on {network}: looked at {}; \
         create one with `near login` (near-cli) or `near account import-account` (near-cli-rs), \
         or point --credentials DIR (or NEAR_CREDENTIALS_DIR) at the folder that holds <network>/<account>.json",
        .looked_at.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
    )]
    MissingCredentials {
        /// The account.
        account: String,
        /// The network folder.
        network: String,
        /// Every path tried.
        looked_at: Vec<PathBuf>,
    },
    /// A key file exists but cannot be used.
    #[error("key file {path}: {reason}")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key from the credentials file is not an access key of the account.
    #[error(
        "the key {public_key} (from {path}) is not an access key of {account} on this chain: \
         use the credentials file of this account on this network"
    )]
    KeyNotOnChain {
        /// The account.
        account: String,
        /// The public key tried.
        public_key: String,
        /// Where it came from.
        path: PathBuf,
    },
    /// An account does not exist on the chain.
    #[error(
        "account {0} does not exist on this chain: check the account and run ids and --network"
    )]
    UnknownAccount(String),
    /// The endpoint did not answer within the retry budget.
    #[error("the NEAR endpoint {endpoint} did not answer: {reason}")]
    Unreachable {
        /// The URL.
        endpoint: String,
        /// The last transport error.
        reason: String,
    },
    /// A call is safely queued in the outbox but the endpoint did not answer in time.
    #[error(
        "the NEAR endpoint {endpoint} did not answer ({reason}); `{label}` is queued in {outbox} \
         and will be sent, once, by the next crowdtrain command on this state directory \
         (`crowdtrain outbox` sends it now)"
    )]
    Queued {
        /// What was queued.
        label: String,
        /// The URL.
        endpoint: String,
        /// The outbox directory.
        outbox: PathBuf,
        /// The last transport error.
        reason: String,
    },
    /// The contract refused the call (its own message).
    #[error("{method} was refused by {contract}: {message}")]
    ContractPanic {
        /// The contract account.
        contract: String,
        /// The method called.
        method: String,
        /// The contract's message.
        message: String,
    },
    /// The chain rejected the transaction itself (balance, key, size, ...).
    #[error("the chain rejected `{label}`: {reason}")]
    Rejected {
        /// What was sent.
        label: String,
        /// The chain's reason.
        reason: String,
    },
    /// A view returned something the client cannot read.
    #[error(
        "{method} on {contract} returned unexpected JSON: {reason} (is the run contract newer than this agent?)"
    )]
    BadView {
        /// The contract.
        contract: String,
        /// The view method.
        method: String,
        /// The parse error.
        reason: String,
    },
    /// A server-side error that is not about this request's content.
    #[error("the NEAR endpoint answered with an error: {0}")]
    Server(String),
    /// The outbox or a key file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// Which file or folder.
        what: String,
        /// The i/o error.
        source: std::io::Error,
    },
}

/// The chain client's result type.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;

/// Wraps an i/o error with the path it concerns.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChainError {
    let what = what.into();
    move |source| ChainError::Io { what, source }
}
