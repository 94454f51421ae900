//! `make demo`: one crowdtrain run end to end on the embedded local chain.
//!
//! Real: the run and factory contracts (the wasm `make contracts` built) executing on
//! nearcore's VM behind NEAR JSON-RPC; DiLoCo training of a small GPT with the agent
//! library (inner AdamW, int8 pseudo-gradients with error feedback, hash-ordered
//! aggregation, outer Nesterov step); ed25519 receipts verified on chain; an auditor
//! recomputing every checkpoint from the previous one and the round's blobs; NEAR
//! moving between funders, providers, the treasury and share holders to the yocto.
//!
//! Not yet real (said again in the output): the three providers run inside this one
//! process and hand each other their blobs in memory instead of over the P2P network,
//! and this program plays every party through near-workspaces instead of each party
//! running its own `crowdtrain` agent.

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::round::{PeerBlob, RoundResult, WorkerState, aggregate, train_local};
use crowdtrain_agent::seeds::{Purpose, derive_seed};
use crowdtrain_agent::train::eval_loss;
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;
use crowdtrain_protocol::{Hash32, Receipt};
use near_crypto::{KeyType, SecretKey, Signature};
use near_workspaces::network::{Sandbox, ValidatorKey};
use near_workspaces::types::{Gas, NearToken};
use near_workspaces::{Account, AccountId, Contract, Worker};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

const NEAR: u128 = 10u128.pow(24);
const ROUNDS: u64 = 2;
const INNER_STEPS: u32 = 20;
const PROVIDERS: [&str; 3] = ["gpu-berlin", "gpu-lagos", "gpu-osaka"];
const FUNDERS: [(&str, u128); 3] = [("ana", 12), ("bo", 10), ("chen", 8)];
/// yoctoNEAR the treasury pays per trained token (0.00001 NEAR).
const PRICE_PER_TOKEN: u128 = 10u128.pow(19);
/// Compute shares minted per trained token (shares have 24 decimals like NEAR).
const SHARES_PER_TOKEN: u128 = 10u128.pow(19);
const CHALLENGE_WINDOW_MS: u64 = 60_000;

#[cfg_attr(test, allow(dead_code))]
#[tokio::main]
async fn main() -> Result<()> {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/contracts/crowdtrain_factory.wasm");
    let factory_wasm = std::fs::read(&wasm).with_context(|| {
        format!(
            "{} is missing: run `make contracts` (or `make demo`)",
            wasm.display()
        )
    })?;
    run(&factory_wasm).await
}

