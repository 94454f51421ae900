//! `crowdtrain train` (alias `join`): train a run on chain as one of its providers. Reads the settings
//! `crowdtrain init` wrote, refuses a spec file whose hash is not the run's
//! `model_spec_hash`, then runs the provider loop (train, serve the blob, aggregate,
//! post the signed receipt, finalize) round after round, one line per step.

use super::settings::{ChainArgs, Settings};
use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::chain::credentials::{credentials_dir, load_account_key};
use crowdtrain_agent::chain::{BlockingRunChain, Outbox, RunClient};
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::provider::{Peers, Progress, Provider, ProviderOptions, RunChain, SharedDir};
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_agent::swarm::{Swarm, SwarmConfig, node};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Join a run as a provider and train it: the settings of `crowdtrain init` and the
/// run's spec file; blobs go peer to peer (or through a shared folder with --peers).
#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The run's spec file (JSON); its hash must be the run's model_spec_hash.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// Exchange blobs through this folder shared with the other providers
    /// (blobs/round-R/, checkpoints/) instead of peer to peer over the network.
    #[arg(long, value_name = "DIR")]
    peers: Option<PathBuf>,
    /// Address the peer-to-peer endpoint binds [default: `listen` in config.toml]; it
    /// must be where your registered node id says you are.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Rounds of blobs kept on disk and served to auditors; older ones are dropped.
    #[arg(long, value_name = "N", default_value_t = 4)]
    keep_rounds: u64,
    /// After the last round, keep serving blobs and checkpoints to auditors and late
    /// joiners for this many seconds (or until stopped).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    serve_after: u64,
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
    /// The run's dataset file (text, or gzip); its sha256 must be the run's
    /// dataset_hash [default: the bundled KJV corpus].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
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
    let terms = chain.terms().context("reading the run's terms")?;
    let corpus = Arc::new(super::load_corpus(
        args.data.as_deref(),
        terms.dataset_hash,
    )?);
    match &args.peers {
        Some(dir) => train_with(args, &settings, spec, chain, SharedDir::new(dir), corpus),
        None => {
            let swarm = open_swarm(args, &settings, &spec, &chain)?;
            train_with(args, &settings, spec, chain, swarm, corpus)
        }
    }
}

/// Joins the run's swarm as the node this account registered.
fn open_swarm(
    args: &TrainArgs,
    settings: &Settings,
    spec: &RunSpec,
    chain: &BlockingRunChain,
) -> Result<Swarm> {
    let node_key = node::load_or_create(&settings.state)?;
    let providers = chain.providers().context("reading the run's providers")?;
    let account = settings.account.clone().unwrap_or_default();
    let Some(me) = providers.iter().find(|p| p.account == account) else {
        bail!(
            "{account} is not a registered provider of {}: run `crowdtrain register` first",
            settings.run.as_deref().unwrap_or_default()
        );
    };
    match node::parse_node_id(&me.node_id) {
        Some((id, _)) if id == node_key.public() => {}
        Some((id, _)) => bail!(
            "{account} registered node id {id}, but this state directory's node key is {}: \
             train from the state directory you registered from",
            node_key.public()
        ),
        None => bail!(
            "{account} registered node id {:?}, which peers cannot dial: train with --peers DIR \
             (a shared folder), or exit and register again without --node-id",
            me.node_id
        ),
    }
    let config = SwarmConfig {
        listen: args.listen.unwrap_or(settings.p2p.listen),
        relays: settings.p2p.relays,
        keep_rounds: args.keep_rounds,
        // A compressed pseudo-gradient is at most about a byte a parameter (int8 plus
        // block scales); twice that and a MiB leaves room and stops a flood.
        max_blob_bytes: 2 * spec.config().model.param_count() as u64 + (1 << 20),
        ..SwarmConfig::default()
    };
    let swarm = Swarm::open(
        settings.run.as_deref().unwrap_or_default(),
        node_key,
        &settings.state.join("swarm"),
        &providers,
        config,
    )?;
    println!(
        "peer-to-peer: node {} on {}",
        swarm.id(),
        swarm
            .bound()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(swarm)
}

/// Opens the provider over `peers` and trains until `--rounds` more rounds finalize.
fn train_with<P: Peers>(
    args: &TrainArgs,
    settings: &Settings,
    spec: RunSpec,
    chain: BlockingRunChain,
    peers: P,
    corpus: Arc<Corpus>,
) -> Result<()> {
    let device = crowdtrain_agent::model::device_by_name(
        args.device.as_deref().unwrap_or(&settings.device),
    )?;
    let options = ProviderOptions {
        gather_timeout: Duration::from_secs(args.gather_timeout),
        ..ProviderOptions::default()
    };
    let run = settings.run.clone().unwrap_or_default();
    let mut provider = Provider::open(
        &settings.state,
        spec,
        chain,
        peers,
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
    // Each line ends with the seconds since the previous one: train, then gather +
    // aggregate + post, then the wait for the chain.
    let mut since = std::time::Instant::now();
    provider
        .run_until(last, &|| false, &mut |p| {
            println!("{} [+{:.2}s]", line(p), since.elapsed().as_secs_f32());
            since = std::time::Instant::now();
        })
        .with_context(|| format!("training run {run}"))?;
    if args.serve_after > 0 {
        println!(
            "done training; serving blobs and checkpoints for {} s (stop with Ctrl-C)",
            args.serve_after
        );
        std::thread::sleep(Duration::from_secs(args.serve_after));
    }
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
            aggregate_secs,
        } => format!(
            "round {round} receipt posted: checkpoint {result} from {blobs} blobs (aggregated in {aggregate_secs:.2}s)"
        ),
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
