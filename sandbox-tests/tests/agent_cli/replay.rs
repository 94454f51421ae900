//! The replay audit end to end: two honest `crowdtrain join` processes and a dishonest
//! provider, Mallory (played here with the agent library, as a stranger with a bond
//! would: the blob she serves is her own choice), train two rounds on the local chain.
//! Mallory trains round 1 honestly; in round 2 she serves noise of the honest norm under
//! a receipt that claims honest losses. The rounds finalize (her blob is clipped like
//! any other), and `crowdtrain audit --replay`:
//! - passes the honest providers (round 2 re-trains their round 1 first) and Mallory's
//!   round 1;
//! - fails Mallory's round 2, and with `--dispute` voids her receipt on chain and slashes
//!   her bond, the evidence as the dispute's reason;
//! - refuses a dataset file that is not the run's.

use crate::join::{Joining, finalized};
use crate::support::{World, initial_hash};
use candle_core::Device;
use crowdtrain_agent::Gpt;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::provider::{Peers, ReceiptKey, SharedDir};
use crowdtrain_agent::round::{RoundResult, WorkerState, aggregate, train_local};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use crowdtrain_kernels::{QuantizedBlob, dequantize, quantize};
use crowdtrain_protocol::{Hash32, sha256};
use near_workspaces::Account;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const RUN: &str = "gpt.factory.test.near";

/// The tiny model, 3 inner steps of 2×16 tokens a round.
fn spec() -> RunSpec {
    let mut f = SpecFields::preset(RUN, "tiny", 2, 3).unwrap();
    f.batch = 2;
    f.seq_len = 16;
    f.warmup_steps = 2;
    f.lr = 3e-3;
    RunSpec::new(f).unwrap()
}

