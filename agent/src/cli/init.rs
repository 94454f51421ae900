//! `crowdtrain init`: the commented config file and the receipt-signing key.

use super::settings::{CONFIG_FILE, ChainArgs, default_endpoint, default_state, guess_network};
use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::chain::SigningKey;
use crowdtrain_agent::chain::credentials::{credentials_dir, load_account_key};
use crowdtrain_agent::chain::outbox::write_atomically;
use near_primitives::types::AccountId;

/// `crowdtrain init`.
#[derive(Args)]
pub struct InitArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Training device: cpu, or cuda:N on a GPU build.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for training (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Replace an existing config.toml (the signing key is always kept).
    #[arg(long)]
    force: bool,
    /// Address your peer-to-peer endpoint binds, ip:port (providers only).
    #[arg(long, value_name = "ADDR", default_value = super::settings::DEFAULT_LISTEN)]
    listen: String,
    /// Address other providers dial you at, if not --listen (a public IP or a
    /// forwarded port, when --listen is 0.0.0.0:PORT).
    #[arg(long, value_name = "ADDR")]
    public_addr: Option<String>,
    /// Reach peers through iroh's public relays and address lookup (the internet,
    /// behind NATs) instead of only at their registered addresses.
    #[arg(long)]
    relays: bool,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Writes config.toml and, if there is none yet, the signing key.
pub fn run(args: &InitArgs) -> Result<()> {
    let c = &args.chain;
    let Some(account) = c.account.as_deref() else {
        bail!(
            "init needs your NEAR account: pass --account alice.testnet (the account whose key near-cli keeps)"
        )
    };
    let Some(run) = c.run.as_deref() else {
        bail!(
            "init needs the run to join: pass --run <run account>, e.g. --run gpt.factory.testnet"
        )
    };
    let account: AccountId = account
        .parse()
        .with_context(|| format!("{account:?} is not a NEAR account id"))?;
    let run: AccountId = run
        .parse()
        .with_context(|| format!("{run:?} is not a NEAR account id"))?;
    let state = c.state.clone().unwrap_or_else(default_state);
    let state = std::path::absolute(&state).unwrap_or(state);
    let network = c.network.clone().unwrap_or_else(|| {
        c.endpoint
            .as_deref()
            .map_or("testnet", guess_network)
            .to_string()
    });
    let endpoint = match (&c.endpoint, default_endpoint(&network)) {
        (Some(e), _) => e.clone(),
        (None, Some(e)) => e.to_string(),
        (None, None) => bail!("no default endpoint for network {network:?}: pass --endpoint URL"),
    };
    for (what, addr) in [
        ("--listen", Some(&args.listen)),
        ("--public-addr", args.public_addr.as_ref()),
    ] {
        if let Some(a) = addr {
            a.parse::<std::net::SocketAddr>().with_context(|| {
                format!("{what} {a:?} is not an ip:port address (like 127.0.0.1:4041)")
            })?;
        }
    }
    let config_path = state.join(CONFIG_FILE);
    if config_path.exists() && !args.force {
        bail!(
            "{} already exists: edit it, or pass --force to replace it (the signing key is kept)",
            config_path.display()
        );
    }
    let credentials = match &c.credentials {
        Some(dir) => format!("credentials = {}", quoted(&dir.display().to_string())),
        None => "# credentials = \"/home/me/.near-credentials\"".to_string(),
    };
    let patience = c.rpc_patience.unwrap_or(30);
    let text = format!(
        r#"# crowdtrain agent configuration, written by `crowdtrain init`.
# Every setting can also be given on the command line (--endpoint, --account, ...);
# the command line wins over this file.

# NEAR JSON-RPC endpoint: the local chain (`make localnet`), a neard sandbox,
# testnet or mainnet.
endpoint = {endpoint}

# Network name: which folder of the credentials to read keys from
# (<credentials>/<network>/<account>.json): localnet, testnet or mainnet.
network = {network}

# Your NEAR account. It pays for funding, bonds and receipts; its key is read from
# near-cli's credentials files, never copied here.
account = {account}

# The run contract you fund or train (an account created by the crowdtrain factory).
run = {run}

# This folder: config.toml, signing_key.json (the key your receipts are signed
# with), outbox/ (calls not yet final on chain) and the provider's training state.
state = {state}

# Folder of near-cli key files; default $NEAR_CREDENTIALS_DIR, else ~/.near-credentials.
{credentials}

# Training device: cpu, or cuda:N on a build with the cuda feature.
device = {device}

# CPU threads for training (0 = all cores).
threads = {threads}

# Seconds to keep retrying an endpoint that does not answer before a call is left
# queued in outbox/ (it is sent, once, by the next crowdtrain command).
rpc_patience_secs = {patience}

# Providers: the address your peer-to-peer endpoint binds (ip:port). `crowdtrain
# register` puts your node id and this address (or public_addr) on the run; other
# providers fetch your blobs there.
listen = {listen}

# The address others dial, if not `listen` (a public IP, a forwarded port).
{public_addr}

# Reach peers through iroh's public relays and address lookup (across NATs on the
# internet); off, peers are dialed only at their registered addresses.
relays = {relays}
"#,
        endpoint = quoted(&endpoint),
        network = quoted(&network),
        account = quoted(account.as_str()),
        run = quoted(run.as_str()),
        state = quoted(&state.display().to_string()),
        device = quoted(&args.device),
        threads = args.threads,
        listen = quoted(&args.listen),
        public_addr = match &args.public_addr {
            Some(a) => format!("public_addr = {}", quoted(a)),
            None => "# public_addr = \"203.0.113.7:4041\"".to_string(),
        },
        relays = args.relays,
    );
    write_atomically(&config_path, text.as_bytes())?;
    println!("wrote {}", config_path.display());

    let key_path = state.join(SigningKey::FILE);
    if key_path.exists() {
        let key = SigningKey::load(&key_path)?;
        println!(
            "kept the receipt-signing key in {}: {}",
            key_path.display(),
            key.public_key()
        );
    } else {
        let key = SigningKey::generate();
        key.save(&key_path, &account)?;
        println!(
            "new receipt-signing key in {}: {}",
            key_path.display(),
            key.public_key()
        );
    }

    let dir = credentials_dir(c.credentials.as_deref());
    match load_account_key(&dir, &network, &account) {
        Ok(k) => println!("your account key: {}", k.path.display()),
        Err(e) => println!("note: {e}"),
    }
    println!(
        "next: `crowdtrain fund --amount 10` to fund the run, or `crowdtrain register` to \
         provide compute; `crowdtrain status` shows where the run stands{}",
        if c.state.is_some() {
            format!(" (add --state {} to each)", state.display())
        } else {
            String::new()
        }
    );
    Ok(())
}
