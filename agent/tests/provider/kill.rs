//! A real `kill -9`: the provider loop runs in a child process (this test binary, running
//! only [`child_provider_process`]), is killed at a moment that varies from run to run,
//! and a new process resumes from the state directory. The chain is kept in a file so
//! that it outlives the killed process.

use super::memory_chain::MemoryChain;
use super::{ROUNDS, Run, corpus, reference, spec};
use candle_core::Device;
use crowdtrain_agent::provider::{Provider, ProviderOptions, SharedDir};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT_VAR: &str = "CROWDTRAIN_TEST_KILL_ROOT";

/// Long enough rounds (200 inner steps, about a second each here) that a kill 50–450 ms
/// after the start lands inside them even on an idle machine.
fn kill_spec() -> RunSpec {
    let mut f: SpecFields = spec().fields().clone();
    f.inner_steps = 200;
    RunSpec::new(f).unwrap()
}

fn spawn_child(root: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill::child_provider_process", "--ignored"])
        .env(ROOT_VAR, root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the test binary runs as a child")
}

/// The child: one provider of the run kept under `$CROWDTRAIN_TEST_KILL_ROOT`, to the end.
#[test]
#[ignore = "run by the kill test as a child process"]
fn child_provider_process() {
    let Some(root) = std::env::var_os(ROOT_VAR).map(PathBuf::from) else {
        return;
    };
    let chain = MemoryChain::load(&root.join("chain.json"));
    let peers = SharedDir::new(root.join("shared"));
    let options = ProviderOptions {
        poll: Duration::from_millis(5),
        ..ProviderOptions::default()
    };
    let dir = root.join("gpu-0.test.near");
    let mut p = Provider::open(
        &dir,
        kill_spec(),
        &chain,
        &peers,
        corpus(),
        &Device::Cpu,
        options,
    )
    .unwrap();
    p.run_until(ROUNDS, &|| false, &mut |_| {}).unwrap();
}

#[test]
fn a_provider_process_killed_at_a_varying_moment_resumes_to_the_same_checkpoints() {
    let mut run = Run::with_spec("kill", 1, 1, kill_spec());
    let chain_file = run.root.join("chain.json");
    run.chain.keep_in(&chain_file);
    let state = run.dir(0).join("provider").join("state.json");
    let mut child = spawn_child(&run.root);
    let started = Instant::now();
    while !state.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the child never opened its state"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // 50–450 ms after it opened: inside round 1's or round 2's training, gathering or
    // posting, depending on the run (the pid varies it).
    let delay = Duration::from_millis(50 + (std::process::id() as u64 * 7919) % 400);
    std::thread::sleep(delay);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the child finished within {delay:?}: nothing was interrupted"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = std::fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&at_kill).unwrap();
    println!(
        "killed {delay:?} after start; committed then: base round {}, phase {}",
        v["base"]["round"], v["phase"]["phase"]
    );
    let status = spawn_child(&run.root).wait().unwrap();
    assert!(status.success(), "the restarted provider ran to the end");
    let chain = MemoryChain::load(&chain_file);
    let finalized: Vec<_> = (1..=ROUNDS).map(|r| chain.finalized(r).unwrap()).collect();
    assert_eq!(
        finalized,
        reference(&run.spec, 1, ROUNDS),
        "killed {delay:?} after start, state then: {at_kill}"
    );
    assert_eq!(
        chain.receipts_accepted(),
        ROUNDS as usize,
        "one receipt per round"
    );
}
