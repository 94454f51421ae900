//! The commands of the people who start and run a training run rather than fund or
//! train it: `spec` (write the run's spec file), `create-run` (the factory creates the
//! run contract with the spec's hash and checkpoint 0), `settle` (pay a round's
//! providers after its challenge window; anyone may) and `pay-revenue` (an API
//! operator paying inference revenue to the share holders).

use super::settings::ChainArgs;
use super::{fee, send, signing_client};
use anyhow::{Context, Result, bail};
use clap::Args;
use crowdtrain_agent::assignment::DataPlan;
use crowdtrain_agent::chain::near_amount::{format_near, parse_near};
use crowdtrain_agent::chain::run_contract::method;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use crowdtrain_agent::{Gpt, model::device_by_name};
use near_primitives::types::AccountId;
use serde_json::json;
use std::path::PathBuf;

/// `crowdtrain spec`.
#[derive(Args, Debug)]
pub struct SpecArgs {
    /// The run's account: `<name>.<factory>`, e.g. gpt.factory.test.near (it seeds
    /// everything, so the spec belongs to this one run).
    #[arg(long, value_name = "ACCOUNT_ID")]
    run: String,
    /// Model preset: tiny, small or gpt2.
    #[arg(long, default_value = "tiny")]
    model: String,
    /// Rounds the learning-rate schedule spans.
    #[arg(long, default_value_t = 10)]
    rounds: u64,
    /// Inner steps per round (H).
    #[arg(long, default_value_t = 20)]
    inner_steps: u32,
    /// Sequences per inner step per provider.
    #[arg(long)]
    batch: Option<u32>,
    /// Bytes per sequence.
    #[arg(long)]
    seq_len: Option<u32>,
    /// Peak inner learning rate (AdamW).
    #[arg(long)]
    lr: Option<f64>,
    /// Pseudo-gradient compression: int8 or int4.
    #[arg(long, default_value = "int8")]
    quant: String,
    /// Where to write the spec (JSON).
    #[arg(long, default_value = "spec.json")]
    out: PathBuf,
}

/// Writes the spec file and prints its hash (the run's `model_spec_hash`).
pub fn spec(args: &SpecArgs) -> Result<()> {
    let Some(mut f) = SpecFields::preset(&args.run, &args.model, args.rounds, args.inner_steps)
    else {
        bail!("unknown --model {:?}: tiny, small or gpt2", args.model)
    };
    if let Some(b) = args.batch {
        f.batch = b;
    }
    if let Some(s) = args.seq_len {
        f.seq_len = s;
    }
    if let Some(lr) = args.lr {
        f.lr = lr;
        f.min_lr = lr / 10.0;
    }
    match args.quant.as_str() {
        "int8" => (f.quant_bits, f.quant_block) = (8, 256),
        "int4" => (f.quant_bits, f.quant_block) = (4, 64),
        other => bail!("unknown --quant {other:?}: int8 or int4"),
    }
    let spec = RunSpec::new(f).context("the spec's values")?;
    std::fs::write(&args.out, spec.to_json())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: run {}, model {}, {} rounds × {} inner steps, {} tokens a round per provider; spec hash {}",
        args.out.display(),
        args.run,
        args.model,
        args.rounds,
        args.inner_steps,
        spec.tokens_per_round(),
        spec.hash()
    );
    Ok(())
}

/// `crowdtrain create-run`.
#[derive(Args)]
pub struct CreateRunArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The factory account that creates runs, e.g. factory.test.near.
    #[arg(long, value_name = "ACCOUNT_ID")]
    factory: String,
    /// The run's spec file (`crowdtrain spec`); its run must be `<name>.<factory>`.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// NEAR the run must raise by the deadline (else every funder is refunded).
    #[arg(long, value_name = "NEAR")]
    goal: String,
    /// Days until the funding deadline.
    #[arg(long, default_value_t = 30)]
    deadline_days: u64,
    /// Smallest deposit, NEAR.
    #[arg(long, value_name = "NEAR", default_value = "1")]
    min_deposit: String,
    /// Bond each provider posts, NEAR (slashed for a dishonest receipt).
    #[arg(long, value_name = "NEAR", default_value = "2")]
    bond: String,
    /// What the treasury pays a provider per trained token, NEAR.
    #[arg(long, value_name = "NEAR", default_value = "0.00001")]
    price_per_token: String,
    /// Shares minted to a provider per trained token (shares have 24 decimals, like NEAR).
    #[arg(long, value_name = "SHARES", default_value = "0.00001")]
    shares_per_token: String,
    /// Receipts that must agree before a round finalizes (besides a stake majority).
    #[arg(long, default_value_t = 2)]
    quorum: u32,
    /// Seconds a finalized round stays open to disputes before it is paid.
    #[arg(long, value_name = "SECS", default_value_t = 86_400)]
    challenge_window: u64,
    /// Accounts that may dispute rounds (repeat the flag); the owner always may.
    #[arg(long, value_name = "ACCOUNT_ID")]
    auditor: Vec<String>,
    /// The dataset every provider trains on (text, or gzip): its sha256 goes on chain
    /// as the run's dataset_hash, and providers and auditors need the same file
    /// [default: the bundled KJV corpus].
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
}

