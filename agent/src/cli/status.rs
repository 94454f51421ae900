//! `crowdtrain status`: the run and you in it, as text or JSON.

use super::read_client;
use super::settings::ChainArgs;
use anyhow::Result;
use clap::Args;
use crowdtrain_agent::chain::Outbox;
use crowdtrain_agent::chain::near_amount::format_near;
use crowdtrain_agent::chain::run_contract::{self, ProviderStatus};
use serde_json::{Value, json};

/// How many recent rounds `status` lists your receipts for.
const RECENT_ROUNDS: u64 = 10;

/// `crowdtrain status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Print one JSON object instead of text (amounts in yoctoNEAR, as strings).
    #[arg(long)]
    json: bool,
}

/// Prints the run's state and the account's part in it.
pub async fn run(args: &StatusArgs) -> Result<()> {
    let settings = args.chain.resolve()?;
    let client = read_client(&settings)?;
    let me = client.account().clone();
    let info = client.run_info().await?;
    let funding = client.funding_status().await?;
    let provider = client.provider(&me).await?;
    let shares = client.shares(&me).await?;
    let pending = client.pending(&me).await?;
    let open = info.open_round();
    let mut receipts = Vec::new();
    for round in open.saturating_sub(RECENT_ROUNDS).max(1)..=open {
        let posted = client.receipts(round).await?;
        let Some(r) = posted.iter().find(|r| r.receipt.provider == me.as_str()) else {
            continue;
        };
        let view = client.round_view(round).await?;
        let finalized = run_contract::round_is_finalized(&view);
        receipts.push(json!({
            "round": round,
            "result_checkpoint": r.receipt.result_checkpoint,
            "tokens": r.receipt.tokens,
            "loss_start": r.receipt.loss_start,
            "loss_end": r.receipt.loss_end,
            "finalized": finalized,
            "credit": run_contract::credit_of(r, &view),
        }));
    }
    let queued = match Outbox::open(&settings.outbox_dir()) {
        Ok(o) => o.entries().map(|e| e.len()).unwrap_or(0),
        Err(_) => 0,
    };
    let status = json!({
        "run": client.run(),
        "account": me,
        "phase": info.phase,
        "paused": info.paused,
        "raised": funding.raised.0.to_string(),
        "goal": funding.goal.0.to_string(),
        "deadline_ms": funding.deadline_ms.0,
        "last_finalized_round": info.last_finalized_round,
        "open_round": open,
        "checkpoint": info.checkpoint,
        "providers": info.providers,
        "total_supply": info.total_supply.0.to_string(),
        "shares": shares.to_string(),
        "pending": {
            "royalties": pending.royalties.0.to_string(),
            "compute_payments": pending.compute_payments.0.to_string(),
        },
        "provider": provider,
        "receipts": receipts,
        "outbox_queued": queued,
        "local": {
            "config_file": settings.config_path,
            "state": settings.state,
            "endpoint": settings.endpoint,
            "device": settings.device,
            "threads": settings.threads,
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    print_text(
        &status,
        &info,
        &funding,
        provider.as_ref(),
        shares,
        &pending,
    );
    Ok(())
}

fn print_text(
    s: &Value,
    info: &crowdtrain_agent::chain::RunInfo,
    funding: &crowdtrain_agent::chain::FundingStatus,
    provider: Option<&crowdtrain_agent::chain::ProviderInfo>,
    shares: u128,
    pending: &crowdtrain_agent::chain::Pending,
) {
    let pct = |a: u128, b: u128| {
        if b == 0 {
            0.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    println!(
        "run         {} (owner {}){}",
        s["run"].as_str().unwrap_or_default(),
        info.config.owner,
        if info.paused {
            " — PAUSED by its owner"
        } else {
            ""
        }
    );
    println!(
        "funding     {}: {} of {} raised ({:.1}%), deadline {} (unix ms)",
        funding.phase,
        format_near(funding.raised.0),
        format_near(funding.goal.0),
        pct(funding.raised.0, funding.goal.0),
        funding.deadline_ms.0
    );
    println!(
        "rounds      {} finalized; open round {} trains from checkpoint {} at {}",
        info.last_finalized_round,
        info.open_round(),
        info.checkpoint.hash,
        info.checkpoint.uri
    );
    println!("providers   {} registered", info.providers);
    println!("account     {}", s["account"].as_str().unwrap_or_default());
    println!(
        "shares      {shares} of {} ({:.2}%)",
        info.total_supply.0,
        pct(shares, info.total_supply.0)
    );
    println!(
        "pending     royalties {}, compute payments {}{}",
        format_near(pending.royalties.0),
        format_near(pending.compute_payments.0),
        if pending.royalties.0 + pending.compute_payments.0 > 0 {
            " — `crowdtrain claim` sends them to you"
        } else {
            ""
        }
    );
    match provider {
        None => println!("provider    not registered (to provide compute: `crowdtrain register`)"),
        Some(p) => {
            let status = match &p.status {
                ProviderStatus::Active => "active".to_string(),
                ProviderStatus::Exiting { since_ms } => {
                    format!("exiting since {since_ms} (unix ms)")
                }
                ProviderStatus::Slashed => "slashed (bond lost to a dispute)".to_string(),
            };
            println!(
                "provider    #{} {status}, bond {}, signing key {}, node id {}",
                p.index,
                format_near(p.bond.0),
                p.signing_key,
                p.node_id
            );
        }
    }
    let receipts = s["receipts"].as_array().cloned().unwrap_or_default();
    if receipts.is_empty() {
        println!("receipts    none in the last {RECENT_ROUNDS} rounds");
    }
    for r in receipts {
        println!(
            "receipt     round {}: {} tokens, loss {:.4} → {:.4}, result {}, {}",
            r["round"],
            r["tokens"],
            r["loss_start"].as_f64().unwrap_or(f64::NAN),
            r["loss_end"].as_f64().unwrap_or(f64::NAN),
            r["result_checkpoint"].as_str().unwrap_or_default(),
            match (&r["finalized"], &r["credit"]) {
                (Value::Bool(false), _) => "round not finalized yet".to_string(),
                (_, Value::Null) => "finalized, not credited".to_string(),
                (_, c) => format!("finalized, credit {c}"),
            }
        );
    }
    let queued = s["outbox_queued"].as_u64().unwrap_or(0);
    if queued > 0 {
        println!(
            "outbox      {queued} call(s) queued, not yet on chain — `crowdtrain outbox` sends them"
        );
    }
}
