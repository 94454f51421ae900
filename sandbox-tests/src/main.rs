//! `crowdtrain-localnet`: runs the local chain behind NEAR JSON-RPC on 127.0.0.1.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use crowdtrain_localnet::{LocalNet, LocalNetOptions};

/// A one-node NEAR chain (nearcore's VM and fees) for the crowdtrain agent and tests.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3030)]
    port: u16,
    /// Directory for state and the root key; in memory if omitted.
    #[arg(long)]
    home: Option<PathBuf>,
    /// The crowdtrain factory's wasm (target/contracts/crowdtrain_factory.wasm): put it
    /// on `factory.test.near` at start, so runs can be created at once.
    #[arg(long, value_name = "WASM")]
    factory: Option<PathBuf>,
}

/// NEAR the factory account starts with (it pays for nothing itself: creators attach
/// each run's storage).
const FACTORY_BALANCE: u128 = 50 * 10u128.pow(24);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let net = LocalNet::start(LocalNetOptions {
        port: args.port,
        home: args.home.clone(),
    })
    .await
    .context("starting the local chain")?;
    println!(
        "crowdtrain-localnet serving NEAR JSON-RPC at {}",
        net.rpc_url()
    );
    println!("root account: {}", net.root_account());
    if let Some(path) = &args.factory {
        let wasm = std::fs::read(path).with_context(|| {
            format!(
                "reading {} (build it with `make contracts`)",
                path.display()
            )
        })?;
        let factory = net
            .deploy_contract("factory", &wasm, "new", FACTORY_BALANCE)
            .context("deploying the factory")?;
        println!("crowdtrain factory: {factory}");
    }
    match net.key_file() {
        Some(path) => println!("root key file: {}", path.display()),
        None => println!(
            "root secret key (in-memory chain): {}",
            net.root_secret_key()
        ),
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    net.stop().await;
    Ok(())
}
