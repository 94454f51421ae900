//! The provider loop against a run contract in memory (keeping the contract's rules) and
//! peers over a shared folder: providers train, exchange blobs, agree, sign, post and
//! finalize; a provider stopped dead at any commit point resumes with the same bits; a
//! late peer is left out; bad inputs are refused with messages that say what to do.

mod kill;
mod memory_chain;

use candle_core::Device;
use crowdtrain_agent::Gpt;
use crowdtrain_agent::audit::{Expected, Finding, audit_from_dirs};
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::config::FIRST_ROUND;
use crowdtrain_agent::data::{Corpus, KJV_SHA256};
use crowdtrain_agent::provider::{
    CrashPoint, KEY_FILE, Peers, Phase, Progress, Provider, ProviderError, ProviderOptions,
    ReceiptKey, RunChain, RunTerms, SharedDir,
};
use crowdtrain_agent::replay::{Claim, Tolerance, replay};
use crowdtrain_agent::round::{PeerBlob, WorkerState, aggregate, train_local};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use crowdtrain_protocol::Hash32;
use memory_chain::MemoryChain;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const RUN: &str = "run.factory.test.near";
const ROUNDS: u64 = 2;

fn corpus() -> Arc<Corpus> {
    static CORPUS: OnceLock<Arc<Corpus>> = OnceLock::new();
    CORPUS
        .get_or_init(|| Arc::new(Corpus::kjv().unwrap()))
        .clone()
}

/// The tiny model, 3 inner steps of 2×16 tokens: seconds for a whole run.
fn spec() -> RunSpec {
    let mut f = SpecFields::preset(RUN, "tiny", ROUNDS, 3).unwrap();
    f.batch = 2;
    f.seq_len = 16;
    f.warmup_steps = 2;
    RunSpec::new(f).unwrap()
}

fn initial_checkpoint(spec: &RunSpec) -> Checkpoint {
    let model = Gpt::new(spec.config().model, spec.init_seed(), &Device::Cpu).unwrap();
    Checkpoint::from_model(&model).unwrap()
}

/// A fresh run: a chain with `quorum`, `n` registered providers each with a key in its
/// own state directory, and a shared peers folder.
struct Run {
    root: PathBuf,
    spec: RunSpec,
    chain: MemoryChain,
    peers: SharedDir,
    accounts: Vec<String>,
}

impl Run {
    fn new(name: &str, n: usize, quorum: u32) -> Self {
        Self::with_spec(name, n, quorum, spec())
    }