/// The whole story, every party played through near-workspaces.
async fn run(factory_wasm: &[u8]) -> Result<()> {
    banner("1. The chain: a one-node local NEAR chain (nearcore's VM, real fees)");
    let local = crowdtrain_localnet::LocalNet::start(Default::default()).await?;
    let root_key = local.root_secret_key().to_string().parse()?;
    let worker = near_workspaces::sandbox()
        .rpc_addr(&local.rpc_url())
        .validator_key(ValidatorKey::Known(local.root_account().clone(), root_key))
        .await?;
    let root = worker.root_account()?;
    println!(
        "   JSON-RPC at {}  (root account {})",
        local.rpc_url(),
        root.id()
    );

    banner("2. The model everyone agrees on, and its initial checkpoint");
    let run_name = "demo";
    let run_id: AccountId = format!("{run_name}.factory.{}", root.id()).parse()?;
    let run_cfg = RunConfig {
        run_id: run_id.to_string(),
        model: ModelConfig::tiny(),
        inner: InnerConfig::new(8, 64, ROUNDS * INNER_STEPS as u64),
        outer: OuterConfig::default(),
        inner_steps: INNER_STEPS,
        quant: QuantConfig::int8(),
        shards: 16,
    };
    let device = Device::Cpu;
    let corpus = Corpus::kjv()?;
    let model = Gpt::new(
        run_cfg.model,
        derive_seed(Purpose::Init, &run_cfg.run_id, 0, 0),
        &device,
    )?;
    let eval = corpus.eval_batches(
        &run_cfg.run_id,
        8,
        run_cfg.inner.batch,
        run_cfg.inner.seq_len,
    );
    let mut checkpoint = Checkpoint::from_model(&model)?;
    let checkpoint_hash = checkpoint.hash()?;
    println!(
        "   GPT `tiny`: {} parameters; held-out loss {:.3}; checkpoint 0 = {}",
        checkpoint.params.len(),
        eval_loss(&model, &eval)?,
        short(&checkpoint_hash)
    );

    banner("3. The factory creates the run; funders deposit NEAR for shares");
    let factory = deploy_factory(&root, factory_wasm).await?;
    let owner = account(&root, "owner", 20).await?;
    let auditor = account(&root, "auditor", 5).await?;
    let now_ms = worker.view_block().await?.timestamp() / 1_000_000;
    let goal = 25 * NEAR;
    let config = json!({
        "owner": owner.id(),
        "auditors": [auditor.id()],
        "funding_goal": goal.to_string(),
        "funding_deadline_ms": (now_ms + 86_400_000).to_string(),
        "min_deposit": NEAR.to_string(),
        "provider_bond": (2 * NEAR).to_string(),
        "price_per_token": PRICE_PER_TOKEN.to_string(),
        "shares_per_token": SHARES_PER_TOKEN.to_string(),
        "quorum": 2,
        "challenge_window_ms": CHALLENGE_WINDOW_MS.to_string(),
        "inner_steps": INNER_STEPS,
        "max_tokens_per_round": (run_cfg.inner.tokens_per_step() * INNER_STEPS as u64).to_string(),
        "model_spec_hash": crowdtrain_protocol::sha256(format!("{:?}", run_cfg.model).as_bytes()),
        "dataset_hash": crowdtrain_protocol::sha256(corpus.train()),
        "initial_checkpoint_hash": checkpoint_hash,
        "initial_checkpoint_uri": format!("sha256:{checkpoint_hash}"),
    });
    let cost: Value = factory.view("create_run_cost").await?.json()?;
    let deposit: u128 = cost["deposit"]
        .as_str()
        .context("create_run_cost.deposit")?
        .parse()?;
    let out = owner
        .call(factory.id(), "create_run")
        .args_json(json!({"name": run_name, "config": config}))
        .deposit(NearToken::from_yoctonear(deposit))
        .gas(Gas::from_tgas(300))
        .transact()
        .await?;
    ensure!(out.is_success(), "create_run failed: {:?}", out.failures());
    println!(
        "   run {run_id} created by {} (deposit {})",
        owner.id(),
        near(deposit)
    );
    let mut funders = Vec::new();
    for (name, amount) in FUNDERS {
        let f = account(&root, name, amount + 5).await?;
        call(&f, &run_id, "deposit", json!({}), amount * NEAR).await?;
        let shares = balance_of(&worker, &run_id, f.id()).await?;
        println!(
            "   {:<8} deposits {:>3} NEAR → {} shares",
            name,
            amount,
            near(shares)
        );
        funders.push(f);
    }
    let status = view(&worker, &run_id, "funding_status", json!({})).await?;
    println!("   funding status: {}", compact(&status));

    banner("4. Three compute providers register a signing key and post a bond");
    let mut providers = Vec::new();
    for name in PROVIDERS {
        let acct = account(&root, name, 10).await?;
        let sk = SecretKey::from_seed(KeyType::ED25519, &format!("{name} signing key"));
        call(
            &acct,
            &run_id,
            "register_provider",
            json!({"signing_key": sk.public_key().to_string(), "node_id": format!("{name}-node")}),
            3 * NEAR,
        )
        .await?;
        println!("   {:<10} bonded, key {}", name, sk.public_key());
        providers.push((acct, sk, WorkerState::new(checkpoint.params.len())));
    }

    for round in 1..=ROUNDS {
        banner(&format!(
            "5.{round} Round {round}: train, exchange blobs, aggregate, sign, finalize"
        ));
        let base = checkpoint.clone();
        let mut works = Vec::new();
        for (i, (acct, _, state)) in providers.iter_mut().enumerate() {
            let work = train_local(&run_cfg, &corpus, &model, &base, round, i as u32, state)?;
            println!(
                "   {:<10} {} inner steps on its shard, {} tokens, loss {:.3} → {:.3}, blob {} ({} bytes)",
                acct.id().as_str().split('.').next().unwrap_or_default(),
                work.inner_steps,
                work.tokens,
                work.loss_start,
                work.loss_end,
                short(&work.blob_hash),
                work.blob_bytes.len()
            );
            works.push(work);
        }
        // Every provider gathers the same blobs (here: in memory) and aggregates on its own.
        let blobs: Vec<PeerBlob> = works
            .iter()
            .zip(&providers)
            .map(|(w, (a, _, _))| PeerBlob {
                peer: a.id().to_string(),
                bytes: w.blob_bytes.clone(),
            })
            .collect();
        let mut results = Vec::new();
        for (i, (acct, sk, _)) in providers.iter().enumerate() {
            // Each provider sees the blobs in its own arrival order; the result must not care.
            let mut arrived = blobs.clone();
            arrived.rotate_left(i);
            let agg = aggregate(&run_cfg, round, &base, &arrived)?;
            let receipt = RoundResult::new(round, &works[i], &agg).receipt(
                run_id.as_str(),
                acct.id().as_str(),
                unix_ms(),
            );
            results.push((agg, receipt, sk.clone()));
        }
        let agg = &results[0].0;
        ensure!(
            results.iter().all(|(a, _, _)| a.hash == agg.hash),
            "providers disagree on the round's checkpoint"
        );
        println!(
            "   all three providers reached checkpoint {} (blob set {})",
            short(&agg.hash),
            short(&agg.blob_set)
        );
        for (_, receipt, sk) in &results {
            // Anyone may relay a signed receipt; here each provider posts its own.
            let poster = &providers
                .iter()
                .find(|(a, _, _)| a.id().as_str() == receipt.provider)
                .unwrap()
                .0;
            call(poster, &run_id, "submit_receipt", signed(receipt, sk), 0).await?;
        }
        println!(
            "   3 signed receipts verified on chain (ed25519 over sha256 of the borsh receipt)"
        );
        call(
            &owner,
            &run_id,
            "finalize_round",
            json!({"round": round, "blob_hashes": agg.blobs, "checkpoint_uri": null}),
            0,
        )
        .await?;
        let on_chain = view(&worker, &run_id, "checkpoint", json!({"round": round})).await?;
        println!(
            "   round finalized: chain checkpoint {}",
            compact(&on_chain)
        );

        // The auditor recomputes θ_r from checkpoint r−1 and the published blobs.
        let audit = aggregate(&run_cfg, round, &base, &blobs)?;
        ensure!(audit.hash == agg.hash, "audit mismatch");
        ensure!(
            compact(&on_chain).contains(&audit.hash.to_hex()),
            "the chain's checkpoint is not the one the auditor recomputed"
        );
        println!(
            "   auditor {} recomputed checkpoint {} bit for bit ✓",
            auditor.id(),
            short(&audit.hash)
        );

        checkpoint = agg.checkpoint.clone();
        model.set_flat(&checkpoint.params)?;
        println!("   held-out loss now {:.3}", eval_loss(&model, &eval)?);
    }

    banner("6. The challenge window passes; rounds settle: providers are paid and minted shares");
    worker
        .fast_forward(2 * CHALLENGE_WINDOW_MS / 1000 + 10)
        .await?;
    for round in 1..=ROUNDS {
        call(&owner, &run_id, "settle_round", json!({"round": round}), 0).await?;
    }
    for (acct, _, _) in &providers {
        let pending = view(
            &worker,
            &run_id,
            "pending",
            json!({"account_id": acct.id()}),
        )
        .await?;
        let shares = balance_of(&worker, &run_id, acct.id()).await?;
        println!(
            "   {:<10} compute payment {} NEAR, {} compute shares",
            short_id(acct.id()),
            near(num(&pending["compute_payments"])),
            near(shares)
        );
    }

    banner("7. Inference revenue comes in and is split pro rata over all shares");
    let customer = account(&root, "api-customer", 20).await?;
    call(&customer, &run_id, "pay_revenue", json!({}), 10 * NEAR).await?;
    println!("   api-customer pays 10 NEAR of inference revenue");
    let supply = num(&view(&worker, &run_id, "ft_total_supply", json!({})).await?);
    println!(
        "   {:<12} {:>14} {:>8} {:>16} {:>16}",
        "holder", "shares", "% supply", "royalties NEAR", "claimed NEAR"
    );
    let holders: Vec<&Account> = funders
        .iter()
        .chain(providers.iter().map(|(a, _, _)| a))
        .collect();
    let mut claimed_total = 0u128;
    for h in holders {
        let shares = balance_of(&worker, &run_id, h.id()).await?;
        let pending = view(&worker, &run_id, "pending", json!({"account_id": h.id()})).await?;
        let royalties = num(&pending["royalties"]);
        let owed = royalties + num(&pending["compute_payments"]);
        let before = h.view_account().await?.balance.as_yoctonear();
        let out = h.call(&run_id, "claim").max_gas().transact().await?;
        ensure!(out.is_success(), "claim failed: {:?}", out.failures());
        let burnt: u128 = out
            .outcomes()
            .iter()
            .map(|o| o.tokens_burnt.as_yoctonear())
            .sum();
        let after = h.view_account().await?.balance.as_yoctonear();
        ensure!(
            after + burnt == before + owed,
            "{} was not paid exactly what it was owed",
            h.id()
        );
        claimed_total += owed;
        println!(
            "   {:<12} {:>14} {:>7.2}% {:>16} {:>16}",
            short_id(h.id()),
            near(shares),
            shares as f64 * 100.0 / supply as f64,
            near(royalties),
            near(owed)
        );
    }
    let treasury = view(&worker, &run_id, "treasury", json!({})).await?;
    println!(
        "   every holder received exactly what it was owed ({} NEAR in all)",
        near(claimed_total)
    );
    println!("   treasury now: {}", compact(&treasury));

    banner("Done");
    println!(
        "   Real here: contracts on nearcore's VM over JSON-RPC, DiLoCo training, int8 blobs,"
    );
    println!(
        "   ed25519 receipts, quorum finalization, an auditor's bit-exact recomputation, payouts."
    );
    println!("   Not yet: providers as separate `crowdtrain` processes exchanging blobs over P2P;");
    println!("   here they share one process and hand blobs over in memory.");
    local.stop().await;
    Ok(())
}

