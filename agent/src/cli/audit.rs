//! `crowdtrain audit`: recompute one round from checkpoint R−1 and the round's blobs and
//! compare the result with the chain's. The hashes to check against come from the run
//! contract (checkpoint R−1, checkpoint R and the round's blob-set digest) unless they
//! are given on the command line, which lets an auditor check artifacts offline. The
//! files come from a folder, or — with none given — from the providers themselves, over
//! the swarm (the auditor joins it as a node of its own, registered nowhere).

use super::settings::{ChainArgs, Settings};
use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::audit::{AuditReport, Expected, audit_from_dirs, audit_round};
use crowdtrain_agent::chain::{RunClient, RunInfo};
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::provider::{Peers, ProviderInfo, SharedDir};
use crowdtrain_agent::round::{PeerBlob, aggregate};
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_agent::swarm::{Swarm, SwarmConfig, node};
use crowdtrain_protocol::{Hash32, blob_set_digest, sha256};
use near_primitives::types::AccountId;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Recompute round R's checkpoint from public artifacts and compare it with the chain's.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Where the run is (`--endpoint`, `--run`, or `crowdtrain init`'s config.toml);
    /// not needed when `--base` and `--expect` are given.
    #[command(flatten)]
    pub chain: ChainArgs,
    /// The chain round to audit (1 = the first trained round).
    #[arg(long)]
    pub round: u64,
    /// The run's spec file (JSON; its hash must be the run's model_spec_hash).
    #[arg(long)]
    pub spec: PathBuf,
    /// A peers folder shared with the providers (its `blobs/round-R/` and
    /// `checkpoints/`); shorthand for `--blobs DIR --checkpoints DIR`.
    #[arg(long, value_name = "DIR")]
    pub peers: Option<PathBuf>,
    /// Folder with the round's `<sha256>.blob` files (or a peers folder).
    #[arg(long, value_name = "DIR")]
    pub blobs: Option<PathBuf>,
    /// Folder with `<sha256>.safetensors` checkpoint files (or a peers folder).
    #[arg(long, value_name = "DIR")]
    pub checkpoints: Option<PathBuf>,
    /// Hash of the round's base checkpoint (R−1's) [default: the chain's].
    #[arg(long, value_parser = parse_hash, requires = "expect")]
    pub base: Option<Hash32>,
    /// Hash of the checkpoint finalized for round R [default: the chain's].
    #[arg(long, value_parser = parse_hash, requires = "base")]
    pub expect: Option<Hash32>,
    /// The blob-set digest finalized for round R [default: the chain's, when the
    /// hashes come from the chain].
    #[arg(long, value_parser = parse_hash)]
    pub blob_set: Option<Hash32>,
    /// Without a folder: seconds to wait for the providers to serve the round's files.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub wait: u64,
    /// Keep what was fetched and recomputed here (a peers-folder layout: checkpoints/,
    /// blobs/round-R/), as evidence or for later offline audits.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Instead of the aggregation, replay this provider's training of the round: re-run
    /// its inner steps from the round's base on its assigned data and compare the result
    /// with the blob it served and the receipt it signed (a statistical test; see
    /// agent/README.md, "Replay audit").
    #[arg(long, value_name = "ACCOUNT_ID")]
    pub replay: Option<String>,
    /// With --replay: if the receipt does not replay, dispute it on chain (you must be
    /// one of the run's auditors, inside the round's challenge window); the evidence is
    /// the dispute's reason.
    #[arg(long, requires = "replay")]
    pub dispute: bool,
    /// The run's dataset file, for --replay; its sha256 must be the run's dataset_hash
    /// [default: the bundled KJV corpus].
    #[arg(long, value_name = "FILE", requires = "replay")]
    pub data: Option<PathBuf>,
}

/// A 64-hex-character sha256 from the command line.
fn parse_hash(s: &str) -> Result<Hash32, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not a sha256 hash (64 hex characters)"))
}

