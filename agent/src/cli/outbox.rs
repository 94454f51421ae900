//! `crowdtrain outbox`: list or send the calls queued in <state>/outbox.

use super::settings::ChainArgs;
use super::signing_client;
use anyhow::Result;
use clap::Args;
use crowdtrain_agent::chain::{ChainError, Outbox};

/// `crowdtrain outbox`.
#[derive(Args)]
pub struct OutboxArgs {
    #[command(flatten)]
    chain: ChainArgs,
    /// Only list the queued calls; send nothing.
    #[arg(long)]
    list: bool,
}

/// Lists or drains the outbox.
pub async fn run(args: &OutboxArgs) -> Result<()> {
    let settings = args.chain.resolve()?;
    let outbox = Outbox::open(&settings.outbox_dir())?;
    let before = outbox.entries()?;
    if args.list || before.is_empty() {
        if before.is_empty() {
            println!("the outbox {} is empty", outbox.dir().display());
        }
        for e in &before {
            println!(
                "#{} {}: {}.{}{}",
                e.seq,
                e.call.label,
                e.call.receiver,
                e.call.method,
                e.signed.as_ref().map_or_else(
                    || " (not signed yet)".to_string(),
                    |s| format!(" (tx {})", s.hash)
                )
            );
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    // signing_client drains the queue and prints every call it sends.
    let (client, up) = signing_client(&settings).await?;
    let left = client.queued()?;
    if !up || !left.is_empty() {
        let head = left
            .first()
            .map_or_else(String::new, |e| e.call.label.clone());
        return Err(ChainError::Queued {
            label: head,
            endpoint: client.endpoint().to_string(),
            outbox: client.queued_dir(),
            reason: format!("{} call(s) still queued", left.len()),
        }
        .into());
    }
    println!(
        "drained {} call(s) in {} ms",
        before.len(),
        started.elapsed().as_millis()
    );
    Ok(())
}