    fn with_spec(name: &str, n: usize, quorum: u32, spec: RunSpec) -> Self {
        let root = std::env::temp_dir().join(format!("ct-provider-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let terms = RunTerms {
            run: RUN.into(),
            spec_hash: spec.hash(),
            quorum,
            inner_steps: spec.fields().inner_steps,
            max_tokens_per_round: spec.tokens_per_round(),
            dataset_hash: KJV_SHA256.parse().unwrap(),
        };
        let chain = MemoryChain::new(terms, initial_checkpoint(&spec).hash().unwrap());
        let mut accounts = Vec::new();
        for i in 0..n {
            let account = format!("gpu-{i}.test.near");
            let key = ReceiptKey::from_seed(&account, [i as u8 + 1; 32]);
            let dir = root.join(&account);
            std::fs::create_dir_all(&dir).unwrap();
            key.save(&dir.join(KEY_FILE)).unwrap();
            chain.register(&account, &key.public_key());
            accounts.push(account);
        }
        Self {
            peers: SharedDir::new(root.join("shared")),
            root,
            spec,
            chain,
            accounts,
        }
    }

    fn dir(&self, i: usize) -> PathBuf {
        self.root.join(&self.accounts[i])
    }

    fn open(
        &self,
        i: usize,
        options: ProviderOptions,
    ) -> Result<Provider<&MemoryChain, &SharedDir>, ProviderError> {
        Provider::open(
            &self.dir(i),
            self.spec.clone(),
            &self.chain,
            &self.peers,
            corpus(),
            &Device::Cpu,
            options,
        )
    }

    fn finalized(&self) -> Vec<Hash32> {
        (1..=ROUNDS)
            .map(|r| self.chain.finalized(r).expect("round finalized"))
            .collect()
    }
}

fn options() -> ProviderOptions {
    ProviderOptions {
        gather_timeout: Duration::from_secs(60),
        poll: Duration::from_millis(10),
        fetch_attempts: 3,
        crash_at: None,
    }
}

/// Steps every provider in turn until each holds checkpoint `last`. A provider that
/// stops dead (a test crash point) is reopened from its state directory, as a restarted
/// process would be. Returns how many crashes there were.
fn drive<'a>(
    run: &'a Run,
    providers: &mut [Provider<&'a MemoryChain, &'a SharedDir>],
    last: u64,
) -> usize {
    let mut crashes = 0;
    let mut waiting = Vec::new();
    for _ in 0..10_000 {
        if providers.iter().all(|p| p.state().base.round >= last) {
            return crashes;
        }
        waiting.clear();
        for (i, p) in providers.iter_mut().enumerate() {
            if p.state().base.round >= last {
                continue;
            }
            match p.step() {
                Ok(Progress::Waiting(why)) => waiting.push(why),
                Ok(_) => {}
                Err(ProviderError::Crashed(_)) => {
                    crashes += 1;
                    *p = run.open(i, options()).expect("reopens after a crash");
                }
                Err(e) => panic!("provider {i}: {e}"),
            }
        }
        if waiting.len() == providers.len() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    panic!("stuck, waiting for: {waiting:?}")
}

/// The checkpoints of rounds 1..=ROUNDS computed straight from the library (no loop, no
/// chain, no files): what `n` providers with indices 0..n must reach.
fn reference(spec: &RunSpec, n: u32, rounds: u64) -> Vec<Hash32> {
    let cfg = spec.config();
    let model = Gpt::new(cfg.model, spec.init_seed(), &Device::Cpu).unwrap();
    let mut base = initial_checkpoint(spec);
    let mut workers: Vec<WorkerState> = (0..n)
        .map(|_| WorkerState::new(base.params.len()))
        .collect();
    let mut hashes = Vec::new();
    for round in FIRST_ROUND..FIRST_ROUND + rounds {
        let blobs: Vec<PeerBlob> = (0..n)
            .map(|k| {
                let w = train_local(
                    cfg,
                    &corpus(),
                    &model,
                    &base,
                    round,
                    k,
                    &mut workers[k as usize],
                )
                .unwrap();
                PeerBlob {
                    peer: k.to_string(),
                    bytes: w.blob_bytes.into(),
                }
            })
            .collect();
        let agg = aggregate(cfg, round, &base, &blobs).unwrap();
        hashes.push(agg.hash);
        base = agg.checkpoint;
    }
    hashes
}

#[test]
fn providers_finalize_what_the_library_computes_and_the_audit_agrees() {
    let run = Run::new("three", 3, 2);
    let mut ps: Vec<_> = (0..3).map(|i| run.open(i, options()).unwrap()).collect();
    assert_eq!(drive(&run, &mut ps, ROUNDS), 0);
    let finalized = run.finalized();
    assert_eq!(finalized, reference(&run.spec, 3, ROUNDS));
    assert_eq!(run.chain.receipts_accepted(), 3 * ROUNDS as usize);
    for p in &ps {
        assert_eq!(p.state().base.hash, finalized[1]);
        assert_eq!(p.state().phase, Phase::Ready);
        // Only the base checkpoint is kept in the state directory.
        let held = std::fs::read_dir(p.state_dir().join("checkpoints"))
            .unwrap()
            .count();
        assert_eq!(held, 1);
    }
    // An auditor with the shared folder recomputes both rounds.
    let shared = run.root.join("shared");
    let mut base = run.chain.finalized(0).unwrap();
    for (i, &hash) in finalized.iter().enumerate() {
        let round = FIRST_ROUND + i as u64;
        let receipts = run.chain.receipts(round).unwrap();
        let expected = Expected {
            base,
            checkpoint: hash,
            blob_set: Some(receipts[0].blob_set),
            blobs: None,
        };
        let report = audit_from_dirs(&run.spec, round, &shared, &shared, &expected).unwrap();
        assert!(report.passed(), "{:?}", report.findings);
        assert_eq!(report.blobs.len(), 3);
        base = hash;
    }
    // One blob gone: the audit names the blob set and the checkpoint that differ.
    let round2 = SharedDir::new(&shared).round_dir(2);
    let gone = std::fs::read_dir(&round2)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(gone).unwrap();
    let receipts = run.chain.receipts(2).unwrap();
    let expected = Expected {
        base: finalized[0],
        checkpoint: finalized[1],
        blob_set: Some(receipts[0].blob_set),
        blobs: None,
    };
    let report = audit_from_dirs(&run.spec, 2, &shared, &shared, &expected).unwrap();
    assert!(!report.passed());
    assert!(
        matches!(report.findings[0], Finding::BlobSetDiffers { .. }),
        "{:?}",
        report.findings
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.to_string().contains(&finalized[1].to_hex()))
    );
}

