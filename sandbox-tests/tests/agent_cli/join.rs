//! Two people join a run with the binary and train it: each `crowdtrain init` +
//! `register`, then `crowdtrain join` as two separate processes sharing a peers
//! folder, against `crowdtrain-localnet`. Both rounds are finalized on chain with the
//! checkpoint both providers computed, and `crowdtrain audit` over the shared folder
//! recomputes each round to the chain's checkpoint.

use crate::support::{Agent, World, crowdtrain_bin};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The run `World` creates (`gpt` under the factory).
const RUN: &str = "gpt.factory.test.near";
const ROUNDS: u64 = 2;
const INNER_STEPS: u32 = 3;

/// The tiny model, 3 inner steps of 2×16 tokens a round: seconds per round on one core.
fn tiny_spec(lr: f64) -> RunSpec {
    let mut f = SpecFields::preset(RUN, "tiny", ROUNDS, INNER_STEPS).unwrap();
    f.batch = 2;
    f.seq_len = 16;
    f.warmup_steps = 2;
    f.lr = lr;
    RunSpec::new(f).unwrap()
}

/// A `crowdtrain join` process writing to `<dir>/join.{out,err}`.
pub(crate) struct Joining {
    child: Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Joining {
    pub(crate) fn start(agent: &Agent, dir: &Path, args: &[&str]) -> Self {
        let out = dir.join("join.out");
        let err = dir.join("join.err");
        let child = agent
            .command(args)
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
            .spawn()
            .expect("crowdtrain join starts");
        Self { child, out, err }
    }

    /// Waits until it exits, killing it at `deadline`; returns (success, stdout, stderr).
    pub(crate) fn finish(mut self, deadline: Instant) -> (bool, String, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        (status.is_some_and(|s| s.success()), out, err)
    }
}

impl Drop for Joining {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checkpoint hash a `join` output says round `round` finalized.
pub(crate) fn finalized(out: &str, round: u64) -> String {
    let marker = format!("round {round} finalized: checkpoint ");
    let at = out
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker:?} in {out}"));
    out[at + marker.len()..].chars().take(64).collect()
}

#[tokio::test]
async fn two_providers_join_with_the_binary_and_train_two_rounds_that_audit_clean() {
    let spec = tiny_spec(3e-3);
    let initial = crate::support::initial_hash(&spec);
    let Some(world) = World::start_for_spec(&spec).await else {
        return;
    };
    assert_eq!(world.run, RUN);
    let dir = world.dir.path().to_path_buf();
    let spec_file = world.spec_file();
    let peers = dir.join("peers");
    let (spec_arg, peers_arg) = (spec_file.to_str().unwrap(), peers.to_str().unwrap());

    let alice = world.person("alice", 30, false).await;
    let bob = world.person("bob", 30, true).await;
    let alice_agent = world.agent("alice", alice.id().as_str(), 10);
    let bob_agent = world.agent("bob", bob.id().as_str(), 10);
    alice_agent.ok(&["fund", "--amount", "6"]);
    alice_agent.ok(&["register", "--node-id", "alice-node"]);
    bob_agent.ok(&["register", "--node-id", "bob-node"]);

    // A spec that is not the run's is refused before any training.
    let wrong = dir.join("wrong-spec.json");
    std::fs::write(&wrong, tiny_spec(1e-3).to_json()).unwrap();
    let err = bob_agent.fails(&[
        "join",
        "--spec",
        wrong.to_str().unwrap(),
        "--peers",
        peers_arg,
    ]);
    assert!(err.contains("train with the run's own spec file"), "{err}");
    assert!(!bob_agent.state.join("provider").join("state.json").exists());

    let alice_before = world.balance(&alice).await;
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
    let deadline = Instant::now() + Duration::from_secs(600);
    let (a_ok, a_out, a_err) = a.finish(deadline);
    let (b_ok, b_out, b_err) = b.finish(deadline);
    // One's failure is often the other's cause: both are shown.
    assert!(
        a_ok && b_ok,
        "alice's join {}:\n{a_out}\n{a_err}\nbob's join {}:\n{b_out}\n{b_err}",
        if a_ok { "passed" } else { "failed" },
        if b_ok { "passed" } else { "failed" },
    );
    let alice_after = world.balance(&alice).await;
    println!("alice's join output:\n{a_out}");
    println!(
        "alice paid {} yoctoNEAR in fees for {ROUNDS} rounds ({} a round)",
        alice_before - alice_after,
        (alice_before - alice_after) / ROUNDS as u128
    );

    let mut base = initial.clone();
    for round in 1..=ROUNDS {
        // Both computed the same checkpoint, and it is the chain's.
        let ours = finalized(&a_out, round);
        assert_eq!(
            ours,
            finalized(&b_out, round),
            "round {round}:\n{a_out}\n{b_out}"
        );
        assert!(
            a_out.contains(&format!("round {round} trained: loss")),
            "{a_out}"
        );
        assert!(
            a_out.contains(&format!(
                "round {round} receipt posted: checkpoint {ours} from 2 blobs"
            )),
            "{a_out}"
        );
        assert!(
            a_out.contains(&format!("checkpoint {ours} (the one we computed)")),
            "{a_out}"
        );
        let on_chain = world.view("checkpoint", json!({"round": round})).await;
        assert_eq!(on_chain["hash"], ours.as_str(), "{on_chain}");
        // Both receipts are on chain and name that checkpoint.
        let receipts: Value = world.view("receipts", json!({"round": round})).await;
        let receipts = receipts.as_array().expect("receipts is a list");
        let mut who: Vec<&str> = receipts
            .iter()
            .map(|r| r["receipt"]["provider"].as_str().unwrap())
            .collect();
        who.sort();
        assert_eq!(who, ["alice.test.near", "bob.test.near"], "{receipts:?}");
        assert!(
            receipts
                .iter()
                .all(|r| r["receipt"]["result_checkpoint"] == ours.as_str())
        );
        let blob_set = receipts[0]["receipt"]["blob_set"].as_str().unwrap();

        // An auditor with only the shared folder recomputes the round to the chain's hash.
        let round_arg = round.to_string();
        let audit = Command::new(crowdtrain_bin())
            .args(["audit", "--round", &round_arg, "--spec", spec_arg])
            .args(["--blobs", peers_arg, "--checkpoints", peers_arg])
            .args(["--base", &base, "--expect", &ours, "--blob-set", blob_set])
            .env("RUST_LOG", "warn")
            .output()
            .expect("crowdtrain audit runs");
        let text = String::from_utf8_lossy(&audit.stdout);
        assert!(
            audit.status.success(),
            "audit of round {round} failed:\n{text}\n{}",
            String::from_utf8_lossy(&audit.stderr)
        );
        assert!(
            text.contains(&format!("round {round}: matches the chain")),
            "{text}"
        );
        base = ours;
    }
    let info = world.view("run_info", json!({})).await;
    assert_eq!(info["checkpoint"]["round"], ROUNDS, "{info}");
    assert_eq!(info["checkpoint"]["hash"], base.as_str(), "{info}");
}
