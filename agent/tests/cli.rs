//! `crowdtrain simulate` as a user runs it: a table row per round, in order, the closing
//! line, the CSV and the PNG; a warm start announced and used by both methods; bad
//! flags fail with a message. (That each row appears as its round ends is by
//! construction in main.rs; this test sees only the finished output.)

use std::path::Path;
use std::process::Command;

fn crowdtrain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crowdtrain"))
        .args(args)
        .output()
        .expect("crowdtrain runs")
}

/// A small simulate run (2 workers, H = 2, batch 2×32) with `extra` flags, into its own
/// directory; `None` (after saying why) when there is no font for the PNG.
fn small_simulate(name: &str, extra: &[&str]) -> Option<(std::path::PathBuf, String)> {
    let font = std::env::var("CROWDTRAIN_FONT")
        .unwrap_or_else(|_| crowdtrain_agent::report::DEFAULT_FONT.to_string());
    if !Path::new(&font).exists() {
        println!("skipped: no font at {font} for the PNG (make test installs fonts-dejavu-core)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("crowdtrain-cli-{name}-{}", std::process::id()));
    let mut args = vec![
        "simulate",
        "--workers",
        "2",
        "--inner-steps",
        "2",
        "--batch",
        "2",
        "--seq-len",
        "32",
        "--eval-batches",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = crowdtrain(&args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((dir, stdout))
}

#[test]
fn simulate_prints_a_row_per_round_and_writes_csv_and_png() {
    let Some((dir, stdout)) = small_simulate("rows", &["--rounds", "3"]) else {
        return;
    };
    let rounds: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(rounds, [0, 1, 2, 3], "{stdout}");
    let last = stdout.lines().rev().nth(1).unwrap();
    assert!(
        last.starts_with("final held-out: DiLoCo") && last.contains("× less"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.join("simulate.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    let png = std::fs::read(dir.join("simulate.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn simulate_from_a_warm_start_says_so_and_both_methods_begin_there() {
    let Some((dir, stdout)) = small_simulate("warm", &["--rounds", "1", "--warm-start", "6"])
    else {
        return;
    };
    // "warm start: 6 synchronous steps shared by both (768 tokens, ...), held-out X; ..."
    let warm = stdout
        .lines()
        .find(|l| l.starts_with("warm start: 6 synchronous steps"))
        .unwrap_or_else(|| panic!("no warm start line: {stdout}"));
    assert!(warm.contains("(768 tokens"), "{warm}");
    let heldout = warm
        .split("held-out ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or_else(|| panic!("{warm}"));
    // Round 0 of both methods is the warm start's weights.
    let row0: Vec<&str> = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some("0"))
        .unwrap_or_else(|| panic!("no round 0: {stdout}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row0.iter().filter(|&&f| f == heldout).count(),
        2,
        "{row0:?} vs {warm}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unknown_quantisation_is_refused_with_the_choices() {
    let out = crowdtrain(&["simulate", "--quant", "int3", "--rounds", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown --quant \"int3\": int8 or int4"),
        "{err}"
    );
}
