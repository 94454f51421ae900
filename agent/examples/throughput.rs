//! Training throughput of one worker at one model shape: forward, backward and AdamW
//! on batches of the committed corpus, after one warm-up step. Prints one JSON line
//! (tokens per second, peak resident memory, first and last loss), the same fields as
//! `agent/bench/torch_gpt.py`, which `make bench` runs beside it.
//!
//! `RAYON_NUM_THREADS` sets the threads (candle's matrix products and our kernels).
//! `--device cuda[:N]` trains on a GPU instead (a build with `--features cuda`); each
//! step reads its loss back, so the timing waits for the GPU.
//!
//!     cargo run --release -p crowdtrain-agent --example throughput -- \
//!         --layers 2 --heads 4 --width 64 --context 64 --steps 20

use anyhow::{Context, Result, bail};
use crowdtrain_agent::adamw::AdamW;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::model::device_by_name;
use crowdtrain_agent::train::train_step;
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig};
use std::time::Instant;

/// `--name value` from the command line, parsed.
fn arg(args: &[String], name: &str, default: Option<usize>) -> Result<usize> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .with_context(|| format!("{name} takes a number")),
        None => default.with_context(|| format!("{name} is required")),
    }
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let cfg = ModelConfig {
        vocab: 256,
        block_size: arg(&args, "--context", None)?,
        n_layer: arg(&args, "--layers", None)?,
        n_head: arg(&args, "--heads", None)?,
        n_embd: arg(&args, "--width", None)?,
    };
    let batch = arg(&args, "--batch", Some(8))?;
    let steps = arg(&args, "--steps", None)?;
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let name = match args.iter().position(|a| a == "--device") {
        Some(i) => args
            .get(i + 1)
            .context("--device needs cpu, cuda or cuda:N")?,
        None => "cpu",
    };
    let device = device_by_name(name)?;
    let corpus = Corpus::kjv()?;
    let inner = InnerConfig::new(batch, cfg.block_size, steps as u64 + 1);
    let model = Gpt::new(cfg, 1, &device)?;
    let mut opt = AdamW::new(model.params())?;
    let batches = corpus.round_batches(
        "throughput",
        0,
        0,
        16,
        steps as u32 + 1,
        batch,
        cfg.block_size,
    );
    let first = train_step(&model, &mut opt, &batches[0], 0, &inner)?;
    let t = Instant::now();
    let mut last = first;
    for (i, b) in batches[1..].iter().enumerate() {
        last = train_step(&model, &mut opt, b, i as u64 + 1, &inner)?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"tokens_per_s\": {:.1}, \"peak_rss_kib\": {}, \"first_loss\": {first}, \"last_loss\": {last}, \"threads\": {}, \"device\": \"{name}\"}}",
        (steps * batch * cfg.block_size) as f64 / secs,
        peak_rss_kib(),
        candle_core::utils::get_num_threads()
    );
    Ok(())
}