fn banner(title: &str) {
    println!("\n== {title}");
}

fn short(h: &Hash32) -> String {
    h.to_hex()[..12].to_string()
}

fn short_id(id: &AccountId) -> &str {
    id.as_str().split('.').next().unwrap_or_default()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// yoctoNEAR as NEAR with 4 decimals.
fn near(yocto: u128) -> String {
    format!("{:.4}", yocto as f64 / NEAR as f64)
}

fn num(v: &Value) -> u128 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn compact(v: &Value) -> String {
    v.to_string()
}

fn signed(receipt: &Receipt, sk: &SecretKey) -> Value {
    let Signature::ED25519(sig) = sk.sign(&receipt.signing_hash().0) else {
        unreachable!("ed25519 key")
    };
    let signature = base64::engine::general_purpose::STANDARD.encode(sig.to_bytes());
    json!({"receipt": receipt, "signature": signature})
}

async fn account(root: &Account, name: &str, near_amount: u128) -> Result<Account> {
    Ok(root
        .create_subaccount(name)
        .initial_balance(NearToken::from_near(near_amount))
        .transact()
        .await?
        .into_result()?)
}

async fn deploy_factory(root: &Account, wasm: &[u8]) -> Result<Contract> {
    let acct = account(root, "factory", 50).await?;
    let factory = acct.deploy(wasm).await?.into_result()?;
    let out = factory.call("new").transact().await?;
    ensure!(out.is_success(), "factory new failed: {:?}", out.failures());
    Ok(factory)
}

async fn call(
    who: &Account,
    run: &AccountId,
    method: &str,
    args: Value,
    deposit: u128,
) -> Result<()> {
    let out = who
        .call(run, method)
        .args_json(args)
        .deposit(NearToken::from_yoctonear(deposit))
        .max_gas()
        .transact()
        .await?;
    if !out.is_success() {
        bail!("{method} by {} failed: {:?}", who.id(), out.failures());
    }
    Ok(())
}

async fn view(
    worker: &Worker<Sandbox>,
    run: &AccountId,
    method: &str,
    args: Value,
) -> Result<Value> {
    Ok(worker.view(run, method).args_json(args).await?.json()?)
}

async fn balance_of(worker: &Worker<Sandbox>, run: &AccountId, who: &AccountId) -> Result<u128> {
    Ok(num(&view(
        worker,
        run,
        "ft_balance_of",
        json!({"account_id": who}),
    )
    .await?))
}

/// `cargo test` runs the whole demo too: it fails if any of its checks fail.
#[cfg(test)]
mod tests {
    #[tokio::test(flavor = "multi_thread")]
    async fn the_demo_run_trains_finalizes_audits_and_pays_exactly() {
        let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/contracts/crowdtrain_factory.wasm");
        let Ok(factory_wasm) = std::fs::read(&wasm) else {
            eprintln!(
                "skipped: {} not readable; run `make contracts` first",
                wasm.display()
            );
            return;
        };
        super::run(&factory_wasm)
            .await
            .expect("the demo's checks hold");
    }
}