/// Values of `blob`'s length and L2 norm that are not training: a fixed pseudo-random
/// pattern, quantized the way the run quantizes.
fn noise_like(blob: &[u8], spec: &RunSpec) -> Vec<u8> {
    let honest = dequantize(&QuantizedBlob::from_bytes(blob).unwrap());
    let norm = honest
        .iter()
        .map(|&x| (x as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let raw: Vec<f64> = (0..honest.len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect();
    let raw_norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
    let noise: Vec<f32> = raw.iter().map(|x| (x * norm / raw_norm) as f32).collect();
    quantize(&noise, spec.config().quant, 1).unwrap().to_bytes()
}

/// Mallory's side of `round` (she is an account, a receipt key and a provider index):
/// trains from `base`, serves `cheat`'s choice of blob, waits
/// for the others' blobs, aggregates like everyone and posts a receipt that agrees.
async fn mallory_round(
    world: &World,
    (mallory, key, index): (&Account, &ReceiptKey, u32),
    peers: &SharedDir,
    base: &Checkpoint,
    round: u64,
    cheat: bool,
    worker: &mut WorkerState,
) {
    let spec = spec();
    let cfg = spec.config();
    let corpus = Corpus::kjv().unwrap();
    let model = Gpt::new(cfg.model, spec.init_seed(), &Device::Cpu).unwrap();
    let work = train_local(cfg, &corpus, &model, base, round, index, worker).unwrap();
    let bytes = if cheat {
        noise_like(&work.blob_bytes, &spec)
    } else {
        work.blob_bytes.clone()
    };
    peers.publish_blob(round, bytes.clone().into()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let blobs = loop {
        let blobs = peers.round_blobs(round, &[]).unwrap();
        if blobs.len() == 3 {
            break blobs;
        }
        assert!(
            Instant::now() < deadline,
            "the honest blobs of round {round}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let agg = aggregate(cfg, round, base, &blobs).unwrap();
    assert!(agg.rejected.is_empty(), "{:?}", agg.rejected);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let receipt = RoundResult {
        round,
        base_checkpoint: base.hash().unwrap(),
        result_checkpoint: agg.hash,
        blob: sha256(&bytes),
        blob_set: agg.blob_set,
        inner_steps: work.inner_steps,
        tokens: work.tokens,
        loss_start: work.loss_start,
        loss_end: work.loss_end,
    }
    .receipt(RUN, mallory.id().as_str(), now_ms);
    let signature = key.sign(&receipt);
    let run: near_workspaces::AccountId = world.run.parse().unwrap();
    let out = mallory
        .call(&run, "submit_receipt")
        .args(crowdtrain_agent::chain::run_contract::receipt_args(
            &receipt, &signature,
        ))
        .max_gas()
        .transact()
        .await
        .unwrap();
    assert!(
        out.is_success(),
        "Mallory's receipt of round {round}: {out:?}"
    );
}

/// The finalized checkpoint of `round`, read from the chain and the shared folder.
async fn finalized_checkpoint(world: &World, peers: &SharedDir, round: u64) -> Checkpoint {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let view = world.view("checkpoint", json!({"round": round})).await;
        if let Some(hash) = view["hash"].as_str() {
            let hash: Hash32 = hash.parse().unwrap();
            if let Some(bytes) = peers.fetch_checkpoint(hash, &[]).unwrap() {
                let cfg = spec().config().model;
                return Checkpoint::from_bytes(&bytes, &cfg, hash).unwrap();
            }
        }
        assert!(Instant::now() < deadline, "round {round} finalizes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Mallory's receipt of `round` as the chain shows it.
async fn receipt_on_chain(world: &World, round: u64, who: &str) -> Value {
    let receipts = world.view("receipts", json!({"round": round})).await;
    receipts
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["receipt"]["provider"] == who)
        .cloned()
        .unwrap_or_else(|| panic!("{who}'s receipt of round {round} in {receipts}"))
}

#[tokio::test]
async fn a_replay_audit_passes_honest_providers_and_disputes_one_who_sent_noise() {
    let spec = spec();
    let auditor_id = "auditor.test.near";
    let Some(world) = World::start_for_spec_with(&spec, |c| {
        c["quorum"] = json!(3);
        c["auditors"] = json!([auditor_id]);
        c["challenge_window_ms"] = json!("600000");
    })
    .await
    else {
        return;
    };
    let dir = world.dir.path().to_path_buf();
    let spec_file = world.spec_file();
    let peers_dir = dir.join("peers");
    let (spec_arg, peers_arg) = (spec_file.to_str().unwrap(), peers_dir.to_str().unwrap());
    let peers = SharedDir::new(&peers_dir);

    let alice = world.person("alice", 30, false).await;
    let bob = world.person("bob", 30, true).await;
    let mallory = world.person("mallory", 30, false).await;
    let auditor = world.person("auditor", 10, false).await;
    assert_eq!(auditor.id().as_str(), auditor_id);
    let alice_agent = world.agent("alice", alice.id().as_str(), 10);
    let bob_agent = world.agent("bob", bob.id().as_str(), 10);
    let mallory_agent = world.agent("mallory", mallory.id().as_str(), 10);
    let auditor_agent = world.agent("auditor", auditor_id, 10);
    alice_agent.ok(&["fund", "--amount", "6"]);
    for (agent, node) in [
        (&alice_agent, "alice-node"),
        (&bob_agent, "bob-node"),
        (&mallory_agent, "mallory-node"),
    ] {
        agent.ok(&["register", "--node-id", node]);
    }
    let providers = world.view("providers", json!({})).await;
    let index = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account_id"] == mallory.id().as_str())
        .and_then(|p| p["index"].as_u64())
        .unwrap_or_else(|| panic!("Mallory's index in {providers}")) as u32;
    let key = ReceiptKey::load(
        &mallory_agent
            .state
            .join(crowdtrain_agent::provider::KEY_FILE),
    )
    .unwrap();

    // A dataset that is not the run's is refused before any training.
    let wrong_data = dir.join("other.txt");
    std::fs::write(&wrong_data, "In the beginning was the test.\n".repeat(4000)).unwrap();
    let wrong_arg = wrong_data.to_str().unwrap();
    let err = bob_agent.fails(&[
        "join", "--spec", spec_arg, "--peers", peers_arg, "--data", wrong_arg,
    ]);
    assert!(
        err.contains("the run's dataset") && err.contains(crowdtrain_agent::data::KJV_SHA256),
        "{err}"
    );

    let args = [
        "join",
        "--spec",
        spec_arg,
        "--peers",
        peers_arg,
        "--rounds",
        "2",
        "--gather-timeout",
        "300",
    ];
    let a = Joining::start(&alice_agent, &alice_agent.home, &args);
    let b = Joining::start(&bob_agent, &bob_agent.home, &args);
    let initial = Checkpoint::from_model(
        &Gpt::new(spec.config().model, spec.init_seed(), &Device::Cpu).unwrap(),
    )
    .unwrap();
    assert_eq!(initial.hash().unwrap().to_hex(), initial_hash(&spec));
    let mut worker = WorkerState::new(spec.config().model.param_count());
    let mut base = initial;
    for (round, cheat) in [(1, false), (2, true)] {
        if round > 1 {
            base = finalized_checkpoint(&world, &peers, round - 1).await;
        }
        let me = (&mallory, &key, index);
        mallory_round(&world, me, &peers, &base, round, cheat, &mut worker).await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let (a_ok, a_out, a_err) = a.finish(deadline);
    let (b_ok, b_out, b_err) = b.finish(deadline);
    assert!(
        a_ok && b_ok,
        "alice's join {}:\n{a_out}\n{a_err}\nbob's join {}:\n{b_out}\n{b_err}",
        if a_ok { "passed" } else { "failed" },
        if b_ok { "passed" } else { "failed" },
    );
    assert_eq!(finalized(&a_out, 2), finalized(&b_out, 2));

    let replay = |who: &str, round: u64, extra: &[&str]| {
        let round = round.to_string();
        let mut args = vec![
            "audit", "--round", &round, "--spec", spec_arg, "--peers", peers_arg, "--replay", who,
        ];
        args.extend_from_slice(extra);
        auditor_agent.run(&args)
    };
    let (alice_id, mallory_id) = (alice.id().as_str(), mallory.id().as_str());

    // Honest: alice's round 2 (her round 1 re-trained first), Mallory's honest round 1.
    let ran = replay(alice_id, 2, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.contains("after its rounds 1"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("alice.test.near's receipt is consistent with training on its assigned data"),
        "{}",
        ran.stdout
    );
    println!("alice, round 2:\n{}", ran.stdout);
    let ran = replay(mallory_id, 1, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);

    // The noise fails on its cosine; without --dispute nothing happens on chain.
    let ran = replay(mallory_id, 2, &[]);
    assert!(ran.code != 0, "{}", ran.stdout);
    assert!(
        ran.stderr.contains("does not replay") && ran.stderr.contains("cosine"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("--dispute"), "{}", ran.stderr);
    println!("Mallory, round 2:\n{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        receipt_on_chain(&world, 2, mallory_id).await["status"],
        "Pending"
    );

    // The run's dataset only.
    let ran = replay(alice_id, 2, &["--data", wrong_arg]);
    assert!(
        ran.code != 0 && ran.stderr.contains("the run's dataset"),
        "{}",
        ran.stderr
    );

    // An honest provider is never disputed, even with --dispute.
    let ran = replay(alice_id, 2, &["--dispute"]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        receipt_on_chain(&world, 2, alice_id).await["status"],
        "Pending"
    );

    // With --dispute the auditor voids Mallory's receipt and slashes her bond.
    let ran = replay(mallory_id, 2, &["--dispute"]);
    assert!(ran.code != 0, "{}", ran.stdout);
    assert!(ran.stderr.contains("disputed on chain"), "{}", ran.stderr);
    let status = receipt_on_chain(&world, 2, mallory_id).await["status"].clone();
    let reason = status["Disputed"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("FAILED") && reason.contains("cosine"),
        "{status}"
    );
    assert_eq!(status["Disputed"]["auditor"], auditor_id, "{status}");
    let providers = world.view("providers", json!({})).await;
    let record = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["account_id"] == mallory_id)
        .cloned()
        .unwrap();
    assert_eq!(record["status"], "Slashed", "{record}");
}
