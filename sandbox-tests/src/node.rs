//! Starting a local chain behind its RPC server: in-process for tests, or from the
//! `crowdtrain-localnet` binary. Binds to loopback only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use near_crypto::{KeyType, SecretKey};
use near_primitives::types::AccountId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::chain::{Chain, ChainConfig};
use crate::rpc::{self, SharedChain};

/// Root account, like a neard sandbox's.
pub const ROOT_ACCOUNT: &str = "test.near";
/// Root balance: one billion NEAR.
pub const ROOT_BALANCE: u128 = 1_000_000_000 * 10u128.pow(24);
/// Seed of the root key when the chain has no home directory.
const IN_MEMORY_KEY_SEED: &str = "crowdtrain-localnet test.near";

/// Why the local chain could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading or writing the home directory or binding the port failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// `validator_key.json` exists but is not a key file.
    #[error("bad key file {0}: {1}")]
    KeyFile(PathBuf, String),
}

/// How to start a local chain.
#[derive(Clone, Debug, Default)]
pub struct LocalNetOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Persist state here (and keep the root key in `validator_key.json`).
    pub home: Option<PathBuf>,
}

/// A key file: neard's `validator_key.json` names the secret `secret_key`,
/// near-cli's credentials name it `private_key`; exactly one is written.
#[derive(Serialize, Deserialize)]
pub struct KeyFile {
    /// Account the key belongs to.
    pub account_id: AccountId,
    /// `ed25519:…` public key.
    pub public_key: String,
    /// `ed25519:…` secret key (neard's field name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretKey>,
    /// `ed25519:…` secret key (near-cli's field name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<SecretKey>,
}

fn root_key(
    home: Option<&Path>,
    root: &AccountId,
) -> Result<(SecretKey, Option<PathBuf>), StartError> {
    let Some(home) = home else {
        return Ok((
            SecretKey::from_seed(KeyType::ED25519, IN_MEMORY_KEY_SEED),
            None,
        ));
    };
    std::fs::create_dir_all(home)?;
    let path = home.join("validator_key.json");
    let secret = if path.exists() {
        let file: KeyFile = serde_json::from_slice(&std::fs::read(&path)?)
            .map_err(|e| StartError::KeyFile(path.clone(), e.to_string()))?;
        file.secret_key
            .or(file.private_key)
            .ok_or_else(|| StartError::KeyFile(path.clone(), "no secret_key".into()))?
    } else {
        let secret = SecretKey::from_random(KeyType::ED25519);
        write_key_file(&path, root, &secret, false)?;
        secret
    };
    // near-workspaces' `ValidatorKey::HomeDir` signs top-level accounts with
    // `registrar.json`; the root is the registrar here.
    write_key_file(&home.join("registrar.json"), root, &secret, false)?;
    // near-cli's credentials format, for people.
    let credentials = home.join(format!("{root}.json"));
    write_key_file(&credentials, root, &secret, true)?;
    Ok((secret, Some(credentials)))
}

fn write_key_file(
    path: &Path,
    account: &AccountId,
    secret: &SecretKey,
    cli: bool,
) -> Result<(), StartError> {
    let file = KeyFile {
        account_id: account.clone(),
        public_key: secret.public_key().to_string(),
        secret_key: (!cli).then(|| secret.clone()),
        private_key: cli.then(|| secret.clone()),
    };
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| StartError::KeyFile(path.to_path_buf(), e.to_string()))?;
    std::fs::write(path, json)?;
    Ok(())
}

/// A running local chain. Dropping it stops the server.
pub struct LocalNet {
    addr: SocketAddr,
    root: AccountId,
    root_secret: SecretKey,
    key_file: Option<PathBuf>,
    chain: SharedChain,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl LocalNet {
    /// Opens (or creates) the chain and serves JSON-RPC on 127.0.0.1.
    pub async fn start(options: LocalNetOptions) -> Result<LocalNet, StartError> {
        let root: AccountId = ROOT_ACCOUNT.parse().expect("valid root id");
        let (root_secret, key_file) = root_key(options.home.as_deref(), &root)?;
        let config = ChainConfig {
            chain_id: "localnet".into(),
            root: root.clone(),
            root_key: root_secret.public_key(),
            root_balance: ROOT_BALANCE,
            home: options.home.clone(),
        };
        let chain = tokio::task::spawn_blocking(move || Chain::open(config))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let chain: SharedChain = Arc::new(Mutex::new(chain));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let addr = rpc::local_addr(&listener)?;
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(rpc::serve(listener, chain.clone(), async move {
            let _ = rx.await;
        }));
        tracing::info!(%addr, "local chain serving JSON-RPC");
        Ok(LocalNet {
            addr,
            root,
            root_secret,
            key_file,
            chain,
            shutdown: Some(tx),
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn rpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root account (`test.near`).
    pub fn root_account(&self) -> &AccountId {
        &self.root
    }

    /// The root account's full-access secret key.
    pub fn root_secret_key(&self) -> &SecretKey {
        &self.root_secret
    }

    /// The root key in near-cli's credentials format, if the chain has a home
    /// (`validator_key.json` beside it holds the same key in neard's format).
    pub fn key_file(&self) -> Option<&Path> {
        self.key_file.as_deref()
    }

    /// Direct access to the chain (for tests that inspect state).
    pub fn chain(&self) -> &SharedChain {
        &self.chain
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
