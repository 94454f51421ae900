//! `crowdtrain bench`: the figures of the closing note, measured in one run —
//! held-out loss of DiLoCo (int8 and int4, error feedback) against the synchronous
//! baseline at equal tokens, bytes each worker sent, and training tokens per second.

use anyhow::Result;
use candle_core::Device;
use crowdtrain_agent::adamw::AdamW;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::simulate::{RoundStats, SimConfig, run_diloco, run_sync};
use crowdtrain_agent::train::train_step;
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;
use std::time::Instant;

/// Runs every measurement and prints the tables.
pub fn run(corpus: &Corpus, quick: bool) -> Result<()> {
    // H = 256 inner steps: int8 then sends ~1/1000 of what per-step f32 gradients do.
    let (rounds, h) = if quick { (2, 16) } else { (4, 256) };
    let workers = 4;
    let base = |quant: QuantConfig| SimConfig {
        run: RunConfig {
            run_id: "crowdtrain-bench".into(),
            model: ModelConfig::tiny(),
            inner: InnerConfig::new(8, 64, rounds as u64 * h as u64),
            outer: OuterConfig::default(),
            inner_steps: h,
            quant,
            shards: 16,
        },
        workers,
        rounds,
        eval_batches: 32,
    };
    println!(
        "loss at equal tokens: tiny model, {workers} workers, {rounds} rounds × H = {h}, batch 8×64"
    );
    let sync = run_sync(&base(QuantConfig::int8()), corpus, &Device::Cpu, &mut || {})?;
    let int8 = run_diloco(&base(QuantConfig::int8()), corpus, &Device::Cpu, &mut || {})?;
    let int4 = run_diloco(&base(QuantConfig::int4()), corpus, &Device::Cpu, &mut || {})?;
    let s = sync.last().expect("rows");
    let sent = |rows: &[RoundStats]| rows.iter().map(|r| r.bytes_per_worker).sum::<u64>();
    println!("| method | tokens | held-out loss | vs sync | bytes sent per worker | reduction |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, rows) in [
        ("synchronous f32 (baseline)", &sync),
        ("DiLoCo int8 + EF", &int8),
        ("DiLoCo int4 + EF", &int4),
    ] {
        let last = rows.last().expect("rows");
        println!(
            "| {name} | {} | {:.4} | {:+.2}% | {} | {:.0}× |",
            last.tokens,
            last.heldout_loss,
            100.0 * (last.heldout_loss / s.heldout_loss - 1.0),
            sent(rows),
            sent(&sync) as f64 / sent(rows).max(1) as f64
        );
    }

    println!("\ntraining throughput (one worker: forward, backward, AdamW; batch 8×64)");
    println!("| model | parameters | steps | tokens/s |");
    println!("|---|---:|---:|---:|");
    for (name, cfg, steps) in [
        ("tiny", ModelConfig::tiny(), if quick { 5 } else { 40 }),
        ("small", ModelConfig::small(), if quick { 2 } else { 10 }),
    ] {
        let inner = InnerConfig::new(8, 64, steps);
        let model = Gpt::new(cfg, 1, &Device::Cpu)?;
        let mut opt = AdamW::new(model.params())?;
        let batches = corpus.round_batches("crowdtrain-bench", 0, 0, 16, steps as u32 + 1, 8, 64);
        train_step(&model, &mut opt, &batches[0], 0, &inner)?; // warm-up
        let t = Instant::now();
        for (i, b) in batches[1..].iter().enumerate() {
            train_step(&model, &mut opt, b, i as u64 + 1, &inner)?;
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "| {name} | {} | {steps} | {:.0} |",
            cfg.param_count(),
            (steps * 8 * 64) as f64 / secs
        );
    }
    Ok(())
}
