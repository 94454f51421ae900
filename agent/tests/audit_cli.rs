//! `crowdtrain audit` as an auditor runs it, on a round whose blobs and base checkpoint
//! lie in a shared peers folder: it passes when the expected hash is the round's result,
//! and otherwise exits non-zero naming what differs.

use candle_core::Device;
use crowdtrain_agent::Gpt;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::config::FIRST_ROUND;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::provider::{Peers, SharedDir};
use crowdtrain_agent::round::{PeerBlob, WorkerState, aggregate, train_local};
use crowdtrain_agent::spec::{RunSpec, SpecFields};
use crowdtrain_protocol::Hash32;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A folder holding the spec file and a shared peers folder with checkpoint 0 and the
/// two blobs of round 1; returns (folder, base hash, result hash, blob-set digest).
fn published_round(name: &str) -> (PathBuf, Hash32, Hash32, Hash32) {
    let dir = std::env::temp_dir().join(format!("ct-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = SpecFields::preset("audit.test.near", "tiny", 1, 2).unwrap();
    f.batch = 2;
    f.seq_len = 16;
    let spec = RunSpec::new(f).unwrap();
    std::fs::write(dir.join("spec.json"), spec.to_json()).unwrap();
    let cfg = spec.config();
    let corpus = Corpus::kjv().unwrap();
    let model = Gpt::new(cfg.model, spec.init_seed(), &Device::Cpu).unwrap();
    let base = Checkpoint::from_model(&model).unwrap();
    let peers = SharedDir::new(dir.join("shared"));
    peers
        .publish_checkpoint(base.hash().unwrap(), base.to_bytes().unwrap().into())
        .unwrap();
    let mut blobs = Vec::new();
    for k in 0..2 {
        let mut w = WorkerState::new(base.params.len());
        let work = train_local(cfg, &corpus, &model, &base, FIRST_ROUND, k, &mut w).unwrap();
        peers
            .publish_blob(FIRST_ROUND, work.blob_bytes.clone().into())
            .unwrap();
        blobs.push(PeerBlob {
            peer: k.to_string(),
            bytes: work.blob_bytes.into(),
        });
    }
    let agg = aggregate(cfg, FIRST_ROUND, &base, &blobs).unwrap();
    (dir, base.hash().unwrap(), agg.hash, agg.blob_set)
}

fn audit(dir: &Path, base: Hash32, expect: Hash32, extra: &[&str]) -> Output {
    let shared = dir.join("shared");
    let (base, expect) = (base.to_hex(), expect.to_hex());
    let mut args = vec![
        "audit",
        "--round",
        "1",
        "--spec",
        dir.join("spec.json").to_str().unwrap(),
        "--blobs",
        shared.to_str().unwrap(),
        "--checkpoints",
        shared.to_str().unwrap(),
        "--base",
        &base,
        "--expect",
        &expect,
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    Command::new(env!("CARGO_BIN_EXE_crowdtrain"))
        .args(&args)
        .output()
        .expect("crowdtrain runs")
}

#[test]
fn audit_passes_on_the_round_result_and_names_every_difference_otherwise() {
    let (dir, base, result, blob_set) = published_round("cli");
    let ok = audit(&dir, base, result, &["--blob-set", &blob_set.to_hex()]);
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        out.contains("2 blobs") && out.contains("matches the chain"),
        "{out}"
    );

    // The chain claims another checkpoint and another blob set: both are named.
    let wrong = Hash32([7; 32]);
    let bad = audit(&dir, base, wrong, &["--blob-set", &wrong.to_hex()]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("checkpoint differs")
            && err.contains(&wrong.to_hex())
            && err.contains(&result.to_hex()),
        "{err}"
    );
    assert!(err.contains("blob set differs"), "{err}");

    // Without the base checkpoint there is nothing to recompute from: the file is named.
    let missing = audit(&dir, wrong, result, &[]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(err.contains(&format!("{wrong}.safetensors")), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
