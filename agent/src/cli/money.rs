//! `crowdtrain fund` and `crowdtrain claim`: money in and out of a run.

use super::settings::ChainArgs;
use super::{fee, send, signing_client};
use anyhow::{Result, bail};
use clap::Args;
use crowdtrain_agent::chain::near_amount::{format_near, parse_near};
use crowdtrain_agent::chain::run_contract::events;

/// `crowdtrain fund`.
#[derive(Args)]
pub struct FundArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// NEAR to deposit, e.g. 10 or 0.5; you receive shares 1:1 (less a one-time
    /// storage cost on your first deposit).
    #[arg(long, value_name = "NEAR")]
    amount: String,
}

fn yocto(v: &serde_json::Value) -> u128 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Deposits into the run.
pub async fn fund(args: &FundArgs) -> Result<()> {
    let amount = parse_near(&args.amount)?;
    let settings = args.chain.resolve()?;
    let (client, up) = signing_client(&settings).await?;
    if up {
        let info = client.run_info().await?;
        let min = info.config.min_deposit.0;
        if amount < min {
            bail!(
                "{} is below the run's minimum deposit of {}: fund at least that (--amount {})",
                format_near(amount),
                format_near(min),
                format_near(min).trim_end_matches(" NEAR")
            );
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if info.phase == "Failed"
            || (now_ms >= info.config.funding_deadline_ms.0 && info.phase != "Funded")
        {
            bail!(
                "funding of {} closed at its deadline without reaching the goal: deposits are refused; funders can take a refund",
                client.run()
            );
        }
    }
    let landed = send(&client, up, client.deposit_call(amount)).await?;
    let deposit = events(&landed.outcome.logs, "deposit");
    let funding = client.funding_status().await?;
    match deposit.first() {
        Some(e) => println!(
            "funded {} with {}: {} shares minted (storage {}); raised {} of the {} goal ({})",
            client.run(),
            format_near(amount),
            yocto(&e["shares"]),
            format_near(yocto(&e["storage_cost"])),
            format_near(funding.raised.0),
            format_near(funding.goal.0),
            funding.phase
        ),
        None => println!("funded {} with {}", client.run(), format_near(amount)),
    }
    println!("tx {} ({})", landed.outcome.hash, fee(&landed));
    Ok(())
}

/// Claims pending royalties and compute payments.
pub async fn claim(chain: &ChainArgs) -> Result<()> {
    let settings = chain.resolve()?;
    let (client, up) = signing_client(&settings).await?;
    let account = client.account().clone();
    if up {
        let pending = client.pending(&account).await?;
        if pending.royalties.0 + pending.compute_payments.0 == 0 {
            bail!(
                "nothing to claim yet for {account}: no royalties or compute payments are pending \
                 (royalties come with revenue paid to the run; compute payments after a round's \
                 challenge window and settlement); `crowdtrain status` shows both"
            );
        }
    }
    let landed = send(&client, up, client.claim_call()).await?;
    let claimed = events(&landed.outcome.logs, "claim");
    let restored = events(&landed.outcome.logs, "claim_restored");
    let Some(e) = claimed.first() else {
        bail!(
            "the claim landed (tx {}) but logged no claim event",
            landed.outcome.hash
        )
    };
    let (royalties, compute) = (yocto(&e["royalties"]), yocto(&e["compute_payments"]));
    if !restored.is_empty() {
        bail!(
            "the transfer of {} to {account} failed and was restored: claim again later (tx {})",
            format_near(royalties + compute),
            landed.outcome.hash
        );
    }
    println!(
        "claimed {} = {royalties} yoctoNEAR royalties + {compute} yoctoNEAR compute payments (tx {}, {})",
        format_near(royalties + compute),
        landed.outcome.hash,
        fee(&landed)
    );
    Ok(())
}
