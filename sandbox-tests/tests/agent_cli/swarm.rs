//! Three providers train over the swarm (iroh on loopback, relays off) as separate
//! `crowdtrain train` processes, and one of them is killed with SIGKILL after the first
//! round: the next round finalizes without it (its blob never comes, the others stop
//! waiting at the deadline), and when it is started again from its state directory it
//! fetches the checkpoint it missed from its peers and trains on. An auditor that is
//! registered nowhere fetches every round from the providers and recomputes it to the
//! chain's checkpoint.

use crate::support::{Agent, World, crowdtrain_bin};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RUN: &str = "gpt.factory.test.near";
const INNER_STEPS: u32 = 3;
const ROUNDS: u64 = 4;

/// The tiny model, 3 inner steps of 2×16 tokens a round.
fn tiny_spec() -> RunSpec {
    let mut f = SpecFields::preset(RUN, "tiny", ROUNDS, INNER_STEPS).unwrap();
    f.batch = 2;
    f.seq_len = 16;
    f.warmup_steps = 2;
    RunSpec::new(f).unwrap()
}

/// A `crowdtrain train` process writing to `<home>/<tag>.{out,err}`.
struct Training {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Training {
    fn start(agent: &Agent, tag: &str, args: &[&str]) -> Self {
        let out = agent.home.join(format!("{tag}.out"));
        let err = agent.home.join(format!("{tag}.err"));
        let child = agent
            .command(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
            .spawn()
            .expect("crowdtrain train starts");
        Self { child, out, err }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until the output contains `marker`; panics with both logs if the process
    /// exits first or `secs` pass.
    fn wait_for(&mut self, marker: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.output().contains(marker) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "waiting for {marker:?} ({exited:?}):\n{}\n{}",
                self.output(),
                std::fs::read_to_string(&self.err).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Training {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The checkpoint a `train` output says round `round` finalized, if it says so.
fn finalized(out: &str, round: u64) -> Option<String> {
    let marker = format!("round {round} finalized: checkpoint ");
    let at = out.find(&marker)?;
    Some(out[at + marker.len()..].chars().take(64).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_killed_mid_run_is_left_out_then_rejoins_from_its_peers() {
    let spec = tiny_spec();
    let Some(world) = World::start_for_spec(&spec).await else {
        return;
    };
    let spec_file = world.spec_file();
    let spec_arg = spec_file.to_str().unwrap();

    let mut agents = Vec::new();
    for name in ["ada", "ben", "cyd"] {
        let person = world.person(name, 30, false).await;
        let agent = world.agent(name, person.id().as_str(), 10);
        let said = agent.ok(&["register"]);
        assert!(said.contains("node id "), "{said}");
        agents.push(agent);
    }
    agents[0].ok(&["fund", "--amount", "6"]);
    let train = |rounds: &str| {
        [
            "train",
            "--spec",
            spec_arg,
            "--rounds",
            rounds,
            "--gather-timeout",
            "15",
            "--serve-after",
            "300",
            // The auditor checks every round at the end: keep them all served.
            "--keep-rounds",
            "10",
            "--threads",
            "1",
        ]
        .map(String::from)
    };
    let args = train(&ROUNDS.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ada = Training::start(&agents[0], "train", &args);
    let mut ben = Training::start(&agents[1], "train", &args);
    let mut cyd = Training::start(&agents[2], "train", &args);
    // SIGKILL as soon as cyd has trained round 1 (its receipt may or may not be posted:
    // with a quorum of 2 the other two can finalize first): nothing of it is cleaned
    // up, and (almost always) it dies before training round 2.
    cyd.wait_for("round 1 trained", 120);
    cyd.child.kill().unwrap();
    cyd.child.wait().unwrap();
    ada.wait_for("round 2 finalized", 120);
    let (ada_out, cyd_out) = (ada.output(), cyd.output());
    if !cyd_out.contains("round 2 trained") {
        // Its blob never came: the others stopped waiting at the deadline.
        assert!(
            ada_out.contains(" from 2 blobs"),
            "round 2 went on without the killed provider:\n{ada_out}"
        );
    }

    // cyd comes back from its state directory, fetches the checkpoint it missed from
    // its peers and trains again (with them, or alone once they have stopped).
    let rest = train("10");
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let mut cyd = Training::start(&agents[2], "rejoin", &rest);
    cyd.wait_for("trained: loss", 180);
    for t in [&mut ada, &mut ben] {
        t.wait_for("done training", 180);
    }
    let cyd_out = cyd.output();
    assert!(
        cyd_out.contains("joined run"),
        "the killed provider restarted:\n{cyd_out}"
    );

    // Everyone names the chain's checkpoints; the auditor recomputes every round from
    // files it fetched from the providers.
    let auditor = Agent::new(&world.dir.path().join("auditor"));
    for round in 1..=ROUNDS {
        let on_chain = world.view("checkpoint", json!({"round": round})).await;
        let hash = on_chain["hash"].as_str().expect("finalized").to_string();
        for (t, name) in [(&ada, "ada"), (&ben, "ben"), (&cyd, "cyd")] {
            if let Some(seen) = finalized(&t.output(), round) {
                assert_eq!(seen, hash, "{name}, round {round}");
            }
        }
        let out = Command::new(crowdtrain_bin())
            .args(["audit", "--round", &round.to_string(), "--spec", spec_arg])
            .args(["--endpoint", &world.net.url(), "--run", RUN, "--wait", "60"])
            .arg("--state")
            .arg(&auditor.state)
            .env("HOME", &auditor.home)
            .output()
            .expect("crowdtrain audit runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(&format!("round {round}: matches the chain")),
            "audit of round {round}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
