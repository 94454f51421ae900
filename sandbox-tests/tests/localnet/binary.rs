//! The `crowdtrain-localnet` binary: prints where it serves and its key file,
//! near-workspaces connects with that home directory, and a restart keeps state.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use near_workspaces::network::ValidatorKey;
use near_workspaces::types::NearToken;

/// The binary's process, killed when the test ends (also on a failed assertion).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port; returns it and the lines it printed (URL first).
fn spawn(home: &std::path::Path) -> (Node, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crowdtrain-localnet"))
        .args(["--port", "0", "--home"])
        .arg(home)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(lines.next().expect("a line").expect("utf-8"));
    }
    let url = printed[0].rsplit(' ').next().unwrap().to_string();
    (Node(child), url, printed)
}

#[tokio::test]
async fn the_binary_serves_prints_its_key_file_and_keeps_state_across_restarts() {
    let home = tempfile::tempdir().unwrap();
    let (node, url, printed) = spawn(home.path());
    assert!(url.starts_with("http://127.0.0.1:"), "{printed:?}");
    assert_eq!(printed[1], "root account: test.near");
    let key_file = printed[2].strip_prefix("root key file: ").unwrap();
    let credentials: serde_json::Value =
        serde_json::from_slice(&std::fs::read(key_file).unwrap()).unwrap();
    assert_eq!(credentials["account_id"], "test.near");
    assert!(
        credentials["private_key"]
            .as_str()
            .unwrap()
            .starts_with("ed25519:")
    );

    let worker = near_workspaces::sandbox()
        .rpc_addr(&url)
        .validator_key(ValidatorKey::HomeDir(home.path().to_path_buf()))
        .await
        .unwrap();
    let root = worker.root_account().unwrap();
    let kept = root
        .create_subaccount("kept")
        .initial_balance(NearToken::from_near(7))
        .transact()
        .await
        .unwrap();
    assert!(kept.is_success());
    drop(node);

    let (_node, url, _) = spawn(home.path());
    let worker = near_workspaces::sandbox()
        .rpc_addr(&url)
        .validator_key(ValidatorKey::HomeDir(home.path().to_path_buf()))
        .await
        .unwrap();
    let kept_id = "kept.test.near".parse().unwrap();
    let account = worker.view_account(&kept_id).await.unwrap();
    assert_eq!(account.balance, NearToken::from_near(7));
    // The root key from the key file still signs after the restart.
    let out = worker
        .root_account()
        .unwrap()
        .transfer_near(&kept_id, NearToken::from_near(1))
        .await
        .unwrap();
    assert!(out.is_success());
}
