//! What the agent scenarios share: the `crowdtrain-localnet` binary on a loopback
//! port (stoppable and restartable on the same port and state), the `crowdtrain`
//! binary run as a separate process, and a run created by near-workspaces playing
//! the factory's and the run creator's part.

use crate::common::NEAR;
use crate::common::crowdtrain::{config, create_run, deploy_factory, wasm};
use near_workspaces::network::{Sandbox, ValidatorKey};
use near_workspaces::types::{KeyType, NearToken, SecretKey};
use near_workspaces::{Account, Worker};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The `crowdtrain-localnet` process; killed when dropped.
pub struct Localnet {
    child: Option<Child>,
    home: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

fn spawn_localnet(home: &Path, port: u16) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crowdtrain-localnet"))
        .arg("--port")
        .arg(port.to_string())
        .arg("--home")
        .arg(home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crowdtrain-localnet starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut first = String::new();
    lines
        .read_line(&mut first)
        .expect("a line from crowdtrain-localnet");
    let url = first.trim().rsplit(' ').next().expect("a URL").to_string();
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    // Keep reading its stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.lines() {});
    (child, port)
}

impl Localnet {
    /// Starts the chain on a free port with its state in `home`.
    pub fn start(home: &Path) -> Self {
        let (child, port) = spawn_localnet(home, 0);
        Self {
            child: Some(child),
            home: home.to_path_buf(),
            port,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the chain process (its state stays in `home`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same state.
    pub fn restart(&mut self) {
        self.stop();
        let (child, port) = spawn_localnet(&self.home, self.port);
        assert_eq!(port, self.port);
        self.child = Some(child);
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `crowdtrain` binary `cargo test --workspace --all-targets` built beside this test.
pub fn crowdtrain_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/crowdtrain
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join(format!("crowdtrain{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p crowdtrain-agent --bin crowdtrain` \
         (`cargo test --workspace --all-targets` builds it too)",
        bin.display()
    );
    bin
}

/// One person's `crowdtrain` with its own HOME and state directory.
pub struct Agent {
    /// Their HOME (nothing of the real user's is read).
    pub home: PathBuf,
    /// Their state directory.
    pub state: PathBuf,
}

/// What one `crowdtrain` process did.
pub struct Ran {
    /// Exit status code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Agent {
    /// An agent living in `dir`.
    pub fn new(dir: &Path) -> Self {
        let home = dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        Self {
            home,
            state: dir.join("state"),
        }
    }

    /// `crowdtrain <args> --state <state>` in this agent's environment, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(crowdtrain_bin());
        command
            .args(args)
            .arg("--state")
            .arg(&self.state)
            .env("HOME", &self.home)
            .env_remove("NEAR_CREDENTIALS_DIR")
            .env_remove("CROWDTRAIN_STATE")
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs `crowdtrain <args> --state <state>`.
    pub fn run(&self, args: &[&str]) -> Ran {
        let out: Output = self.command(args).output().expect("crowdtrain runs");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "crowdtrain {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs and expects failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_ne!(
            r.code, 0,
            "crowdtrain {args:?} should fail:\nstdout: {}",
            r.stdout
        );
        r.stderr
    }

    /// `status --json`.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).expect("status --json is JSON")
    }
}

/// A chain with the factory and one run on it, and funded people.
pub struct World {
    /// The chain process.
    pub net: Localnet,
    /// near-workspaces on it (the run creator and the revenue payer).
    pub worker: Worker<Sandbox>,
    /// `test.near`.
    pub root: Account,
    /// The run's account.
    pub run: String,
    /// The credentials folder people's key files are written to.
    pub credentials: PathBuf,
    /// Temporary files of the test.
    pub dir: tempfile::TempDir,
}

impl World {
    /// Starts a chain, deploys the factory, creates run `gpt` (goal `goal`), or
    /// `None` (reason printed) when `make contracts` has not built the wasm.
    pub async fn start(goal: u128) -> Option<World> {
        Self::start_with(goal, |_| {}).await
    }

    /// [`World::start`] with the run's config changed by `edit` first.
    pub async fn start_with(goal: u128, edit: impl FnOnce(&mut Value)) -> Option<World> {
        let (Some(factory_wasm), Some(_)) =
            (wasm("crowdtrain_factory.wasm"), wasm("crowdtrain_run.wasm"))
        else {
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let net = Localnet::start(&dir.path().join("chain"));
        let worker = near_workspaces::sandbox()
            .rpc_addr(&net.url())
            .validator_key(ValidatorKey::HomeDir(dir.path().join("chain")))
            .await
            .expect("near-workspaces connects to crowdtrain-localnet");
        let root = worker.root_account().unwrap();
        let factory = deploy_factory(&root, &factory_wasm).await;
        let now_ms = worker.view_block().await.unwrap().timestamp() / 1_000_000;
        let mut run_config = config("test.near", now_ms, goal);
        edit(&mut run_config);
        let (out, run) = create_run(&root, &factory, "gpt", run_config).await;
        assert!(out.is_success(), "{out:?}");
        let credentials = dir.path().join("credentials");
        Some(World {
            net,
            worker,
            root,
            run: run.to_string(),
            credentials,
            dir,
        })
    }

    /// [`World::start`] for a run trained by `spec` (tiny test specs): the contract
    /// holds its hash, checkpoint 0 and H, quorum 2, and `<dir>/spec.json` is written.
    pub async fn start_for_spec(spec: &crowdtrain_agent::spec::RunSpec) -> Option<World> {
        Self::start_for_spec_with(spec, |_| {}).await
    }

    /// [`World::start_for_spec`] with the run's config changed by `edit` last.
    pub async fn start_for_spec_with(
        spec: &crowdtrain_agent::spec::RunSpec,
        edit: impl FnOnce(&mut Value),
    ) -> Option<World> {
        let initial = initial_hash(spec);
        let (spec_hash, inner_steps) = (spec.hash().to_hex(), spec.fields().inner_steps);
        let world = Self::start_with(5 * NEAR, |c| {
            c["model_spec_hash"] = serde_json::json!(spec_hash);
            c["dataset_hash"] = serde_json::json!(crowdtrain_agent::data::KJV_SHA256);
            c["initial_checkpoint_hash"] = serde_json::json!(initial);
            c["initial_checkpoint_uri"] = serde_json::json!(format!("sha256:{initial}"));
            c["inner_steps"] = serde_json::json!(inner_steps);
            c["quorum"] = serde_json::json!(2);
            edit(c);
        })
        .await?;
        std::fs::write(world.spec_file(), spec.to_json()).unwrap();
        Some(world)
    }

    /// Where [`World::start_for_spec`] wrote the spec.
    pub fn spec_file(&self) -> PathBuf {
        self.dir.path().join("spec.json")
    }

    /// Creates `<name>.test.near` with `near` NEAR and writes its key file in
    /// near-cli's legacy layout (`<network>/<account>.json`) or near-cli-rs's
    /// (`<network>/<account>/<public_key>.json`).
    pub async fn person(&self, name: &str, near: u128, cli_rs: bool) -> Account {
        let sk = SecretKey::from_seed(KeyType::ED25519, name);
        let account = self
            .root
            .create_subaccount(name)
            .keys(sk.clone())
            .initial_balance(NearToken::from_yoctonear(near * NEAR))
            .transact()
            .await
            .unwrap()
            .unwrap();
        let id = account.id().to_string();
        let pk = sk.public_key().to_string();
        let path = if cli_rs {
            self.credentials
                .join("localnet")
                .join(&id)
                .join(format!("{pk}.json"))
        } else {
            self.credentials.join("localnet").join(format!("{id}.json"))
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let json =
            serde_json::json!({"account_id": id, "public_key": pk, "private_key": sk.to_string()});
        std::fs::write(&path, json.to_string()).unwrap();
        account
    }

    /// An agent for `account`, initialised with `crowdtrain init` against this chain.
    pub fn agent(&self, name: &str, account: &str, patience_secs: u64) -> Agent {
        let agent = Agent::new(&self.dir.path().join(name));
        let out = agent.ok(&[
            "init",
            "--endpoint",
            &self.net.url(),
            "--network",
            "localnet",
            "--account",
            account,
            "--run",
            &self.run,
            "--credentials",
            self.credentials.to_str().unwrap(),
            "--rpc-patience",
            &patience_secs.to_string(),
            "--listen",
            &free_udp_addr(),
        ]);
        assert!(out.contains("new receipt-signing key"), "{out}");
        agent
    }

    /// A view of the run as JSON.
    pub async fn view(&self, method: &str, args: Value) -> Value {
        let run: near_workspaces::AccountId = self.run.parse().unwrap();
        self.worker
            .view(&run, method)
            .args_json(args)
            .await
            .unwrap()
            .json()
            .unwrap()
    }

    /// `account`'s NEAR balance.
    pub async fn balance(&self, account: &Account) -> u128 {
        self.worker
            .view_account(account.id())
            .await
            .unwrap()
            .balance
            .as_yoctonear()
    }
}

/// A decimal-string amount from JSON.
pub fn num(v: &Value) -> u128 {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"))
        .parse()
        .unwrap()
}

/// A loopback address whose UDP port is free now: each agent's peer-to-peer endpoint.
pub fn free_udp_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// The hash of `spec`'s checkpoint 0: the model its seed builds.
pub fn initial_hash(spec: &crowdtrain_agent::spec::RunSpec) -> String {
    let device = crowdtrain_agent::model::device_by_name("cpu").unwrap();
    let model = crowdtrain_agent::Gpt::new(spec.config().model, spec.init_seed(), &device).unwrap();
    crowdtrain_agent::checkpoint::Checkpoint::from_model(&model)
        .unwrap()
        .hash()
        .unwrap()
        .to_hex()
}
