//! Two separate processes with the same run (and different thread counts) end with
//! the same checkpoint hash after DiLoCo rounds: the weights are a pure function of
//! the run config, not of the machine's scheduling.

use std::process::Command;

fn train(threads: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_crowdtrain"))
        .args([
            "offline",
            "--workers",
            "2",
            "--rounds",
            "2",
            "--inner-steps",
            "2",
            "--batch",
            "2",
            "--seq-len",
            "32",
            "--eval-batches",
            "1",
            "--run-id",
            "determinism",
        ])
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .expect("crowdtrain runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn two_processes_reach_the_same_checkpoint_hash() {
    let a = train("1");
    let b = train("2");
    assert_eq!(a.lines().count(), 3, "{a}");
    assert_eq!(a, b);
    let hashes: Vec<&str> = a
        .lines()
        .map(|l| l.split_whitespace().nth(3).unwrap())
        .collect();
    assert!(hashes.iter().all(|h| h.len() == 64));
    assert_ne!(hashes[0], hashes[2], "training changed the weights");
}
