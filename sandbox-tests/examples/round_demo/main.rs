//! `make demo`: one crowdtrain run end to end on a local NEAR chain, each person a
//! separate `crowdtrain` process.
//!
//! Real: `crowdtrain-localnet` (nearcore's VM behind NEAR JSON-RPC, real fees) with the
//! factory and run contracts `make contracts` built; the owner writing the spec and
//! creating the run (`crowdtrain spec`, `create-run`); funders depositing (`fund`);
//! three providers, each its own `crowdtrain train` process with its own state
//! directory and keys, training a small GPT in DiLoCo rounds, exchanging int8
//! pseudo-gradients with error feedback, posting ed25519 receipts and finalizing rounds
//! on chain; an auditor fetching every round's files from the providers and recomputing
//! it (`audit`) against the chain's hashes;
//! the owner settling (`settle`), an API customer paying revenue (`pay-revenue`) and
//! every holder claiming (`claim`), paid to the yocto.
//!
//! The providers exchange blobs peer to peer over iroh (QUIC on loopback, relays off);
//! the auditor fetches each round's files from them. This program plays only what a
//! wallet and time do: it creates the accounts (and their near-cli key files) and moves
//! the chain's clock past the challenge window.

mod parties;
mod summary;

use anyhow::{Context, Result, bail, ensure};
use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::simulate::RoundStats;
use crowdtrain_agent::spec::RunSpec;
use crowdtrain_agent::train::eval_loss;
use crowdtrain_agent::{Gpt, report};
use crowdtrain_protocol::Hash32;
use near_workspaces::network::{Sandbox, ValidatorKey};
use near_workspaces::types::{KeyType, NearToken, SecretKey};
use near_workspaces::{Account, AccountId, Worker};
use parties::{Agent, Bins, Localnet, Streaming, free_udp_addr, write_key_file};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use summary::{ProviderLog, RoundRow};

const NEAR: u128 = 10u128.pow(24);
const ROUNDS: u64 = 8;
const INNER_STEPS: u32 = 50;
const PROVIDERS: [&str; 3] = ["gpu-berlin", "gpu-lagos", "gpu-osaka"];
const FUNDERS: [(&str, u128); 3] = [("ana", 12), ("bo", 10), ("chen", 8)];
const CHALLENGE_WINDOW_MS: u64 = 60_000;
/// How long the providers may take for all rounds before the demo gives up.
const TRAINING_DEADLINE: Duration = Duration::from_secs(1200);

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    run(&factory_wasm()?, dir.path()).await
}

/// The factory wasm `make contracts` built.
fn factory_wasm() -> Result<PathBuf> {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/contracts/crowdtrain_factory.wasm");
    if !wasm.is_file() {
        bail!(
            "{} is missing: run `make contracts` (or `make demo`)",
            wasm.display()
        );
    }
    Ok(wasm)
}