/// Creates the run through the factory; the caller becomes its owner.
pub async fn create_run(args: &CreateRunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.spec)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    let spec = RunSpec::from_json(&text)
        .with_context(|| format!("reading the run spec {}", args.spec.display()))?;
    let factory: AccountId = args
        .factory
        .parse()
        .with_context(|| format!("{:?} is not a NEAR account id", args.factory))?;
    let run_id = spec.fields().run_id.clone();
    let Some(name) = run_id.strip_suffix(&format!(".{factory}")) else {
        bail!(
            "the spec is for run {run_id}, which {factory} cannot create (it creates <name>.{factory}): \
             write one with `crowdtrain spec --run <name>.{factory}`"
        )
    };
    let mut settings = args.chain.resolve()?;
    // The client is bound to the run it is about to create.
    settings.run = Some(run_id.clone());
    let (client, up) = signing_client(&settings).await?;
    if !up {
        bail!(
            "the endpoint {} does not answer: a run is only created against a live chain",
            client.endpoint()
        );
    }
    let cost: serde_json::Value = client
        .view_of(&factory, method::CREATE_RUN_COST, b"{}".to_vec())
        .await
        .with_context(|| format!("is {factory} a crowdtrain factory?"))?;
    let deposit: u128 = cost["deposit"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .context("create_run_cost.deposit")?;
    let model = Gpt::new(
        spec.config().model,
        spec.init_seed(),
        &device_by_name("cpu")?,
    )?;
    let initial = Checkpoint::from_model(&model)?.hash()?;
    let corpus = match &args.data {
        Some(path) => Corpus::open(path)?,
        None => Corpus::kjv().context("loading the bundled corpus (pass --data FILE)")?,
    };
    // A dataset too small for one round of the spec would stall every provider.
    let cfg = spec.config();
    DataPlan::new(
        &corpus,
        cfg.inner.seq_len,
        cfg.inner.batch,
        cfg.inner_steps,
        cfg.shards,
    )
    .context("the dataset cannot feed one round of this spec: use a larger file")?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let config = json!({
        "owner": client.account(),
        "auditors": args.auditor,
        "funding_goal": parse_near(&args.goal)?.to_string(),
        "funding_deadline_ms": (now_ms + args.deadline_days * 86_400_000).to_string(),
        "min_deposit": parse_near(&args.min_deposit)?.to_string(),
        "provider_bond": parse_near(&args.bond)?.to_string(),
        "price_per_token": parse_near(&args.price_per_token)?.to_string(),
        "shares_per_token": parse_near(&args.shares_per_token)?.to_string(),
        "quorum": args.quorum,
        "challenge_window_ms": (args.challenge_window * 1000).to_string(),
        "inner_steps": spec.fields().inner_steps,
        "max_tokens_per_round": spec.tokens_per_round().to_string(),
        "model_spec_hash": spec.hash(),
        "dataset_hash": corpus.hash(),
        "initial_checkpoint_hash": initial,
        "initial_checkpoint_uri": format!("sha256:{initial}"),
    });
    let call = client.create_run_call(&factory, name, config, deposit);
    let landed = send(&client, up, call).await?;
    println!(
        "created run {run_id} (owner {}, spec {}, checkpoint 0 {initial}); attached {} for its storage",
        client.account(),
        spec.hash(),
        format_near(deposit)
    );
    println!("tx {} ({})", landed.outcome.hash, fee(&landed));
    Ok(())
}

/// `crowdtrain settle`.
#[derive(Args)]
pub struct SettleArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// The finalized round to settle (its challenge window must have passed, and the
    /// round it trained from must be settled).
    #[arg(long)]
    round: u64,
}

/// Settles a round page by page until it is done.
pub async fn settle(args: &SettleArgs) -> Result<()> {
    let settings = args.chain.resolve()?;
    let (client, up) = signing_client(&settings).await?;
    loop {
        let landed = send(&client, up, client.settle_call(args.round, None)).await?;
        let progress: serde_json::Value = landed
            .outcome
            .result
            .as_deref()
            .ok()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        println!(
            "settled round {}: {} of {} receipts (tx {}, {})",
            args.round,
            progress["settled_through"],
            progress["receipt_count"],
            landed.outcome.hash,
            fee(&landed)
        );
        if progress["done"] != json!(false) {
            return Ok(());
        }
    }
}

/// `crowdtrain pay-revenue`.
#[derive(Args)]
pub struct PayRevenueArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// NEAR of inference revenue, split pro rata over every share.
    #[arg(long, value_name = "NEAR")]
    amount: String,
}

/// Pays revenue into the run.
pub async fn pay_revenue(args: &PayRevenueArgs) -> Result<()> {
    let amount = parse_near(&args.amount)?;
    let settings = args.chain.resolve()?;
    let (client, up) = signing_client(&settings).await?;
    let landed = send(&client, up, client.pay_revenue_call(amount)).await?;
    println!(
        "paid {} of revenue to {}'s share holders (tx {}, {})",
        format_near(amount),
        client.run(),
        landed.outcome.hash,
        fee(&landed)
    );
    Ok(())
}
