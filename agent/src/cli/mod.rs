//! The chain commands of `crowdtrain`: init, register, exit, fund, claim, status,
//! outbox, and the run operator's spec, create-run, settle, pay-revenue. Each resolves its settings, builds a [`RunClient`] and prints what
//! happened in words a newcomer can act on.

pub mod audit;
mod init;
mod money;
mod operate;
mod outbox;
mod provider;
mod replay;
pub mod settings;
mod status;
pub mod train;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use crowdtrain_agent::chain::credentials::{credentials_dir, load_account_key};
use crowdtrain_agent::chain::{ChainError, Outbox, RunClient};
use crowdtrain_agent::data::{Corpus, KJV_PATH};
use crowdtrain_protocol::Hash32;
use settings::{ChainArgs, Settings};
use std::path::{Path, PathBuf};

/// Exit status when a call is safely queued but the endpoint did not answer
/// (sysexits' EX_TEMPFAIL: try again later).
pub const EXIT_QUEUED: i32 = 75;

/// The commands that talk to a run on NEAR.
#[derive(Subcommand)]
pub enum ChainCommand {
    /// Set up this machine for a run: writes <state>/config.toml (commented; every
    /// flag of every command can be set there) and a new receipt-signing key
    /// <state>/signing_key.json. Start here.
    Init(init::InitArgs),
    /// Become a provider of the run: posts the bond and puts your receipt-signing
    /// key and peer node id on the run contract.
    Register(provider::RegisterArgs),
    /// Stop providing: the first call stops your receipts and starts the challenge
    /// window; call it again after the window to get the bond back.
    Exit {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Fund the run: deposit NEAR and receive shares 1:1 (refundable if the goal is
    /// missed by the deadline).
    Fund(money::FundArgs),
    /// Send yourself your pending royalties and compute payments.
    Claim {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Show the run (phase, funding, rounds) and you in it (shares, pending
    /// payments, provider record, receipts, queued calls).
    Status(status::StatusArgs),
    /// Send the calls queued in <state>/outbox (left by an unreachable endpoint or
    /// a crash), in order, once each; `--list` only shows them.
    Outbox(outbox::OutboxArgs),
    /// Write a run's spec file (model, H, batch, learning rates, compression): what
    /// every provider trains by; its hash goes on chain as the run's model_spec_hash.
    Spec(operate::SpecArgs),
    /// Create a run through a factory with a spec file (you become its owner).
    CreateRun(operate::CreateRunArgs),
    /// Settle a finalized round after its challenge window: its providers' payments
    /// and compute shares become claimable (anyone may call it).
    Settle(operate::SettleArgs),
    /// Pay inference revenue into the run, split pro rata over every share.
    PayRevenue(operate::PayRevenueArgs),
}

/// Runs a chain command; a call left queued exits with [`EXIT_QUEUED`].
pub fn run(command: ChainCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        match command {
            ChainCommand::Init(args) => init::run(&args),
            ChainCommand::Register(args) => provider::register(&args).await,
            ChainCommand::Exit { chain } => provider::exit(&chain).await,
            ChainCommand::Fund(args) => money::fund(&args).await,
            ChainCommand::Claim { chain } => money::claim(&chain).await,
            ChainCommand::Status(args) => status::run(&args).await,
            ChainCommand::Outbox(args) => outbox::run(&args).await,
            ChainCommand::Spec(args) => operate::spec(&args),
            ChainCommand::CreateRun(args) => operate::create_run(&args).await,
            ChainCommand::Settle(args) => operate::settle(&args).await,
            ChainCommand::PayRevenue(args) => operate::pay_revenue(&args).await,
        }
    });
    if let Err(e) = &result
        && let Some(ChainError::Queued { .. }) = e.downcast_ref::<ChainError>()
    {
        eprintln!("{e}");
        std::process::exit(EXIT_QUEUED);
    }
    result
}

/// A read-only client (views need no key).
pub fn read_client(settings: &Settings) -> Result<RunClient> {
    let account = settings.account()?;
    Ok(RunClient::new(
        &settings.endpoint,
        settings.run()?,
        account,
        settings.retry,
    ))
}

/// A client that can sign, with the outbox of the state directory; whatever an
/// earlier run left queued is sent first (and printed).
pub async fn signing_client(settings: &Settings) -> Result<(RunClient, bool)> {
    let account = settings.account()?;
    let dir = credentials_dir(settings.credentials.as_deref());
    let key = load_account_key(&dir, &settings.network, &account)?;
    let outbox = Outbox::open(&settings.outbox_dir())?;
    let client = read_client(settings)?.with_signer(key, outbox);
    let drained = client.drain().await?;
    for landed in &drained.landed {
        println!(
            "sent queued call #{} ({}): tx {}{}",
            landed.seq,
            landed.call.label,
            landed.outcome.hash,
            match &landed.outcome.result {
                Ok(_) => String::new(),
                Err(m) => format!(", refused: {m}"),
            }
        );
    }
    for (seq, label, reason) in &drained.rejected {
        println!("queued call #{seq} ({label}) was rejected by the chain: {reason}");
    }
    if drained.stalled.is_some() {
        return Ok((client, false));
    }
    // Nothing was queued, so nothing told us yet whether the endpoint answers.
    match client.balance(client.account()).await {
        Ok(_) => Ok((client, true)),
        Err(ChainError::Unreachable { .. }) => Ok((client, false)),
        Err(e) => Err(e.into()),
    }
}

/// The run's dataset: the file `data` (or the bundled KJV corpus) if its sha256 is
/// `expected`, the run's `dataset_hash`.
pub fn load_corpus(data: Option<&Path>, expected: Hash32) -> Result<Corpus> {
    let path = data.map_or_else(|| PathBuf::from(KJV_PATH), Path::to_path_buf);
    if data.is_none() && !path.exists() {
        bail!(
            "the bundled corpus is not at {} (this binary was built from another checkout): \
             pass --data FILE, the run's dataset file (sha256 {expected})",
            path.display()
        );
    }
    Corpus::from_file(&path, expected)
        .with_context(|| format!("loading the run's dataset from {}", path.display()))
}

/// Sends `call` if the endpoint answered the drain, else only queues it.
pub async fn send(
    client: &RunClient,
    endpoint_up: bool,
    call: crowdtrain_agent::chain::Call,
) -> Result<crowdtrain_agent::chain::Landed> {
    if endpoint_up {
        return Ok(client.submit(call).await?);
    }
    let entry = client.enqueue(call)?;
    Err(ChainError::Queued {
        label: entry.call.label,
        endpoint: client.endpoint().to_string(),
        outbox: client.queued_dir(),
        reason: "it does not answer".into(),
    }
    .into())
}

/// The fee of a landed call, for people.
pub fn fee(landed: &crowdtrain_agent::chain::Landed) -> String {
    format!(
        "{} Tgas, fee {} yoctoNEAR",
        landed.outcome.gas_burnt / 1_000_000_000_000,
        landed.outcome.tokens_burnt
    )
}