/// The whole story; the files (chain state, agents' state, the audit's evidence, plot) go to `dir`.
async fn run(factory_wasm: &Path, dir: &Path) -> Result<()> {
    let bins = Bins::beside_this_exe()?;
    banner(
        "1. The chain: crowdtrain-localnet, a one-node NEAR chain on 127.0.0.1, with the factory",
    );
    let chain_home = dir.join("chain");
    let chain = Localnet::start(&bins, &chain_home, factory_wasm)?;
    let worker = near_workspaces::sandbox()
        .rpc_addr(&chain.url)
        .validator_key(ValidatorKey::HomeDir(chain_home))
        .await?;
    let root = worker.root_account()?;
    let factory: AccountId = format!("factory.{}", root.id()).parse()?;
    let run_id: AccountId = format!("demo.{factory}").parse()?;
    println!(
        "   JSON-RPC at {}  (root account {}, factory {factory})",
        chain.url,
        root.id()
    );

    let credentials = dir.join("credentials");
    let agent = |name: &str, account: &Account| {
        Agent::init(
            &bins,
            dir,
            name,
            account.id().as_str(),
            &chain.url,
            run_id.as_str(),
            &credentials,
            &free_udp_addr()?,
        )
    };

    banner(
        "2. The run's owner writes its spec (`crowdtrain spec`) and creates it (`crowdtrain create-run`)",
    );
    let owner_account = person(&root, &credentials, "owner", 20).await?;
    let owner = agent("owner", &owner_account)?;
    let auditor_account = account(&root, "auditor", 5).await?;
    let spec_file = dir.join("spec.json");
    let spec_arg = path_str(&spec_file)?;
    let said = owner.ok(&[
        "spec",
        "--run",
        run_id.as_str(),
        "--model",
        "tiny",
        "--rounds",
        &ROUNDS.to_string(),
        "--inner-steps",
        &INNER_STEPS.to_string(),
        "--out",
        spec_arg,
    ])?;
    print_indented(&said);
    let spec = RunSpec::from_json(&std::fs::read_to_string(&spec_file)?)?;
    let said = owner.ok(&[
        "create-run",
        "--factory",
        factory.as_str(),
        "--spec",
        spec_arg,
        "--goal",
        "25",
        "--min-deposit",
        "1",
        "--bond",
        "2",
        "--price-per-token",
        "0.00001",
        "--shares-per-token",
        "0.00001",
        "--quorum",
        "2",
        "--challenge-window",
        &(CHALLENGE_WINDOW_MS / 1000).to_string(),
        "--auditor",
        auditor_account.id().as_str(),
    ])?;
    print_indented(&said);
    let corpus = Corpus::kjv()?;
    let device = Device::Cpu;
    let model = Gpt::new(spec.config().model, spec.init_seed(), &device)?;
    let inner = &spec.config().inner;
    let eval = corpus.eval_batches(run_id.as_str(), 8, inner.batch, inner.seq_len);
    let initial = Checkpoint::from_model(&model)?;
    let initial_hash = initial.hash()?;
    let initial_loss = eval_loss(&model, &eval)?;
    let params = initial.params.len() as u64;
    let info = view(&worker, &run_id, "run_info", json!({})).await?;
    ensure!(
        info["config"]["model_spec_hash"] == spec.hash().to_hex().as_str()
            && info["config"]["initial_checkpoint_hash"] == initial_hash.to_hex().as_str(),
        "the run on chain is not the spec's: {info}"
    );
    println!(
        "   GPT `tiny`: {params} parameters, {ROUNDS} rounds × {INNER_STEPS} inner steps of {}×{} bytes, int8 + error feedback",
        inner.batch, inner.seq_len
    );
    println!(
        "   checkpoint 0 = {} (held-out loss {initial_loss:.3}), rebuilt by every provider from the spec's seed",
        short(&initial_hash)
    );

    banner("3. Funders deposit with `crowdtrain fund` and receive shares");
    let mut holders: Vec<(Account, Agent)> = vec![];
    for (name, amount) in FUNDERS {
        let acct = person(&root, &credentials, name, amount + 5).await?;
        let a = agent(name, &acct)?;
        let said = a.ok(&["fund", "--amount", &amount.to_string()])?;
        println!("   {name:<10} $ crowdtrain fund --amount {amount}");
        print_indented(&said);
        holders.push((acct, a));
    }

    banner(
        "4. Providers: `crowdtrain init` (a receipt-signing key) and `crowdtrain register` (a bond)",
    );
    let mut providers = Vec::new();
    for name in PROVIDERS {
        let acct = person(&root, &credentials, name, 10).await?;
        let a = agent(name, &acct)?;
        let said = a.ok(&["register"])?;
        println!("   {name:<10} $ crowdtrain register");
        print_indented(&said);
        providers.push((acct, a));
    }

    banner(&format!(
        "5. Three `crowdtrain train` processes train {ROUNDS} rounds: train, exchange blobs peer to peer, aggregate, sign, finalize"
    ));
    let mut before = Vec::new();
    for (acct, _) in &providers {
        before.push(balance(&worker, acct).await?);
    }
    let started = Instant::now();
    let rounds = ROUNDS.to_string();
    let training: Vec<Streaming> = providers
        .iter()
        .map(|(_, a)| {
            Streaming::start(
                a,
                &[
                    "train",
                    "--spec",
                    spec_arg,
                    "--rounds",
                    &rounds,
                    "--threads",
                    "1",
                    "--keep-rounds",
                    &rounds,
                    "--serve-after",
                    "600",
                ],
            )
        })
        .collect::<Result<_>>()?;
    let deadline = started + TRAINING_DEADLINE;
    let mut training = training;
    for t in &mut training {
        // Done training, still serving (for the auditor); an exit here is a failure.
        if !t.wait_for_line("done training", deadline)? {
            bail!("a provider stopped before finishing its rounds");
        }
    }
    let wall = started.elapsed();
    let mut fees = Vec::new();
    for ((acct, _), b) in providers.iter().zip(&before) {
        fees.push(b - balance(&worker, acct).await?);
    }

    banner(
        "6. The auditor fetches every round from the providers and recomputes it with `crowdtrain audit`",
    );
    let auditor = Agent::reader(&bins, dir, "auditor")?;
    let evidence = dir.join("audit");
    let evidence_arg = path_str(&evidence)?;
    for round in 1..=ROUNDS {
        let said = auditor.ok(&[
            "audit",
            "--round",
            &round.to_string(),
            "--spec",
            spec_arg,
            "--save",
            evidence_arg,
            "--endpoint",
            &chain.url,
            "--run",
            run_id.as_str(),
        ])?;
        print_indented(&said);
    }

    banner(
        "7. The auditor replays each provider's last round (`crowdtrain audit --replay`): \
         re-trains it from the saved checkpoints and compares with the blob it served",
    );
    for (acct, _) in &providers {
        let who = acct.id().as_str();
        let mut last = None;
        for round in (1..=ROUNDS).rev() {
            let receipts = view(&worker, &run_id, "receipts", json!({"round": round})).await?;
            let posted = receipts.as_array().is_some_and(|list| {
                list.iter()
                    .any(|r| r["receipt"]["provider"].as_str() == Some(who))
            });
            if posted {
                last = Some(round);
                break;
            }
        }
        let Some(round) = last else {
            bail!("{who} has no receipt on chain");
        };
        let said = auditor.ok(&[
            "audit",
            "--round",
            &round.to_string(),
            "--spec",
            spec_arg,
            "--replay",
            who,
            "--peers",
            evidence_arg,
            "--endpoint",
            &chain.url,
            "--run",
            run_id.as_str(),
        ])?;
        print_indented(&said);
    }

    // Audited: the providers may stop serving (Ctrl-C, as a person would).
    let mut logs = Vec::new();
    for t in training {
        logs.push(ProviderLog::parse(&t.stop())?);
    }

    // The round table, from the providers' own reports and the checkpoints audited.
    let mut rows = Vec::new();
    for round in 1..=ROUNDS {
        let on_chain = view(&worker, &run_id, "checkpoint", json!({"round": round})).await?;
        let hash = on_chain["hash"]
            .as_str()
            .context("a finalized checkpoint")?
            .to_string();
        // A provider that was slower than the quorum may have skipped a round's report
        // (its receipt came late); every report there is names the chain's checkpoint
        // as the one it computed.
        let mut agreed = 0;
        for (log, name) in logs.iter().zip(PROVIDERS) {
            if let Some(seen) = log.finalized.get(&round) {
                ensure!(
                    *seen == (hash.clone(), true),
                    "{name} did not compute round {round}'s finalized checkpoint {hash}"
                );
                agreed += 1;
            }
        }
        ensure!(
            agreed >= 2,
            "round {round}: only {agreed} providers saw it finalized"
        );
        let work: Vec<&summary::Trained> =
            logs.iter().filter_map(|l| l.trained.get(&round)).collect();
        let n = work.len().max(1) as f32;
        let ck = Checkpoint::load(
            &evidence.join(format!("checkpoints/{hash}.safetensors")),
            &spec.config().model,
            parse_hash(&hash)?,
        )?;
        model.set_flat(&ck.params)?;
        rows.push(RoundRow {
            round,
            train_loss: (
                work.iter().map(|w| w.loss.0).sum::<f32>() / n,
                work.iter().map(|w| w.loss.1).sum::<f32>() / n,
            ),
            heldout: eval_loss(&model, &eval)?,
            tokens: work.iter().map(|w| w.tokens).sum(),
            blob_bytes: work.iter().map(|w| w.blob_bytes).sum(),
            f32_bytes: work.len() as u64 * params * 4 * INNER_STEPS as u64,
            checkpoint: hash,
        });
    }

    banner("8. The challenge window passes; the owner settles the rounds with `crowdtrain settle`");
    worker
        .fast_forward(2 * CHALLENGE_WINDOW_MS / 1000 + 10)
        .await?;
    for round in 1..=ROUNDS {
        print_indented(&owner.ok(&["settle", "--round", &round.to_string()])?);
    }

    banner(
        "9. Inference revenue comes in (`crowdtrain pay-revenue`); every holder claims with `crowdtrain claim`",
    );
    let customer_account = person(&root, &credentials, "api-customer", 20).await?;
    let customer = agent("api-customer", &customer_account)?;
    print_indented(&customer.ok(&["pay-revenue", "--amount", "10"])?);
    holders.extend(providers);
    let supply = num(&view(&worker, &run_id, "ft_total_supply", json!({})).await?);
    println!(
        "   {:<12} {:>10} {:>8} {:>15} {:>15} {:>13}",
        "holder", "shares", "% supply", "royalties NEAR", "compute NEAR", "claimed NEAR"
    );
    let mut claimed_total = 0;
    for (acct, a) in &holders {
        let shares = num(&view(
            &worker,
            &run_id,
            "ft_balance_of",
            json!({"account_id": acct.id()}),
        )
        .await?);
        let pending = view(
            &worker,
            &run_id,
            "pending",
            json!({"account_id": acct.id()}),
        )
        .await?;
        let (royalties, compute) = (
            num(&pending["royalties"]),
            num(&pending["compute_payments"]),
        );
        let was = balance(&worker, acct).await?;
        let said = a.ok(&["claim"])?;
        let fee = claim_fee(&said)?;
        let now = balance(&worker, acct).await?;
        ensure!(
            now + fee == was + royalties + compute,
            "{} was not paid exactly what `pending` said: {said}",
            a.name
        );
        claimed_total += royalties + compute;
        println!(
            "   {:<12} {:>10} {:>7.2}% {:>15} {:>15} {:>13}",
            a.name,
            near(shares),
            shares as f64 * 100.0 / supply as f64,
            near(royalties),
            near(compute),
            near(royalties + compute)
        );
    }
    println!(
        "   every holder received exactly what `pending` said, to the yocto ({} NEAR in all)",
        near(claimed_total)
    );

    banner("10. Summary");
    print!("{}", summary::table(&rows));
    println!(
        "   held-out loss {initial_loss:.3} at checkpoint 0 → {:.3} after round {ROUNDS}",
        rows.last().map_or(f32::NAN, |r| r.heldout)
    );
    println!(
        "   training took {:.0} s for {ROUNDS} rounds (3 processes sharing this machine's cores)",
        wall.as_secs_f64()
    );
    let t = summary::mean_timing(&logs);
    println!(
        "   a round, mean over providers: train {:.2} s, exchange blobs {:.2} s, aggregate {:.3} s, chain {:.2} s",
        t.train, t.exchange, t.aggregate, t.chain
    );
    for ((acct, _), fee) in holders.iter().skip(FUNDERS.len()).zip(&fees) {
        let mut credited = 0;
        for round in 1..=ROUNDS {
            let receipts = view(&worker, &run_id, "receipts", json!({"round": round})).await?;
            credited += receipts.as_array().map_or(0, |r| {
                r.iter()
                    .filter(|r| r["receipt"]["provider"] == acct.id().as_str())
                    .count()
            });
        }
        println!(
            "   {:<12} receipts credited in {credited} of {ROUNDS} rounds (the others came after a quorum); \
             gas {} NEAR in all, {} NEAR a round",
            short_id(acct.id()),
            near(*fee),
            near(fee / ROUNDS as u128)
        );
    }
    let plot = dir.join("loss.png");
    report::plot(
        &plot,
        "crowdtrain demo: loss by round",
        &plot_rows(&rows, initial_loss),
        &[],
    )?;
    println!("   loss plot: {}", plot.display());
    let last = rows.last().context("at least one round")?;
    let ck = Checkpoint::load(
        &evidence.join(format!("checkpoints/{}.safetensors", last.checkpoint)),
        &spec.config().model,
        parse_hash(&last.checkpoint)?,
    )?;
    model.set_flat(&ck.params)?;
    let prompt = "And God said";
    let text = model.generate(prompt.as_bytes(), 160, 0.8, 1)?;
    println!("   text from the final checkpoint (temperature 0.8), after {prompt:?}:");
    println!(
        "   | {prompt}{}",
        String::from_utf8_lossy(&text).replace('\n', "\n   | ")
    );
    println!();
    println!("   Real: the chain and its fees, the contracts, each party a separate `crowdtrain`");
    println!(
        "   process with its own keys, DiLoCo training, int8 blobs exchanged peer to peer over"
    );
    println!(
        "   iroh (QUIC on loopback, relays off), signed receipts, quorum finalization, audits"
    );
    println!(
        "   that fetch from the providers and recompute bit for bit, settlement and royalties."
    );
    println!(
        "   Played by this program: the wallet (it made the accounts and their key files) and"
    );
    println!("   the clock (it moved the chain past the challenge window).");
    drop(chain);
    Ok(())
}