#[test]
fn a_provider_stopped_dead_anywhere_resumes_to_the_same_checkpoints() {
    let want = reference(&spec(), 2, ROUNDS);
    for (round, point) in [
        (1, CrashPoint::BeforeTrainedCommit),
        (1, CrashPoint::BeforePostedCommit),
        (2, CrashPoint::BeforePost),
        (1, CrashPoint::BeforeReadyCommit),
        (2, CrashPoint::BeforeTrainedCommit),
    ] {
        let run = Run::new(&format!("crash-{round}-{point:?}"), 2, 2);
        let crash = ProviderOptions {
            crash_at: Some((round, point)),
            ..options()
        };
        let mut ps = vec![run.open(0, crash).unwrap(), run.open(1, options()).unwrap()];
        assert_eq!(
            drive(&run, &mut ps, ROUNDS),
            1,
            "{point:?} in round {round} was reached"
        );
        assert_eq!(
            run.finalized(),
            want,
            "after a crash at {point:?} in round {round}"
        );
        assert_eq!(run.chain.receipts_accepted(), 2 * ROUNDS as usize);
    }
}

#[test]
fn a_provider_that_does_not_deliver_by_the_deadline_is_left_out() {
    let run = Run::new("late", 3, 2);
    let quick = ProviderOptions {
        gather_timeout: Duration::from_millis(50),
        ..options()
    };
    // Provider 2 is registered but never trains.
    let mut ps = vec![
        run.open(0, quick.clone()).unwrap(),
        run.open(1, quick).unwrap(),
    ];
    drive(&run, &mut ps, 1);
    assert_eq!(
        run.chain.finalized(1).unwrap(),
        reference(&run.spec, 2, 1)[0]
    );
    assert_eq!(run.chain.receipts(1).unwrap().len(), 2);
}

#[test]
fn a_round_that_ends_without_the_providers_receipt_leaves_no_trace_in_its_worker_state() {
    let run = Run::new("set-aside", 3, 2);
    // Provider 2 trains round 1 and serves its blob, then stalls while the other two
    // finalize the round: it never posts a receipt for it.
    let mut late = run.open(2, options()).unwrap();
    assert!(matches!(
        late.step().unwrap(),
        Progress::Trained { round: 1, .. }
    ));
    let mut ps = vec![
        run.open(0, options()).unwrap(),
        run.open(1, options()).unwrap(),
    ];
    drive(&run, &mut ps, 1);
    ps.push(late);
    drive(&run, &mut ps, 2);
    let late = &ps[2];
    let receipts = run.chain.receipts(2).unwrap();
    let receipt = receipts
        .iter()
        .find(|r| r.provider == run.accounts[2])
        .expect("the late provider's round-2 receipt");
    assert!(
        run.chain
            .receipts(1)
            .unwrap()
            .iter()
            .all(|r| r.provider != run.accounts[2])
    );
    assert_eq!(late.state().adamw.as_deref(), Some("adamw-2.safetensors"));

    // So a replay from its receipts alone (none before round 2) re-creates its round-2
    // blob bit for bit: its round-1 training shaped nothing.
    let cfg = run.spec.config();
    let base_hash = run.chain.finalized(1).unwrap();
    let base_bytes = run.peers.fetch_checkpoint(base_hash, &[]).unwrap().unwrap();
    let base = Checkpoint::from_bytes(&base_bytes, &cfg.model, base_hash).unwrap();
    let blob = run
        .peers
        .round_blobs(2, &[])
        .unwrap()
        .into_iter()
        .find(|b| crowdtrain_protocol::sha256(&b.bytes) == receipt.blob)
        .expect("its round-2 blob is served");
    let model = Gpt::new(cfg.model, run.spec.init_seed(), &Device::Cpu).unwrap();
    let claim = Claim {
        provider: 2,
        receipt,
        blob: &blob.bytes,
        earlier: &[],
    };
    let report = replay(cfg, &corpus(), &model, &base, &claim, &Tolerance::default()).unwrap();
    assert!(report.passed() && report.bit_exact, "{}", report.evidence());
}