/// Runs the audit; an error (non-zero exit) names every difference found.
pub fn run(args: &AuditArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    let spec = RunSpec::from_json(&text)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    if args.round == 0 {
        bail!("round 0 is the run's initial checkpoint: audit rounds from 1");
    }
    if let Some(account) = &args.replay {
        return super::replay::run(args, &spec, account);
    }
    let files = (
        args.blobs.as_ref().or(args.peers.as_ref()),
        args.checkpoints.as_ref().or(args.peers.as_ref()),
    );
    let (report, expected, source) = match files {
        (Some(blobs), Some(checkpoints)) => {
            let (expected, source) = match (args.base, args.expect) {
                (Some(base), Some(checkpoint)) => (
                    Expected {
                        base,
                        checkpoint,
                        blob_set: args.blob_set,
                        blobs: None,
                    },
                    "the command line",
                ),
                _ => (from_chain(args, &spec)?.expected, "the chain"),
            };
            let report = audit_from_dirs(&spec, args.round, checkpoints, blobs, &expected)
                .with_context(|| format!("auditing round {}", args.round))?;
            (report, expected, source)
        }
        (None, None) => {
            let view = from_chain(args, &spec)?;
            let report = from_swarm(args, &spec, &view)?;
            (report, view.expected, "the chain")
        }
        _ => bail!(
            "pass both --blobs DIR and --checkpoints DIR (or --peers DIR for a shared folder), \
             or neither to fetch the files from the providers"
        ),
    };
    for r in &report.rejected {
        eprintln!("left out: blob {} ({})", r.peer, r.reason);
    }
    println!(
        "round {}: spec {}; {} blobs (set {}) on base {} give checkpoint {}",
        report.round,
        spec.hash(),
        report.blobs.len(),
        report.blob_set,
        expected.base,
        report.recomputed
    );
    if !report.passed() {
        let list: Vec<String> = report.findings.iter().map(|f| format!("  - {f}")).collect();
        bail!(
            "round {} does not check out against {source}:\n{}",
            report.round,
            list.join("\n")
        );
    }
    println!("round {}: matches the chain", report.round);
    Ok(())
}

/// What the chain says of a round: the hashes to check, who provides, which blobs the
/// receipts name.
struct ChainView {
    expected: Expected,
    providers: Vec<ProviderInfo>,
    receipt_blobs: Vec<Hash32>,
}

