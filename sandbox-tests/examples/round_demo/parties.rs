//! The processes of the demo: `crowdtrain-localnet` (the chain), and one `crowdtrain`
//! agent per person, each with its own HOME, state directory and near-cli key file,
//! exactly as a person on their own machine would run it.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binaries `cargo test --workspace --all-targets` built beside this example.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `crowdtrain`.
    pub crowdtrain: PathBuf,
    /// `crowdtrain-localnet`.
    pub localnet: PathBuf,
}

impl Bins {
    /// target/<profile>/examples/round_demo-<hash> → target/<profile>/{crowdtrain,crowdtrain-localnet}.
    pub fn beside_this_exe() -> Result<Self> {
        let exe = std::env::current_exe()?;
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .context("the demo runs from target/<profile>/examples")?;
        let bin = |name: &str| {
            let path = profile.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} is missing: run `make test` (or `cargo test --workspace --all-targets --no-run`) first",
                    path.display()
                )
            }
        };
        Ok(Self {
            crowdtrain: bin("crowdtrain")?,
            localnet: bin("crowdtrain-localnet")?,
        })
    }
}

/// The `crowdtrain-localnet` process on a free loopback port; killed when dropped.
pub struct Localnet {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Localnet {
    /// Starts the chain with its state and validator key in `home`, and the factory
    /// `factory_wasm` on `factory.test.near`.
    pub fn start(bins: &Bins, home: &Path, factory_wasm: &Path) -> Result<Self> {
        let mut child = Command::new(&bins.localnet)
            .args(["--port", "0", "--home"])
            .arg(home)
            .arg("--factory")
            .arg(factory_wasm)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting crowdtrain-localnet")?;
        let mut lines = BufReader::new(child.stdout.take().context("piped stdout")?);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        let url = first
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        if !url.starts_with("http://127.0.0.1:") {
            bail!("crowdtrain-localnet said {first:?}, not its URL");
        }
        // Keep reading so the chain never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.lines() {});
        Ok(Self { child, url })
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person's `crowdtrain`: their HOME (nothing of the real user's is read), state
/// directory and the credentials folder their key file is in.
#[derive(Clone, Debug)]
pub struct Agent {
    /// Short name, for the output.
    pub name: String,
    home: PathBuf,
    /// `--state`.
    pub state: PathBuf,
    bin: PathBuf,
}

impl Agent {
    /// `crowdtrain init` for `account` on `run` at `url`, in `dir/<name>`, its
    /// peer-to-peer endpoint on `listen`.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        bins: &Bins,
        dir: &Path,
        name: &str,
        account: &str,
        url: &str,
        run: &str,
        credentials: &Path,
        listen: &str,
    ) -> Result<Self> {
        let home = dir.join(name).join("home");
        std::fs::create_dir_all(&home)?;
        let agent = Self {
            name: name.to_string(),
            home,
            state: dir.join(name).join("state"),
            bin: bins.crowdtrain.clone(),
        };
        let credentials = credentials.to_str().context("a UTF-8 path")?;
        agent.ok(&[
            "init",
            "--endpoint",
            url,
            "--network",
            "localnet",
            "--account",
            account,
            "--run",
            run,
            "--credentials",
            credentials,
            "--listen",
            listen,
        ])?;
        Ok(agent)
    }

    /// An agent that only reads (the auditor): no account, no key.
    pub fn reader(bins: &Bins, dir: &Path, name: &str) -> Result<Self> {
        let home = dir.join(name).join("home");
        std::fs::create_dir_all(&home)?;
        Ok(Self {
            name: name.to_string(),
            home,
            state: dir.join(name).join("state"),
            bin: bins.crowdtrain.clone(),
        })
    }

    /// `crowdtrain <args> --state <state>`, not started (`spec` writes a file and
    /// takes no state).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.args(args);
        if args.first() != Some(&"spec") {
            command.arg("--state").arg(&self.state);
        }
        command
            .env("HOME", &self.home)
            .env_remove("NEAR_CREDENTIALS_DIR")
            .env_remove("CROWDTRAIN_STATE")
            .env_remove("RUST_LOG");
        // CROWDTRAIN_DEMO_LOG=info (a tracing filter) shows what every agent does.
        if let Ok(filter) = std::env::var("CROWDTRAIN_DEMO_LOG") {
            command.env("RUST_LOG", filter);
        }
        command
    }

    /// Runs `crowdtrain <args>` to the end; its stdout, or an error with its stderr.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running crowdtrain {args:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{}: `crowdtrain {}` failed ({}):\n{stdout}{}",
                self.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }
}

/// A long-running `crowdtrain` process whose output lines are printed as they come,
/// prefixed with its name, and kept.
pub struct Streaming {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Streaming {
    /// Starts `crowdtrain <args>` for `agent`.
    pub fn start(agent: &Agent, args: &[&str]) -> Result<Self> {
        let mut child = agent
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting crowdtrain {args:?}"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let out = child.stdout.take().context("piped stdout")?;
        let err = child.stderr.take().context("piped stderr")?;
        for (stream, is_err) in [
            (Box::new(out) as Box<dyn std::io::Read + Send>, false),
            (Box::new(err), true),
        ] {
            let (lines, name) = (lines.clone(), agent.name.clone());
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mark = if is_err { "!" } else { " " };
                    println!("   {name:<10}{mark} {line}");
                    lines.lock().expect("lines lock").push(line);
                }
            }));
        }
        Ok(Self {
            name: agent.name.clone(),
            child,
            lines,
            readers,
        })
    }

    /// Waits until a line contains `marker` (true), the process exits (false), or
    /// `deadline` passes (an error).
    pub fn wait_for_line(&mut self, marker: &str, deadline: Instant) -> Result<bool> {
        loop {
            if self
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .any(|l| l.contains(marker))
            {
                return Ok(true);
            }
            if self.child.try_wait()?.is_some() {
                return Ok(false);
            }
            if Instant::now() > deadline {
                bail!("{} did not say {marker:?} in time", self.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the process (as Ctrl-C would end a provider that is only serving); its
    /// output lines.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.lines.lock().expect("lines lock").clone()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `account`'s key in near-cli's credentials layout
/// (`<dir>/localnet/<account>.json`), as `near login` would have.
pub fn write_key_file(dir: &Path, account: &str, public: &str, secret: &str) -> Result<()> {
    let path = dir.join("localnet").join(format!("{account}.json"));
    std::fs::create_dir_all(path.parent().context("a parent")?)?;
    let json =
        serde_json::json!({"account_id": account, "public_key": public, "private_key": secret});
    std::fs::write(&path, json.to_string())?;
    Ok(())
}

/// A loopback address with a UDP port free right now (for a provider's endpoint).
pub fn free_udp_addr() -> Result<String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.to_string())
}
