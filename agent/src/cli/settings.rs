//! Where the chain commands get their settings: the command line first, then
//! `<state>/config.toml` (written by `crowdtrain init`), then defaults.

use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::chain::RetryPolicy;
use near_primitives::types::AccountId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the state directory.
pub const STATE_ENV: &str = "CROWDTRAIN_STATE";
/// The config file's name inside the state directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Options every chain command takes; each can also be set in config.toml.
#[derive(Args, Clone, Debug, Default)]
pub struct ChainArgs {
    /// State directory: config.toml, signing_key.json, outbox/ [default: $CROWDTRAIN_STATE,
    /// else ~/.crowdtrain].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Config file to read instead of <state>/config.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// NEAR JSON-RPC endpoint, e.g. http://127.0.0.1:3030 (`endpoint` in config.toml).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Network name: localnet, testnet or mainnet; picks the credentials subfolder.
    #[arg(long)]
    pub network: Option<String>,
    /// Your NEAR account, e.g. alice.testnet (`account` in config.toml).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub account: Option<String>,
    /// The run contract's account, e.g. gpt.factory.testnet (`run` in config.toml).
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub run: Option<String>,
    /// Folder of near-cli key files [default: $NEAR_CREDENTIALS_DIR, else ~/.near-credentials].
    #[arg(long, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    /// Seconds to keep retrying an endpoint that does not answer before leaving a
    /// call queued in the outbox [default: 30].
    #[arg(long, value_name = "SECS")]
    pub rpc_patience: Option<u64>,
}

/// config.toml as written by `init` (every key optional here; see `init --help`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// NEAR JSON-RPC endpoint.
    pub endpoint: Option<String>,
    /// Network name.
    pub network: Option<String>,
    /// Your account.
    pub account: Option<String>,
    /// The run contract.
    pub run: Option<String>,
    /// State directory.
    pub state: Option<PathBuf>,
    /// Credentials folder.
    pub credentials: Option<PathBuf>,
    /// Training device.
    pub device: Option<String>,
    /// Training threads (0 = all cores).
    pub threads: Option<usize>,
    /// Retry budget for an unresponsive endpoint, seconds.
    pub rpc_patience_secs: Option<u64>,
    /// Address the peer-to-peer endpoint binds (`ip:port`).
    pub listen: Option<String>,
    /// Address other providers dial, if not `listen` (a public IP, a forwarded port).
    pub public_addr: Option<String>,
    /// Use iroh's public relays and address lookup (the internet, behind NATs).
    pub relays: Option<bool>,
}

/// Everything resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The state directory.
    pub state: PathBuf,
    /// The config file read, if there was one.
    pub config_path: Option<PathBuf>,
    /// JSON-RPC endpoint.
    pub endpoint: String,
    /// Network name.
    pub network: String,
    /// Your account, if set.
    pub account: Option<String>,
    /// The run, if set.
    pub run: Option<String>,
    /// Credentials folder (explicit), if set.
    pub credentials: Option<PathBuf>,
    /// Training device.
    pub device: String,
    /// Training threads.
    pub threads: usize,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Peer-to-peer settings.
    pub p2p: P2pSettings,
}

/// Where this provider's peer-to-peer endpoint listens and how others reach it.
#[derive(Clone, Debug)]
pub struct P2pSettings {
    /// The address bound.
    pub listen: SocketAddr,
    /// The address others dial, if not `listen`.
    pub public_addr: Option<SocketAddr>,
    /// Relays and DNS lookup on.
    pub relays: bool,
}

/// The port `crowdtrain init` suggests for the peer-to-peer endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4041";

fn socket_addr(text: &str, what: &str) -> Result<SocketAddr> {
    text.parse().with_context(|| {
        format!("{what} {text:?} is not an ip:port address (like 127.0.0.1:4041 or 0.0.0.0:4041)")
    })
}

/// The default state directory: $CROWDTRAIN_STATE, else ~/.crowdtrain.
pub fn default_state() -> PathBuf {
    if let Some(dir) = std::env::var_os(STATE_ENV) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".crowdtrain")
}

