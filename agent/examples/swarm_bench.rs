//! `make bench`: one blob between two swarm nodes on loopback, against a plain TCP copy
//! of the same bytes over loopback measured in the same run.
//!
//!     make agent-bench-swarm            # SWARM_BENCH_MIB=64 for a quick one
//!     cargo run --release -p crowdtrain-agent --example swarm_bench -- [MIB]
//!
//! MIB defaults to 1024 (a 1 GiB blob). `make agent-bench-swarm` runs it as this
//! example's ignored test, from the build `make test` made. The swarm path is the one a round takes:
//! publish (into the node's iroh-blobs store on disk, and a signed announcement on
//! gossip), then the other node hears it, downloads it with BLAKE3-verified streaming
//! and checks its sha256.

use crowdtrain_agent::provider::{Peers, ProviderInfo};
use crowdtrain_agent::swarm::{Swarm, SwarmConfig, node};
use iroh::SecretKey;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[cfg_attr(test, allow(dead_code))]
fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1024);
    run(mib)
}

/// Both copies of `mib` MiB, and the table.
fn run(mib: usize) -> anyhow::Result<()> {
    let len = mib << 20;
    // Not all zeros: no layer gets to compress it.
    let bytes: bytes::Bytes = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect::<Vec<u8>>()
        .into();

    let tcp = tcp_copy(&bytes)?;
    let swarm = swarm_copy(bytes)?;
    let mb = len as f64 / 1e6;
    println!("| path ({mib} MiB) | seconds | MB/s | vs TCP |");
    println!("|---|---|---|---|");
    println!(
        "| plain TCP copy on loopback | {:.2} | {:.0} | 1.00× |",
        tcp.as_secs_f64(),
        mb / tcp.as_secs_f64()
    );
    println!(
        "| swarm: publish, announce, download, sha256 check | {:.2} | {:.0} | {:.2}× |",
        swarm.as_secs_f64(),
        mb / swarm.as_secs_f64(),
        tcp.as_secs_f64() / swarm.as_secs_f64()
    );
    // Both nodes live in this process: the sender's blob and the receiver's copy are
    // each held once (about 2 × MIB); the stores stream to and from disk.
    if let Some(peak) = peak_rss_mib() {
        println!(
            "\npeak resident memory of the process (both nodes): {peak} MiB = {:.2} × the blob",
            peak as f64 / mib as f64
        );
    }
    Ok(())
}

/// The process's peak resident set (VmHWM) in MiB, where /proc says it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Seconds to send `bytes` through one loopback TCP connection and read them back.
fn tcp_copy(bytes: &[u8]) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let len = bytes.len();
    let reader = std::thread::spawn(move || -> std::io::Result<usize> {
        let (mut conn, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < len {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok(total)
    });
    let started = Instant::now();
    let mut conn = TcpStream::connect(addr)?;
    conn.write_all(bytes)?;
    drop(conn);
    let got = reader.join().expect("reader thread")?;
    anyhow::ensure!(got == len, "TCP copy moved {got} of {len} bytes");
    Ok(started.elapsed())
}

/// Seconds from publishing `bytes` on one node until the other holds them, checked.
fn swarm_copy(bytes: bytes::Bytes) -> anyhow::Result<Duration> {
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let config = SwarmConfig {
        download_timeout: Duration::from_secs(600),
        ..SwarmConfig::default()
    };
    let a = Swarm::open(
        "bench.near",
        SecretKey::from_bytes(&[1; 32]),
        dirs.0.path(),
        &[],
        config.clone(),
    )?;
    let b = Swarm::open(
        "bench.near",
        SecretKey::from_bytes(&[2; 32]),
        dirs.1.path(),
        &[],
        config,
    )?;
    let providers: Vec<ProviderInfo> = [("a", &a), ("b", &b)]
        .iter()
        .enumerate()
        .map(|(i, (name, s))| ProviderInfo {
            account: format!("{name}.near"),
            index: i as u32,
            signing_key: String::new(),
            node_id: node::node_id(s.id(), s.bound().first().copied()),
            active: true,
        })
        .collect();
    // Both know each other before the clock starts (as registered providers do).
    b.round_blobs(0, &providers)?;
    a.round_blobs(0, &providers)?;
    let started = Instant::now();
    let hash = a.publish_blob(1, bytes)?;
    loop {
        let got = b.round_blobs(1, &providers)?;
        if let Some(blob) = got.iter().find(|p| p.peer == "a.near") {
            anyhow::ensure!(crowdtrain_protocol::sha256(&blob.bytes) == hash);
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(900),
            "the blob did not arrive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    /// The benchmark from `make test`'s build: `cargo test --workspace --example
    /// swarm_bench -- --ignored --nocapture` (size in SWARM_BENCH_MIB, default 1024).
    #[test]
    #[ignore = "a benchmark: make agent-bench-swarm"]
    fn swarm_against_tcp() {
        let mib = std::env::var("SWARM_BENCH_MIB")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024);
        super::run(mib).unwrap();
    }
}
