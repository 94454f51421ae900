//! `crowdtrain audit`: recompute one round from checkpoint R−1 and the round's blobs and
//! compare the result with the chain's. The hashes to check against come from the run
//! contract (checkpoint R−1, checkpoint R and the round's blob-set digest) unless they
//! are given on the command line, which lets an auditor check artifacts offline.

use super::settings::ChainArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::audit::{Expected, audit_from_dirs};
use crowdtrain_agent::chain::RunClient;
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_protocol::Hash32;
use std::path::PathBuf;

/// Recompute round R's checkpoint from public artifacts and compare it with the chain's.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Where the run is (`--endpoint`, `--run`, or `crowdtrain init`'s config.toml);
    /// not needed when `--base` and `--expect` are given.
    #[command(flatten)]
    chain: ChainArgs,
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
    let (Some(blobs), Some(checkpoints)) = (
        args.blobs.as_ref().or(args.peers.as_ref()),
        args.checkpoints.as_ref().or(args.peers.as_ref()),
    ) else {
        bail!(
            "where are the round's files? pass --peers DIR (a shared peers folder), or \
             --blobs DIR and --checkpoints DIR"
        );
    };
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
        _ => (from_chain(args, &spec)?, "the chain"),
    };
    let report = audit_from_dirs(&spec, args.round, checkpoints, blobs, &expected)
        .with_context(|| format!("auditing round {}", args.round))?;
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

/// The hashes the run contract holds for round `args.round`: its base, its result and
/// its blob-set digest. Refuses a spec that is not the run's.
fn from_chain(args: &AuditArgs, spec: &RunSpec) -> Result<Expected> {
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
        if info.config.model_spec_hash != spec.hash() {
            bail!(
                "the spec file hashes to {}, but run {run} was created with model_spec_hash {}: \
                 audit with the run's own spec file",
                spec.hash(),
                info.config.model_spec_hash
            );
        }
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
        Ok(Expected {
            base: base.hash,
            checkpoint: result.hash,
            blob_set: args.blob_set.or(blob_set),
            blobs: None,
        })
    })
}
