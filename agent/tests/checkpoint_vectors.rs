//! The checkpoint format pinned, like kernels/tests/vectors.rs pins blobs: fixed tiny
//! checkpoints → sha256 of their canonical bytes, so a dependency upgrade (safetensors,
//! serde_json) or a layout change cannot silently change every checkpoint hash; and an
//! independent reader (Python's `safetensors`) gets the same tensors back.
//!
//! When a change of the format or of the model is intended, regenerate the table with
//! `CROWDTRAIN_PRINT_VECTORS=1 cargo test -p crowdtrain-agent --test checkpoint_vectors -- --nocapture`
//! and paste what it prints into [`pinned`].

use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::model::layout;
use crowdtrain_agent::{Gpt, ModelConfig};
use crowdtrain_protocol::sha256;
use std::path::PathBuf;
use std::process::Command;

/// The pinned hashes: (vector name, sha256 of the canonical checkpoint bytes).
/// `synthetic` depends only on the file format; `tiny-init-7` also on the model's
/// initialisation (model.rs), so it moves when that does.
fn pinned() -> [(&'static str, &'static str); 2] {
    [
        (
            "synthetic",
            "f427bed5012884f05851594678278d37af818cefaeba78f1cb0c9c95470e0790",
        ),
        (
            "tiny-init-7",
            "363217b41ff4f12d637a89967789c7ffa3d1620576f442cc46f175a6d92f17f2",
        ),
    ]
}

/// Every value exact in f32 and different from its neighbours, from the index alone.
fn synthetic() -> Checkpoint {
    let cfg = ModelConfig::tiny();
    let n = cfg.param_count();
    let params = (0..n).map(|i| ((i % 251) as f32 - 125.0) / 64.0).collect();
    let momentum = (0..n).map(|i| (i % 97) as f32 * -0.001_953_125).collect();
    Checkpoint::new(&cfg, params, momentum).unwrap()
}

/// The tiny model's seeded initial weights, zero momentum.
fn tiny_init() -> Checkpoint {
    let model = Gpt::new(ModelConfig::tiny(), 7, &Device::Cpu).unwrap();
    Checkpoint::from_model(&model).unwrap()
}

fn vectors() -> [(&'static str, Checkpoint); 2] {
    [("synthetic", synthetic()), ("tiny-init-7", tiny_init())]
}

#[test]
fn checkpoint_bytes_hash_to_the_pinned_values() {
    let computed: Vec<(&str, String)> = vectors()
        .iter()
        .map(|(name, ck)| (*name, sha256(&ck.to_bytes().unwrap()).to_hex()))
        .collect();
    if std::env::var_os("CROWDTRAIN_PRINT_VECTORS").is_some() {
        for (name, hash) in &computed {
            eprintln!("        (\n            \"{name}\",\n            \"{hash}\",\n        ),");
        }
    }
    for ((name, hash), (pin_name, pin)) in computed.iter().zip(pinned()) {
        assert_eq!(*name, pin_name);
        assert_eq!(
            hash, pin,
            "checkpoint vector {name} changed: if intended, regenerate (see the module docs)"
        );
    }
}

/// Where `make test` installs Python's safetensors and numpy (agent/agent.mk).
fn python_site() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/py-safetensors")
}

/// What the Python script prints for `ck`, computed in Rust from the vectors.
fn expected_lines(ck: &Checkpoint) -> Vec<String> {
    let cfg = ModelConfig::tiny();
    let mut lines = Vec::new();
    for (prefix, values) in [("momentum", &ck.momentum), ("param", &ck.params)] {
        let mut offset = 0;
        for (name, shape) in layout(&cfg) {
            let n: usize = shape.iter().product();
            let slice = &values[offset..offset + n];
            offset += n;
            let bytes: Vec<u8> = slice.iter().flat_map(|v| v.to_le_bytes()).collect();
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            lines.push(format!(
                "{prefix}.{name} float32 {} {} {:?}",
                dims.join("x"),
                sha256(&bytes).to_hex(),
                slice[0] as f64
            ));
        }
    }
    lines.sort();
    lines
}

#[test]
fn python_safetensors_reads_the_same_tensors() {
    let site = python_site();
    if !site.join("safetensors").exists() {
        eprintln!(
            "SKIPPED: Python safetensors is not installed at {} (`make test` installs it: \
             agent-py-safetensors)",
            site.display()
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("crowdtrain-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/read_checkpoint.py");
    for (name, ck) in vectors() {
        let path = dir.join(format!("{name}.safetensors"));
        ck.save(&path).unwrap();
        let out = Command::new("python3")
            .arg(&script)
            .arg(&path)
            .env("PYTHONPATH", &site)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "the Python reader failed on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        got.sort();
        assert_eq!(got, expected_lines(&ck), "{name}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