/// The round rows as the plot wants them (tokens counted from the start).
fn plot_rows(rows: &[RoundRow], initial_loss: f32) -> Vec<RoundStats> {
    let mut tokens = 0;
    let mut out = vec![RoundStats {
        round: 0,
        tokens: 0,
        train_loss: f32::NAN,
        heldout_loss: initial_loss,
        bytes_per_worker: 0,
        checkpoint: None,
    }];
    for r in rows {
        tokens += r.tokens;
        out.push(RoundStats {
            round: r.round as u32,
            tokens,
            train_loss: r.train_loss.1,
            heldout_loss: r.heldout,
            bytes_per_worker: r.blob_bytes / PROVIDERS.len() as u64,
            checkpoint: r.checkpoint.parse().ok(),
        });
    }
    out
}

/// The fee `crowdtrain claim` reports ("..., fee N yoctoNEAR)").
fn claim_fee(said: &str) -> Result<u128> {
    let at = said.rfind("fee ").context("a fee in claim's output")?;
    let digits: String = said[at + 4..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().with_context(|| format!("a fee in {said:?}"))
}

fn parse_hash(s: &str) -> Result<Hash32> {
    s.parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a sha256 hash"))
}

fn banner(title: &str) {
    println!("\n== {title}");
}

fn print_indented(text: &str) {
    for line in text.lines() {
        println!("     {line}");
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("a UTF-8 path")
}

fn short(h: &Hash32) -> String {
    h.to_hex()[..12].to_string()
}

fn short_id(id: &AccountId) -> &str {
    id.as_str().split('.').next().unwrap_or_default()
}

/// yoctoNEAR as NEAR with 4 decimals.
fn near(yocto: u128) -> String {
    format!("{:.4}", yocto as f64 / NEAR as f64)
}

fn num(v: &Value) -> u128 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `<name>.<root>` with `near_amount` NEAR and a key file in `credentials`, as a person
/// who made an account with a wallet and ran `near login` would have.
async fn person(
    root: &Account,
    credentials: &Path,
    name: &str,
    near_amount: u128,
) -> Result<Account> {
    let sk = SecretKey::from_seed(KeyType::ED25519, name);
    let acct = root
        .create_subaccount(name)
        .keys(sk.clone())
        .initial_balance(NearToken::from_near(near_amount))
        .transact()
        .await?
        .into_result()?;
    write_key_file(
        credentials,
        acct.id().as_str(),
        &sk.public_key().to_string(),
        &sk.to_string(),
    )?;
    Ok(acct)
}

async fn account(root: &Account, name: &str, near_amount: u128) -> Result<Account> {
    Ok(root
        .create_subaccount(name)
        .initial_balance(NearToken::from_near(near_amount))
        .transact()
        .await?
        .into_result()?)
}

async fn balance(worker: &Worker<Sandbox>, acct: &Account) -> Result<u128> {
    Ok(worker.view_account(acct.id()).await?.balance.as_yoctonear())
}

async fn view(
    worker: &Worker<Sandbox>,
    run: &AccountId,
    method: &str,
    args: Value,
) -> Result<Value> {
    Ok(worker.view(run, method).args_json(args).await?.json()?)
}

/// `cargo test` runs the whole demo too: it fails if any of its checks fail. `make demo`
/// runs this same test with `CROWDTRAIN_DEMO_OUT` set, to keep the files.
#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn the_demo_run_trains_finalizes_audits_and_pays_exactly() {
        let Ok(factory_wasm) = super::factory_wasm() else {
            eprintln!("skipped: the factory wasm is not built; run `make contracts` first");
            return;
        };
        let temp = tempfile::tempdir().unwrap();
        let dir = match std::env::var_os("CROWDTRAIN_DEMO_OUT") {
            Some(out) => {
                let out = std::path::PathBuf::from(out);
                // A fresh run each time: the chain and the agents start empty.
                let _ = std::fs::remove_dir_all(&out);
                std::fs::create_dir_all(&out).unwrap();
                out
            }
            None => temp.path().to_path_buf(),
        };
        super::run(&factory_wasm, &dir)
            .await
            .expect("the demo's checks hold");
    }
}