#[test]
fn a_damaged_checkpoint_is_refused_and_fetched_again() {
    let run = Run::new("damaged", 2, 2);
    let mut ps: Vec<_> = (0..2).map(|i| run.open(i, options()).unwrap()).collect();
    drive(&run, &mut ps, 1);
    let round1 = run.chain.finalized(1).unwrap();
    let name = format!("{round1}.safetensors");
    let local = ps[0].state_dir().join("checkpoints").join(&name);
    let shared = SharedDir::new(run.root.join("shared"))
        .checkpoint_dir()
        .join(&name);
    let good = std::fs::read(&shared).unwrap();
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    std::fs::write(&local, &bad).unwrap();
    std::fs::write(&shared, &bad).unwrap();
    // Restarted with both copies damaged: refused, asked again, then it says what is wrong.
    ps[0] = run.open(0, options()).unwrap();
    let err = loop {
        match ps[0].step() {
            Ok(_) => continue,
            Err(e) => break e.to_string(),
        }
    };
    assert!(
        err.contains(&round1.to_hex()) && err.contains("no peer served"),
        "{err}"
    );
    // A peer serves the right bytes again: the round goes on to the same result.
    std::fs::write(&shared, &good).unwrap();
    drive(&run, &mut ps, ROUNDS);
    assert_eq!(run.finalized(), reference(&run.spec, 2, ROUNDS));
}

#[test]
fn wrong_spec_key_or_registration_are_refused_with_what_to_do() {
    let run = Run::new("refusals", 2, 2);
    // A spec that differs in one learning rate.
    let mut f = run.spec.fields().clone();
    f.lr *= 2.0;
    let other = RunSpec::new(f).unwrap();
    let err = Provider::open(
        &run.dir(0),
        other.clone(),
        &run.chain,
        &run.peers,
        corpus(),
        &Device::Cpu,
        options(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains(&other.hash().to_hex())
            && err.contains(&run.spec.hash().to_hex())
            && err.contains("run's own spec"),
        "{err}"
    );
    // A key for an account the run does not know.
    ReceiptKey::from_seed("stranger.test.near", [9; 32])
        .save(&run.dir(1).join(KEY_FILE))
        .unwrap();
    let err = run.open(1, options()).err().unwrap().to_string();
    assert!(
        err.contains("stranger.test.near is not a registered provider")
            && err.contains("crowdtrain register"),
        "{err}"
    );
    // The right account with another key than the one registered.
    ReceiptKey::from_seed(&run.accounts[1], [9; 32])
        .save(&run.dir(1).join(KEY_FILE))
        .unwrap();
    let err = run.open(1, options()).err().unwrap().to_string();
    assert!(
        err.contains("registered signing key") && err.contains(KEY_FILE),
        "{err}"
    );
    // Before the funding goal the loop waits, saying why; an unreachable chain is an error
    // the loop retries, and nothing moves meanwhile.
    let mut p = run.open(0, options()).unwrap();
    run.chain.set_funded(false);
    match p.step().unwrap() {
        Progress::Waiting(why) => assert!(why.contains("funding goal"), "{why}"),
        other => panic!("{other:?}"),
    }
    run.chain.set_funded(true);
    run.chain.set_down(true);
    assert!(matches!(
        p.step(),
        Err(ProviderError::Chain(
            crowdtrain_agent::provider::ChainError::Unavailable(_)
        ))
    ));
    assert_eq!(p.state().phase, Phase::Ready);
    run.chain.set_down(false);
    assert!(matches!(
        p.step().unwrap(),
        Progress::Trained { round: 1, .. }
    ));
}
