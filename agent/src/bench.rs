//! `crowdtrain bench`: the figures of the closing note, measured in one run —
//! held-out loss of DiLoCo (int8 and int4, error feedback) against the synchronous
//! baseline at equal tokens, bytes each worker sent, and training tokens per second.

use anyhow::Result;
use candle_core::Device;
use crowdtrain_agent::adamw::AdamW;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::report;
use crowdtrain_agent::simulate::{RoundStats, SimConfig, run_diloco, run_sync};
use crowdtrain_agent::train::train_step;
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;
use std::io::Write as _;
use std::time::Instant;

/// Rounds of the loss figures (H = 256 each).
const ROUNDS: u32 = 8;
/// Sequences of 64 bytes per worker per inner step.
const BATCH: usize = 8;
/// The outer optimiser of the loss figures. Over 8 rounds from random weights the
/// DiLoCo default (lr 0.7, momentum 0.9) goes on re-applying the first, large
/// pseudo-gradients; lr 1.0 with momentum 0.5 did best of those we tried.
const OUTER: OuterConfig = OuterConfig {
    lr: 1.0,
    momentum: 0.5,
};

/// The DiLoCo setting the loss figures are measured at.
struct LossBench {
    rounds: u32,
    inner_steps: u32,
    batch: usize,
}

impl LossBench {
    fn sim(&self, quant: QuantConfig, outer: OuterConfig) -> SimConfig {
        let mut inner =
            InnerConfig::new(self.batch, 64, self.rounds as u64 * self.inner_steps as u64);
        inner.min_lr = inner.lr / 10.0;
        SimConfig {
            run: RunConfig {
                run_id: "crowdtrain-bench".into(),
                model: ModelConfig::tiny(),
                inner,
                outer,
                inner_steps: self.inner_steps,
                quant,
                shards: 16,
            },
            workers: WORKERS,
            rounds: self.rounds,
            eval_batches: 32,
        }
    }
}

const WORKERS: u32 = 4;

/// Runs every measurement and prints the tables.
pub fn run(corpus: &Corpus, quick: bool) -> Result<()> {
    // H = 256 inner steps: int8 then sends ~1/1000 of what per-step f32 gradients do.
    let lb = if quick {
        LossBench {
            rounds: 2,
            inner_steps: 16,
            batch: 8,
        }
    } else {
        LossBench {
            rounds: ROUNDS,
            inner_steps: 256,
            batch: BATCH,
        }
    };
    println!(
        "loss at equal tokens: tiny model, {WORKERS} workers, {} rounds × H = {}, batch {}×64 per worker",
        lb.rounds, lb.inner_steps, lb.batch
    );
    println!(
        "| method | tokens | held-out loss | vs sync | bytes sent per worker | reduction | minutes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let timed = |f: &dyn Fn() -> crowdtrain_agent::Result<Vec<RoundStats>>| {
        let t = Instant::now();
        f().map(|rows| (rows, t.elapsed().as_secs_f64() / 60.0))
    };
    let (sync, sync_min) = timed(&|| {
        run_sync(
            &lb.sim(QuantConfig::int8(), OUTER),
            corpus,
            &Device::Cpu,
            &mut || {},
        )
    })?;
    let s = sync.last().expect("rows").clone();
    let print = |name: &str, rows: &[RoundStats], minutes: f64| {
        let last = rows.last().expect("rows");
        println!(
            "| {name} | {} | {:.4} | {:+.2}% | {} | {:.0}× | {minutes:.1} |",
            last.tokens,
            last.heldout_loss,
            report::gap_percent(last, &s),
            report::bytes_sent(rows),
            report::bytes_sent(&sync) as f64 / report::bytes_sent(rows).max(1) as f64
        );
        std::io::stdout().flush().ok();
    };
    print("synchronous f32 (baseline)", &sync, sync_min);
    for (name, quant, outer) in [
        (
            "DiLoCo int8 + EF, outer lr 1.0 / momentum 0.5",
            QuantConfig::int8(),
            OUTER,
        ),
        (
            "DiLoCo int4 + EF, outer lr 1.0 / momentum 0.5",
            QuantConfig::int4(),
            OUTER,
        ),
        (
            "DiLoCo int8 + EF, outer lr 0.7 / momentum 0.9 (DiLoCo's default)",
            QuantConfig::int8(),
            OuterConfig::default(),
        ),
    ] {
        let (rows, minutes) =
            timed(&|| run_diloco(&lb.sim(quant, outer), corpus, &Device::Cpu, &mut || {}))?;
        print(name, &rows, minutes);
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
