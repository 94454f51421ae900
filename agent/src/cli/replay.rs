//! `crowdtrain audit --replay ACCOUNT --round R`: re-train one provider's round from
//! public artifacts and judge the receipt it signed (agent/README.md, "Replay audit").
//! The chain says what to replay (the provider's index, its receipts of rounds 1..=R and
//! their base checkpoints, the run's dataset); the files come from a peers folder or from
//! the providers over the swarm. With `--dispute`, a failed replay is disputed on chain
//! with the evidence as its reason.

use super::audit::{AuditArgs, open_audit_swarm, require_runs_spec};
use super::{fee, load_corpus, send, signing_client};
use anyhow::{Context, Result, bail};
use candle_core::Device;
use crowdtrain_agent::Gpt;
use crowdtrain_agent::chain::RunClient;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::provider::{Peers, ProviderInfo, SharedDir};
use crowdtrain_agent::replay::{Claim, ReplayReport, Tolerance, replay};
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_protocol::{Hash32, Receipt, sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What the chain says about the replayed provider.
struct History {
    /// The provider's record (its index keys its data slot).
    provider: ProviderInfo,
    /// Everyone registered: whom to ask for files.
    providers: Vec<ProviderInfo>,
    /// The provider's receipts of rounds 1..=R, oldest first (the last is round R's).
    receipts: Vec<Receipt>,
    /// The run's dataset hash.
    dataset: Hash32,
}

/// Replays `account`'s round `args.round`; an error (non-zero exit) when the receipt
/// does not replay, after disputing it if `--dispute` was given.
pub fn run(args: &AuditArgs, spec: &RunSpec, account: &str) -> Result<()> {
    if args.blobs.is_some() || args.checkpoints.is_some() {
        bail!(
            "--replay reads a peers folder (--peers DIR, e.g. an earlier `audit --save DIR`) \
             or fetches from the providers: drop --blobs/--checkpoints"
        );
    }
    let settings = args.chain.resolve()?;
    let run = settings.run()?;
    let reader = settings.account().unwrap_or_else(|_| run.clone());
    let client = RunClient::new(&settings.endpoint, run.clone(), reader, settings.retry);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let history = rt.block_on(history(&client, spec, account, args.round))?;
    let corpus = load_corpus(args.data.as_deref(), history.dataset)?;
    let claimed = history.receipts.last().expect("history ends with round R");
    let earlier = &history.receipts[..history.receipts.len() - 1];
    println!(
        "replaying {account} (provider {}) round {}{}",
        history.provider.index,
        args.round,
        if earlier.is_empty() {
            String::new()
        } else {
            let rounds: Vec<String> = earlier.iter().map(|r| r.round.to_string()).collect();
            format!(
                " after its rounds {} (they rebuild its optimiser and residual)",
                rounds.join(", ")
            )
        }
    );
    let mut want: Vec<Hash32> = history.receipts.iter().map(|r| r.base_checkpoint).collect();
    want.sort_unstable();
    want.dedup();
    let cfg = spec.config();
    // Seeded, so it holds checkpoint 0 until the replay loads the base into it.
    let model = Gpt::new(cfg.model, spec.init_seed(), &Device::Cpu)?;
    let initial = Checkpoint::from_model(&model)?;
    let (checkpoints, blob) = match &args.peers {
        Some(dir) => fetch(args, spec, &SharedDir::new(dir), &history, &want, initial)?,
        None => {
            let swarm = open_audit_swarm(&settings, &history.providers)?;
            fetch(args, spec, &swarm, &history, &want, initial)?
        }
    };
    let earlier: Vec<(u64, &Checkpoint)> = earlier
        .iter()
        .map(|r| (r.round, &checkpoints[&r.base_checkpoint]))
        .collect();
    let claim = Claim {
        provider: history.provider.index,
        receipt: claimed,
        blob: &blob,
        earlier: &earlier,
    };
    let base = &checkpoints[&claimed.base_checkpoint];
    let report = replay(cfg, &corpus, &model, base, &claim, &Tolerance::default())
        .with_context(|| format!("replaying {account}'s round {}", args.round))?;
    print_report(account, &report);
    if report.passed() {
        println!(
            "round {}: {account}'s receipt is consistent with training on its assigned data",
            args.round
        );
        return Ok(());
    }
    let failed = format!(
        "{account}'s receipt of round {} does not replay: {}",
        args.round,
        report.failures.join("; ")
    );
    if !args.dispute {
        bail!(
            "{failed}\n(as one of the run's auditors, run again with --dispute to void the \
             receipt and slash its bond)"
        );
    }
    let evidence = report.evidence();
    let landed = rt.block_on(async {
        let (signer, up) = signing_client(&settings).await?;
        send(
            &signer,
            up,
            signer.dispute_call(args.round, account, &evidence),
        )
        .await
    });
    let landed = landed.with_context(|| format!("{failed}; disputing it on chain"))?;
    bail!(
        "{failed}\ndisputed on chain (tx {}, {}): the receipt is void and {account}'s bond \
         went to the holders; reason: {evidence}",
        landed.outcome.hash,
        fee(&landed)
    )
}

/// The figures of a replay, one per line.
fn print_report(account: &str, r: &ReplayReport) {
    println!(
        "  cosine of replayed and claimed pseudo-gradient: {:.4}{}",
        r.cosine,
        if r.bit_exact { " (bit-exact)" } else { "" }
    );
    println!("  norm ratio claimed/replayed: {:.3}", r.norm_ratio);
    println!(
        "  loss_start {:.4} claimed, {:.4} replayed; loss_end {:.4} claimed, {:.4} replayed",
        r.loss_start.0, r.loss_start.1, r.loss_end.0, r.loss_end.1
    );
    println!(
        "  tokens {} claimed, {} assigned; inner steps {} claimed, {} in the run",
        r.tokens.0, r.tokens.1, r.inner_steps.0, r.inner_steps.1
    );
    for f in &r.failures {
        eprintln!("  {account}: {f}");
    }
}

/// Reads the provider's record and its receipts of rounds 1..=`round` from the chain.
async fn history(client: &RunClient, spec: &RunSpec, account: &str, round: u64) -> Result<History> {
    let run = client.run();
    let info = client.run_info().await?;
    require_runs_spec(&info, spec, run)?;
    let providers: Vec<ProviderInfo> = client
        .providers()
        .await?
        .into_iter()
        .map(ProviderInfo::from)
        .collect();
    let Some(provider) = providers.iter().find(|p| p.account == account).cloned() else {
        bail!("{account} is not a provider of {run}: check the account id (`crowdtrain status`)");
    };
    let mut receipts = Vec::new();
    for r in 1..=round {
        let stored = client.receipts(r).await?;
        if let Some(s) = stored.into_iter().find(|s| s.receipt.provider == account) {
            receipts.push(s.receipt);
        }
    }
    if receipts.last().is_none_or(|r| r.round != round) {
        bail!(
            "{account} has no receipt in round {round} of {run}: nothing to replay \
             (`crowdtrain status` lists the rounds)"
        );
    }
    Ok(History {
        provider,
        providers,
        receipts,
        dataset: info.config.dataset_hash,
    })
}

/// Fetches the base checkpoints `want` and the claimed blob from `peers` until all
/// arrived or `--wait` passed; checkpoint 0 is `initial`, rebuilt from the spec's seed.
fn fetch<P: Peers>(
    args: &AuditArgs,
    spec: &RunSpec,
    peers: &P,
    history: &History,
    want: &[Hash32],
    initial: Checkpoint,
) -> Result<(BTreeMap<Hash32, Checkpoint>, Vec<u8>)> {
    let cfg = spec.config().model;
    let initial_hash = initial.hash()?;
    let mut checkpoints = BTreeMap::new();
    if want.contains(&initial_hash) {
        checkpoints.insert(initial_hash, initial);
    }
    let claimed = history.receipts.last().expect("history ends with round R");
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut blob = None;
    loop {
        for &hash in want {
            if checkpoints.contains_key(&hash) {
                continue;
            }
            if let Some(bytes) = peers.fetch_checkpoint(hash, &history.providers)? {
                match Checkpoint::from_bytes(&bytes, &cfg, hash) {
                    Ok(c) => {
                        checkpoints.insert(hash, c);
                    }
                    Err(e) => tracing::warn!(%hash, %e, "checkpoint from peers refused"),
                }
            }
        }
        if blob.is_none() {
            blob = peers
                .round_blobs(claimed.round, &history.providers)?
                .into_iter()
                .find(|b| sha256(&b.bytes) == claimed.blob)
                .map(|b| b.bytes.to_vec());
        }
        let missing: Vec<String> = want
            .iter()
            .filter(|h| !checkpoints.contains_key(h))
            .map(ToString::to_string)
            .collect();
        if let (true, Some(blob)) = (missing.is_empty(), &blob) {
            return Ok((checkpoints, blob.clone()));
        }
        if Instant::now() > deadline {
            let mut absent = missing
                .iter()
                .map(|h| format!("checkpoint {h}"))
                .collect::<Vec<_>>();
            if blob.is_none() {
                absent.push(format!("round {}'s blob {}", claimed.round, claimed.blob));
            }
            bail!(
                "within {} s nobody served {}: a provider that does not serve its blob can be \
                 disputed for that alone; for old rounds use a folder kept by `audit --save`",
                args.wait,
                absent.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
