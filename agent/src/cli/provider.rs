//! `crowdtrain register` and `crowdtrain exit`: joining and leaving as a provider.

use super::settings::{ChainArgs, Settings};
use super::{fee, send, signing_client};
use anyhow::{Result, bail};
use clap::Args;
use crowdtrain_agent::chain::SigningKey;
use crowdtrain_agent::chain::near_amount::{format_near, parse_near};
use crowdtrain_agent::chain::run_contract::ProviderStatus;
use crowdtrain_agent::swarm::node;

/// Storage the provider record may take beyond the share account, attached on top
/// of the bond (the contract sends back what it does not use).
const STORAGE_MARGIN: u128 = 10u128.pow(22); // 0.01 NEAR

/// `crowdtrain register`.
#[derive(Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Node id other providers reach you at [default: this state directory's node key
    /// and the address in config.toml: `<key>@<public_addr or listen>`, or `<key>` with
    /// relays on].
    #[arg(long)]
    node_id: Option<String>,
    /// NEAR to attach instead of the bond plus storage the agent computes (the
    /// contract returns the excess).
    #[arg(long, value_name = "NEAR")]
    deposit: Option<String>,
}

/// Registers the account as a provider with the state directory's signing key.
pub async fn register(args: &RegisterArgs) -> Result<()> {
    let settings = args.chain.resolve()?;
    let signing = SigningKey::load(&settings.signing_key_path())?;
    let (client, up) = signing_client(&settings).await?;
    let account = client.account().clone();
    let node_id = match &args.node_id {
        Some(id) => id.clone(),
        None => own_node_id(&settings)?,
    };
    let attach = match &args.deposit {
        Some(text) => parse_near(text)?,
        None if up => {
            let info = client.run_info().await?;
            let funding = client.funding_status().await?;
            info.config.provider_bond.0 + funding.storage_cost.0 + STORAGE_MARGIN
        }
        None => bail!(
            "the endpoint {} does not answer, so the bond cannot be read: try again later or pass --deposit NEAR",
            client.endpoint()
        ),
    };
    if up {
        let balance = client.balance(&account).await?;
        if balance < attach {
            bail!(
                "registering attaches {} (the bond plus storage), but {account} has {}: add NEAR to the account first",
                format_near(attach),
                format_near(balance)
            );
        }
    }
    let key = signing.public_key().to_string();
    let landed = send(&client, up, client.register_call(&key, &node_id, attach)).await?;
    println!(
        "registered {account} as a provider of {}: signing key {key}, node id {node_id} \
         (tx {}, {})",
        client.run(),
        landed.outcome.hash,
        fee(&landed)
    );
    println!("next: `crowdtrain status` shows your provider record");
    Ok(())
}

/// This machine's node id: the node key in the state directory (made on first use) and
/// where peers dial it.
fn own_node_id(settings: &Settings) -> Result<String> {
    let key = node::load_or_create(&settings.state)?;
    let p2p = &settings.p2p;
    let addr = match (p2p.public_addr, p2p.relays) {
        (Some(a), _) => Some(a),
        (None, true) => None,
        (None, false) if p2p.listen.ip().is_unspecified() => bail!(
            "listen = {} binds every interface, so peers cannot tell where to dial you: set \
             public_addr in config.toml (or `crowdtrain init --public-addr IP:PORT`), or turn \
             relays on",
            p2p.listen
        ),
        (None, false) => Some(p2p.listen),
    };
    Ok(node::node_id(key.public(), addr))
}

/// Starts or completes leaving the provider set.
pub async fn exit(chain: &ChainArgs) -> Result<()> {
    let settings = chain.resolve()?;
    let (client, up) = signing_client(&settings).await?;
    let account = client.account().clone();
    if up {
        let Some(me) = client.provider(&account).await? else {
            bail!(
                "{account} is not a registered provider of {}: nothing to exit (to provide compute, run `crowdtrain register`)",
                client.run()
            );
        };
        if let ProviderStatus::Exiting { since_ms } = me.status {
            let window = client.run_info().await?.config.challenge_window_ms.0;
            println!(
                "already exiting since {since_ms} (unix ms); the bond unlocks at {} (unix ms)",
                since_ms + window
            );
        }
    }
    let landed = send(&client, up, client.exit_call()).await?;
    let returned =
        crowdtrain_agent::chain::run_contract::events(&landed.outcome.logs, "provider_exited");
    match returned.first() {
        Some(e) => println!(
            "exited: {} returned (bond and storage) to {account} (tx {})",
            e["returned"]
                .as_str()
                .and_then(|s| s.parse::<u128>().ok())
                .map_or_else(|| "the bond".into(), format_near),
            landed.outcome.hash
        ),
        None => {
            let unlock = crowdtrain_agent::chain::run_contract::events(
                &landed.outcome.logs,
                "provider_exiting",
            );
            let at = unlock
                .first()
                .and_then(|e| e["bond_unlocks_at_ms"].as_str().map(str::to_string))
                .unwrap_or_default();
            println!(
                "exiting: {account} posts no more receipts; the bond unlocks at {at} (unix ms): \
                 run `crowdtrain exit` again after that (tx {})",
                landed.outcome.hash
            );
        }
    }
    Ok(())
}