/// Joins the swarm, fetches the round's base checkpoint and blobs until the blobs make
/// the finalized blob set (or `--wait` passes), and recomputes the round.
fn from_swarm(args: &AuditArgs, spec: &RunSpec, view: &ChainView) -> Result<AuditReport> {
    let settings = args.chain.resolve()?;
    let swarm = open_audit_swarm(&settings, &view.providers)?;
    let (round, expected) = (args.round, &view.expected);
    let cfg = spec.config().model;
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut base = None;
    let blobs = loop {
        if base.is_none()
            && let Some(bytes) = swarm.fetch_checkpoint(expected.base, &view.providers)?
        {
            match Checkpoint::from_bytes(&bytes, &cfg, expected.base) {
                Ok(c) => base = Some((c, bytes)),
                Err(e) => tracing::warn!(%e, "base checkpoint from peers refused"),
            }
        }
        let blobs = swarm.round_blobs(round, &view.providers)?;
        let chosen = finalized_subset(&blobs, expected.blob_set, &view.receipt_blobs);
        if base.is_some() && chosen.is_some() {
            break chosen.unwrap_or_default();
        }
        if Instant::now() > deadline {
            if base.is_none() {
                bail!(
                    "no provider served round {round}'s base checkpoint {} within {} s",
                    expected.base,
                    args.wait
                );
            }
            // Audit what arrived: the report names the difference, and who did not serve.
            let heard = swarm.announced(round);
            for p in &view.providers {
                let Some((id, _)) = node::parse_node_id(&p.node_id) else {
                    eprintln!(
                        "{}: its node id {:?} cannot be dialed",
                        p.account, p.node_id
                    );
                    continue;
                };
                match heard.get(&id) {
                    None => eprintln!("{}: announced no blob for round {round}", p.account),
                    Some(h) if !blobs.iter().any(|b| sha256(&b.bytes) == *h) => {
                        eprintln!("{}: announced blob {h} but did not serve it", p.account)
                    }
                    Some(_) => {}
                }
            }
            break blobs;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let (base, base_bytes) = base.expect("the loop leaves only with a base");
    let report = audit_round(spec, round, &base, &blobs, expected)
        .with_context(|| format!("auditing round {round}"))?;
    if let Some(dir) = &args.save {
        let keep = SharedDir::new(dir);
        keep.publish_checkpoint(expected.base, base_bytes.into())?;
        for b in &blobs {
            keep.publish_blob(round, b.bytes.clone())?;
        }
        if report.passed() {
            let agg = aggregate(spec.config(), round, &base, &blobs)?;
            keep.publish_checkpoint(agg.hash, agg.checkpoint.to_bytes()?.into())?;
        }
    }
    Ok(report)
}

/// Joins the run's swarm as an auditor: a node of its own (<state>/node_key), registered
/// nowhere, on any free port of the configured interface (an auditor only dials out).
pub(super) fn open_audit_swarm(settings: &Settings, providers: &[ProviderInfo]) -> Result<Swarm> {
    let run = settings.run()?;
    let key = node::load_or_create(&settings.state)?;
    let config = SwarmConfig {
        listen: std::net::SocketAddr::new(settings.p2p.listen.ip(), 0),
        relays: settings.p2p.relays,
        ..SwarmConfig::default()
    };
    Ok(Swarm::open(
        run.as_str(),
        key,
        &settings.state.join("audit-swarm"),
        providers,
        config,
    )?)
}

/// Refuses a spec file that is not the one run `run` was created with.
pub(super) fn require_runs_spec(info: &RunInfo, spec: &RunSpec, run: &AccountId) -> Result<()> {
    if info.config.model_spec_hash != spec.hash() {
        bail!(
            "the spec file hashes to {}, but run {run} was created with model_spec_hash {}: \
             audit with the run's own spec file",
            spec.hash(),
            info.config.model_spec_hash
        );
    }
    Ok(())
}

/// The blobs that make the finalized blob set: all that arrived, or those the receipts
/// name; `None` while neither does.
fn finalized_subset(
    blobs: &[PeerBlob],
    blob_set: Option<Hash32>,
    receipt_blobs: &[Hash32],
) -> Option<Vec<PeerBlob>> {
    let want = blob_set?;
    let digest = |set: &[PeerBlob]| {
        let mut hashes: Vec<Hash32> = set.iter().map(|b| sha256(&b.bytes)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        blob_set_digest(&hashes)
    };
    if digest(blobs) == want {
        return Some(blobs.to_vec());
    }
    let named: Vec<PeerBlob> = blobs
        .iter()
        .filter(|b| receipt_blobs.contains(&sha256(&b.bytes)))
        .cloned()
        .collect();
    (digest(&named) == want).then_some(named)
}

/// The hashes the run contract holds for round `args.round`: its base, its result and
/// its blob-set digest. Refuses a spec that is not the run's.
fn from_chain(args: &AuditArgs, spec: &RunSpec) -> Result<ChainView> {
    let settings = args.chain.resolve()?;
    let run = settings.run()?;
    // Views need no key: an auditor without an account reads as the run itself.
    let reader = settings.account().unwrap_or_else(|_| run.clone());
    let client = RunClient::new(&settings.endpoint, run.clone(), reader, settings.retry);
    let round = args.round;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let info = client.run_info().await?;
        require_runs_spec(&info, spec, &run)?;
        let Some(result) = client.checkpoint(round).await? else {
            bail!(
                "round {round} of {run} has no finalized checkpoint (last finalized: round {}); \
                 audit it once it is finalized, or pass --base and --expect",
                info.last_finalized_round
            );
        };
        // A round trains from the round it names as its base: round − 1, unless a
        // dispute rolled rounds back in between.
        let view = client.round_view(round).await?;
        let base_round = view["base_round"].as_u64().unwrap_or(round - 1);
        let base = client.checkpoint(base_round).await?.with_context(|| {
            format!("the chain has no checkpoint for round {base_round}, round {round}'s base")
        })?;
        let blob_set = view["finalization"]["blob_set"]
            .as_str()
            .and_then(|s| s.parse::<Hash32>().ok());
        let providers = client
            .providers()
            .await?
            .into_iter()
            .map(ProviderInfo::from)
            .collect();
        let receipt_blobs = client
            .receipts(round)
            .await?
            .into_iter()
            .map(|r| r.receipt.blob)
            .collect();
        Ok(ChainView {
            expected: Expected {
                base: base.hash,
                checkpoint: result.hash,
                blob_set: args.blob_set.or(blob_set),
                blobs: None,
            },
            providers,
            receipt_blobs,
        })
    })
}
