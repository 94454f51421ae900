//! `crowdtrain train` (alias `join`): train a run on chain as one of its providers. Reads the settings
//! `crowdtrain init` wrote, refuses a spec file whose hash is not the run's
//! `model_spec_hash`, then runs the provider loop (train, serve the blob, aggregate,
//! post the signed receipt, finalize) round after round, one line per step.

use super::settings::ChainArgs;
use anyhow::{Context, Result};
use clap::Args;
use crowdtrain_agent::chain::credentials::{credentials_dir, load_account_key};
use crowdtrain_agent::chain::{BlockingRunChain, Outbox, RunClient};
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::provider::{Progress, Provider, ProviderOptions, SharedDir};
use crowdtrain_agent::spec::RunSpec;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Join a run as a provider and train it: the settings of `crowdtrain init`, the run's
/// spec file and a peers folder shared with the other providers.
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The run's spec file (JSON); its hash must be the run's model_spec_hash.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// Folder shared with the other providers: blobs/round-R/ and checkpoints/.
    #[arg(long, value_name = "DIR")]
    peers: PathBuf,
    /// Stop after this many more finalized rounds [default: run until stopped].
    #[arg(long, value_name = "N")]
    rounds: Option<u64>,
    /// Seconds to wait for the other providers' blobs before aggregating without them.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    gather_timeout: u64,
    /// Where to train: cpu, cuda or cuda:N (`device` in config.toml) [default: cpu].
    #[arg(long)]
    device: Option<String>,
    /// CPU threads for training, 0 = all cores (`threads` in config.toml) [default: 0].
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Sizes the thread pool that training runs on (candle's CPU kernels and ours), before
/// any of it starts. The result's bits do not depend on it.
fn set_threads(threads: usize) -> Result<()> {
    if threads == 0 {
        return Ok(());
    }
    // candle sizes its GEMMs by RAYON_NUM_THREADS, not by rayon's pool.
    // SAFETY: called from `main` before any thread or runtime exists.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("sizing the training thread pool")?;
    Ok(())
}

/// Opens the provider and trains until `--rounds` more rounds are finalized.
/// Call from `main` before any thread starts (it may set RAYON_NUM_THREADS) and outside
/// any async runtime: the chain client blocks on a runtime of its own.
pub fn run(args: &TrainArgs) -> Result<()> {
    let settings = args.chain.resolve()?;
    set_threads(args.threads.unwrap_or(settings.threads))?;
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    let spec = RunSpec::from_json(&text)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    let account = settings.account()?;
    let key = load_account_key(
        &credentials_dir(settings.credentials.as_deref()),
        &settings.network,
        &account,
    )?;
    let outbox = Outbox::open(&settings.outbox_dir())?;
    let client = RunClient::new(&settings.endpoint, settings.run()?, account, settings.retry)
        .with_signer(key, outbox);
    let chain = BlockingRunChain::new(client).context("starting the chain client")?;
    let device = crowdtrain_agent::model::device_by_name(
        args.device.as_deref().unwrap_or(&settings.device),
    )?;
    let corpus = Arc::new(Corpus::kjv().context("loading the committed corpus")?);
    let options = ProviderOptions {
        gather_timeout: Duration::from_secs(args.gather_timeout),
        ..ProviderOptions::default()
    };
    let run = settings.run.clone().unwrap_or_default();
    let mut provider = Provider::open(
        &settings.state,
        spec,
        chain,
        SharedDir::new(&args.peers),
        corpus,
        &device,
        options,
    )
    .with_context(|| {
        format!(
            "joining run {run} from {} (run `crowdtrain register` first if you have not)",
            settings.state.display()
        )
    })?;
    let from = provider.state().base.round;
    let last = args.rounds.map_or(u64::MAX, |n| from + n);
    println!(
        "joined run {run} as {} at checkpoint {} (round {from}); spec {}",
        settings.account.as_deref().unwrap_or_default(),
        provider.state().base.hash,
        provider.spec().hash()
    );
    provider
        .run_until(last, &|| false, &mut |p| println!("{}", line(p)))
        .with_context(|| format!("training run {run}"))?;
    Ok(())
}

/// One progress line, for people and for scripts (`round R <what>: ...`).
fn line(p: &Progress) -> String {
    match p {
        Progress::Waiting(why) => format!("waiting: {why}"),
        Progress::Trained {
            round,
            blob,
            blob_bytes,
            tokens,
            loss,
        } => format!(
            "round {round} trained: loss {:.4} -> {:.4}, {tokens} tokens, blob {blob_bytes} bytes ({blob})",
            loss.0, loss.1
        ),
        Progress::Posted {
            round,
            result,
            blobs,
        } => format!("round {round} receipt posted: checkpoint {result} from {blobs} blobs"),
        Progress::Finalized {
            round,
            checkpoint,
            agreed,
        } => format!(
            "round {round} finalized: checkpoint {checkpoint} ({})",
            if *agreed {
                "the one we computed"
            } else {
                "NOT the one we computed; we follow the chain"
            }
        ),
    }
}