/// The endpoint people use for `network` when they give none.
pub fn default_endpoint(network: &str) -> Option<&'static str> {
    match network {
        "localnet" => Some("http://127.0.0.1:3030"),
        "testnet" => Some("https://rpc.testnet.near.org"),
        "mainnet" => Some("https://rpc.mainnet.near.org"),
        _ => None,
    }
}

/// The network an endpoint probably belongs to.
pub fn guess_network(endpoint: &str) -> &'static str {
    if endpoint.contains("127.0.0.1") || endpoint.contains("localhost") {
        "localnet"
    } else if endpoint.contains("mainnet") {
        "mainnet"
    } else {
        "testnet"
    }
}

fn read_config(path: &Path) -> Result<ConfigFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid crowdtrain config (compare with what `crowdtrain init` writes)",
            path.display()
        )
    })
}

impl ChainArgs {
    /// Resolves the settings: flags over config.toml over defaults.
    pub fn resolve(&self) -> Result<Settings> {
        let (file, config_path) = match &self.config {
            Some(path) => (read_config(path)?, Some(path.clone())),
            None => {
                let state = self.state.clone().unwrap_or_else(default_state);
                let path = state.join(CONFIG_FILE);
                if path.is_file() {
                    (read_config(&path)?, Some(path))
                } else {
                    (ConfigFile::default(), None)
                }
            }
        };
        let state = self
            .state
            .clone()
            .or(file.state.clone())
            .or_else(|| {
                config_path
                    .as_ref()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
            })
            .unwrap_or_else(default_state);
        let endpoint = self.endpoint.clone().or(file.endpoint.clone());
        let network = self
            .network
            .clone()
            .or(file.network.clone())
            .unwrap_or_else(|| {
                endpoint
                    .as_deref()
                    .map_or("testnet", guess_network)
                    .to_string()
            });
        let endpoint = match endpoint {
            Some(e) => e,
            None => match default_endpoint(&network) {
                Some(e) => e.to_string(),
                None => bail!(
                    "no endpoint for network {network:?}: pass --endpoint URL or set endpoint in config.toml"
                ),
            },
        };
        let patience = self.rpc_patience.or(file.rpc_patience_secs).unwrap_or(30);
        let p2p = P2pSettings {
            listen: socket_addr(file.listen.as_deref().unwrap_or(DEFAULT_LISTEN), "listen")?,
            public_addr: file
                .public_addr
                .as_deref()
                .map(|a| socket_addr(a, "public_addr"))
                .transpose()?,
            relays: file.relays.unwrap_or(false),
        };
        Ok(Settings {
            state,
            config_path,
            endpoint,
            network,
            account: self.account.clone().or(file.account),
            run: self.run.clone().or(file.run),
            credentials: self.credentials.clone().or(file.credentials),
            device: file.device.unwrap_or_else(|| "cpu".into()),
            threads: file.threads.unwrap_or(0),
            retry: RetryPolicy {
                patience: Duration::from_secs(patience),
            },
            p2p,
        })
    }
}

impl Settings {
    fn missing(&self, what: &str, example: &str) -> anyhow::Error {
        let config = self.state.join(CONFIG_FILE);
        anyhow::anyhow!(
            "no {what} set: pass --{what} {example}, or run `crowdtrain init --{what} {example} ...` \
             (it writes {})",
            config.display()
        )
    }

    /// Your account id.
    pub fn account(&self) -> Result<AccountId> {
        let text = self
            .account
            .as_deref()
            .ok_or_else(|| self.missing("account", "alice.testnet"))?;
        text.parse()
            .with_context(|| format!("{text:?} is not a NEAR account id"))
    }

    /// The run contract's account id.
    pub fn run(&self) -> Result<AccountId> {
        let text = self
            .run
            .as_deref()
            .ok_or_else(|| self.missing("run", "gpt.factory.testnet"))?;
        text.parse()
            .with_context(|| format!("{text:?} is not a NEAR account id"))
    }

    /// The outbox folder.
    pub fn outbox_dir(&self) -> PathBuf {
        self.state.join("outbox")
    }

    /// The receipt-signing key file.
    pub fn signing_key_path(&self) -> PathBuf {
        self.state.join(crowdtrain_agent::chain::SigningKey::FILE)
    }
}
