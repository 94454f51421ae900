//! Every way a newcomer can go wrong gets a message that says what to do,
//! asserted on the words a person reads.

use crate::common::NEAR;
use crate::support::{Agent, World, crowdtrain_bin};

#[tokio::test]
async fn mistakes_are_answered_with_what_to_do() {
    let Some(world) = World::start(100 * NEAR).await else {
        return;
    };
    let url = world.net.url();

    // No init, no flags.
    let stranger = Agent::new(&world.dir.path().join("stranger"));
    let err = stranger.fails(&["status"]);
    assert!(
        err.contains("no account set: pass --account alice.testnet, or run `crowdtrain init"),
        "{err}"
    );
    let err = stranger.fails(&["init", "--account", "x.test.near"]);
    assert!(
        err.contains("init needs the run to join: pass --run"),
        "{err}"
    );

    // A bad amount is refused before anything is sent.
    let alice = world.person("alice", 30, false).await;
    let agent = world.agent("alice", alice.id().as_str(), 5);
    let err = agent.fails(&["fund", "--amount", "ten"]);
    assert!(
        err.contains("\"ten\" is not an amount of NEAR: write it like 10 or 0.5"),
        "{err}"
    );

    // Below the run's minimum deposit: the minimum is named.
    let err = agent.fails(&["fund", "--amount", "0.5"]);
    assert!(
        err.contains(
            "0.5 NEAR is below the run's minimum deposit of 1 NEAR: fund at least that (--amount 1)"
        ),
        "{err}"
    );

    // Not a provider yet: exit and status say how to register.
    let err = agent.fails(&["exit"]);
    assert!(err.contains("alice.test.near is not a registered provider of gpt.factory.test.near: nothing to exit (to provide compute, run `crowdtrain register`)"), "{err}");
    let text = agent.ok(&["status"]);
    assert!(
        text.contains("not registered (to provide compute: `crowdtrain register`)"),
        "{text}"
    );

    // Nothing to claim.
    let err = agent.fails(&["claim"]);
    assert!(
        err.contains("nothing to claim yet for alice.test.near"),
        "{err}"
    );

    // A contract panic comes back in the contract's own words (near-cli-rs key layout).
    let bob = world.person("bob", 30, true).await;
    let bob_agent = world.agent("bob", bob.id().as_str(), 5);
    bob_agent.ok(&["register"]);
    let err = bob_agent.fails(&["register"]);
    assert!(err.contains("register_provider was refused by gpt.factory.test.near: already registered as a provider; use rotate_key to change the signing key"), "{err}");

    // A missing key file: both places looked at are named, and the way out.
    let empty = world.dir.path().join("no-credentials");
    let err = agent.fails(&[
        "fund",
        "--amount",
        "2",
        "--credentials",
        empty.to_str().unwrap(),
    ]);
    let legacy = empty.join("localnet").join("alice.test.near.json");
    assert!(
        err.contains(&format!(
            "no key for alice.test.near on localnet: looked at {}",
            legacy.display()
        )),
        "{err}"
    );
    assert!(err.contains("alice.test.near/<public_key>.json"), "{err}");
    assert!(err.contains("--credentials DIR"), "{err}");

    // A key file whose key is not the account's.
    let wrong = world.dir.path().join("wrong-credentials");
    std::fs::create_dir_all(wrong.join("localnet")).unwrap();
    let sk = near_crypto::SecretKey::from_seed(near_crypto::KeyType::ED25519, "not alice");
    std::fs::write(
        wrong.join("localnet/alice.test.near.json"),
        serde_json::json!({"account_id": "alice.test.near", "public_key": sk.public_key().to_string(), "private_key": sk.to_string()}).to_string(),
    )
    .unwrap();
    let err = agent.fails(&[
        "fund",
        "--amount",
        "2",
        "--credentials",
        wrong.to_str().unwrap(),
    ]);
    assert!(
        err.contains(&format!("the key {} (from", sk.public_key())),
        "{err}"
    );
    assert!(
        err.contains("is not an access key of alice.test.near on this chain"),
        "{err}"
    );

    // A run that does not exist, and an account that does not exist.
    let err = agent.fails(&["status", "--run", "nope.test.near"]);
    assert!(
        err.contains("account nope.test.near does not exist on this chain"),
        "{err}"
    );
    let err = agent.fails(&[
        "fund",
        "--amount",
        "2",
        "--account",
        "ghost.test.near",
        "--credentials",
        world.credentials.to_str().unwrap(),
    ]);
    assert!(
        err.contains("no key for ghost.test.near on localnet"),
        "{err}"
    );

    // init twice keeps the key and refuses to overwrite the config silently.
    let err = agent.fails(&[
        "init",
        "--account",
        "alice.test.near",
        "--run",
        &world.run,
        "--endpoint",
        &url,
    ]);
    assert!(
        err.contains("config.toml already exists: edit it, or pass --force"),
        "{err}"
    );

    // A run operator's mistakes: a spec for a run this factory cannot create, a round
    // that cannot be settled yet, an audit of a round not finalized.
    let spec = world.dir.path().join("other-spec.json");
    let spec_arg = spec.to_str().unwrap();
    // `spec` only writes a file: no state directory, no chain.
    let spec_cmd = |args: &[&str]| {
        std::process::Command::new(crowdtrain_bin())
            .arg("spec")
            .args(args)
            .output()
            .expect("crowdtrain runs")
    };
    let wrote = spec_cmd(&["--run", "gpt.elsewhere.test.near", "--out", spec_arg]);
    assert!(wrote.status.success(), "{wrote:?}");
    let err = agent.fails(&[
        "create-run",
        "--factory",
        "factory.test.near",
        "--spec",
        spec_arg,
        "--goal",
        "10",
    ]);
    assert!(
        err.contains(
            "the spec is for run gpt.elsewhere.test.near, which factory.test.near cannot create"
        ) && err.contains("crowdtrain spec --run <name>.factory.test.near"),
        "{err}"
    );
    let huge = spec_cmd(&["--run", "x.factory.test.near", "--model", "huge"]);
    assert!(!huge.status.success());
    let err = String::from_utf8_lossy(&huge.stderr);
    assert!(
        err.contains("unknown --model \"huge\": tiny, small or gpt2"),
        "{err}"
    );
    let err = agent.fails(&["settle", "--round", "1"]);
    assert!(
        err.contains("settle_round was refused by gpt.factory.test.near"),
        "{err}"
    );
    let err = agent.fails(&[
        "audit",
        "--round",
        "1",
        "--spec",
        spec_arg,
        "--peers",
        "/nonexistent",
    ]);
    assert!(
        err.contains("the spec file hashes to")
            && err.contains("audit with the run's own spec file"),
        "{err}"
    );
    let err = agent.fails(&["pay-revenue", "--amount", "0"]);
    assert!(
        err.contains("pay_revenue was refused by gpt.factory.test.near: attach the revenue to pay"),
        "{err}"
    );
}
