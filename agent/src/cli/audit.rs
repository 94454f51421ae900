//! `crowdtrain audit`: recompute one round from checkpoint R−1 and the round's blobs and
//! compare the result with the chain's. Today the expected hashes are given on the
//! command line (from the run's `checkpoint` and `round` views); the chain client fills
//! them in once it is wired.

use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::audit::{Expected, audit_from_dirs};
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_protocol::Hash32;
use std::path::PathBuf;

/// Recompute round R's checkpoint from public artifacts and compare it with the chain's.
#[derive(Args, Debug)]
pub struct AuditArgs {
    /// The chain round to audit (1 = the first trained round).
    #[arg(long)]
    pub round: u64,
    /// The run's spec file (JSON; its hash must be the run's model_spec_hash).
    #[arg(long)]
    pub spec: PathBuf,
    /// Folder with the round's `<sha256>.blob` files (or a shared peers folder: its
    /// `blobs/round-R/` is used).
    #[arg(long)]
    pub blobs: PathBuf,
    /// Folder with `<sha256>.safetensors` checkpoint files (or a shared peers folder).
    #[arg(long)]
    pub checkpoints: PathBuf,
    /// Hash of checkpoint R−1, the round's base (the `checkpoint` view of round R−1).
    #[arg(long, value_parser = parse_hash)]
    pub base: Hash32,
    /// Hash of the checkpoint the chain finalized for round R.
    #[arg(long, value_parser = parse_hash)]
    pub expect: Hash32,
    /// The blob-set digest the chain finalized for round R (checked too when given).
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
    let expected = Expected {
        base: args.base,
        checkpoint: args.expect,
        blob_set: args.blob_set,
        blobs: None,
    };
    let report = audit_from_dirs(&spec, args.round, &args.checkpoints, &args.blobs, &expected)
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
        args.base,
        report.recomputed
    );
    if !report.passed() {
        let list: Vec<String> = report.findings.iter().map(|f| format!("  - {f}")).collect();
        bail!(
            "round {} does not check out:\n{}",
            report.round,
            list.join("\n")
        );
    }
    println!("round {}: matches the chain", report.round);
    Ok(())
}
