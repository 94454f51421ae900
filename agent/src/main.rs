//! `crowdtrain`: the command line of providers, funders, holders and auditors: `train`
//! (train a run on chain as a provider), `audit` (recompute a round), the chain commands
//! of [`cli`] (init, register, exit, fund, claim, status, outbox), and offline tools:
//! `simulate` (DiLoCo vs synchronous training on this machine), `offline` (DiLoCo rounds
//! only, printing checkpoint hashes) and `bench` (the figures of the closing note).

mod bench;
mod cli;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::report;
use crowdtrain_agent::simulate::{Diloco, SimConfig, Start, Synchronous, run_diloco};
use crowdtrain_agent::{InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "crowdtrain",
    version,
    about = "Train a GPT together: DiLoCo rounds, compressed pseudo-gradients, receipts on NEAR"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// K workers × R rounds of DiLoCo on this machine, against synchronous data-parallel training.
    Simulate {
        #[command(flatten)]
        run: RunArgs,
        /// Directory for simulate.csv and simulate.png.
        #[arg(long, default_value = "out/simulate")]
        out: PathBuf,
    },
    /// Join a run on chain as a provider and train it, round after round, until
    /// stopped (after `init` and `register`).
    #[command(visible_alias = "join")]
    Train(cli::train::TrainArgs),
    /// Offline: DiLoCo rounds on this machine only, no chain; prints each round's
    /// checkpoint hash (bit-reproducible). To train a run on chain, use `train`.
    Offline {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Recomputes round R from checkpoint R−1 and the round's blobs; exits non-zero,
    /// naming what differs, unless it matches the chain's checkpoint.
    Audit(cli::audit::AuditArgs),
    /// Measures the figures of the closing note: loss gap, bytes sent, tokens per second.
    Bench {
        /// Fewer steps (a smoke test of the benchmark itself).
        #[arg(long)]
        quick: bool,
    },
    #[command(flatten)]
    Chain(cli::ChainCommand),
}

/// The run as set on the command line.
#[derive(Args, Clone, Debug)]
struct RunArgs {
    /// Model preset: tiny, small or gpt2.
    #[arg(long, default_value = "tiny")]
    model: String,
    /// Number of workers (K).
    #[arg(long, default_value_t = 4)]
    workers: u32,
    /// Number of rounds (R).
    #[arg(long, default_value_t = 6)]
    rounds: u32,
    /// Inner steps per round (H).
    #[arg(long, default_value_t = 50)]
    inner_steps: u32,
    /// Sequences per step per worker.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Bytes per sequence.
    #[arg(long, default_value_t = 64)]
    seq_len: usize,
    /// Peak inner learning rate (AdamW).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Outer learning rate (Nesterov).
    #[arg(long, default_value_t = 0.7)]
    outer_lr: f32,
    /// Outer momentum.
    #[arg(long, default_value_t = 0.9)]
    outer_momentum: f32,
    /// Pseudo-gradient compression: int8 or int4.
    #[arg(long, default_value = "int8")]
    quant: String,
    /// Slots per round: each worker trains on its own disjoint slot of the epoch.
    #[arg(long, default_value_t = 16)]
    shards: u32,
    /// Run id (feeds every seed).
    #[arg(long, default_value = "crowdtrain-sim")]
    run_id: String,
    /// Held-out batches per evaluation.
    #[arg(long, default_value_t = 16)]
    eval_batches: usize,
    /// Synchronous steps both methods start from (a pretrained model, as in the DiLoCo
    /// paper); the learning-rate schedule spans them and the rounds.
    #[arg(long, default_value_t = 0)]
    warm_start: u32,
    /// Where to train: cpu, cuda or cuda:N (a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl RunArgs {
    fn sim(&self) -> Result<SimConfig> {
        let Some(model) = ModelConfig::by_name(&self.model) else {
            bail!("unknown model {:?}: tiny, small or gpt2", self.model)
        };
        if self.seq_len > model.block_size {
            bail!(
                "--seq-len {} exceeds the {} model's block size {}",
                self.seq_len,
                self.model,
                model.block_size
            );
        }
        let quant = parse_quant(&self.quant)?;
        let total = self.warm_start as u64 + self.rounds as u64 * self.inner_steps as u64;
        let mut inner = InnerConfig::new(self.batch, self.seq_len, total);
        inner.step_offset = self.warm_start as u64;
        inner.lr = self.lr;
        inner.min_lr = self.lr / 10.0;
        Ok(SimConfig {
            run: RunConfig {
                run_id: self.run_id.clone(),
                model,
                inner,
                outer: OuterConfig {
                    lr: self.outer_lr,
                    momentum: self.outer_momentum,
                    ..OuterConfig::default()
                },
                inner_steps: self.inner_steps,
                quant,
                shards: self.shards,
            },
            workers: self.workers,
            rounds: self.rounds,
            eval_batches: self.eval_batches,
            warm_start_steps: self.warm_start,
        })
    }
}

fn parse_quant(s: &str) -> Result<QuantConfig> {
    match s {
        "int8" => Ok(QuantConfig::int8()),
        "int4" => Ok(QuantConfig::int4()),
        other => bail!("unknown --quant {other:?}: int8 or int4"),
    }
}

/// A progress bar over `total` inner steps.
fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} steps (eta {eta})",
        )
        .expect("static template"),
    );
    pb.set_prefix(what.to_string());
    pb
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // iroh warns about every peer that goes away (an auditor leaving, a provider
            // restarting): routine for a swarm, so only its errors show by default.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "warn,iroh=error,iroh_gossip=error,iroh_blobs=error,noq=error".into()
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Chain(chain) => return cli::run(chain),
        // Outside any runtime: the chain client blocks on one of its own.
        Command::Train(args) => return cli::train::run(&args),
        other => other,
    };
    let corpus = Corpus::kjv().context("loading the committed corpus")?;
    match command {
        Command::Simulate { run, out } => simulate(&run, &corpus, &out),
        Command::Offline { run } => {
            let sim = run.sim()?;
            let device = crowdtrain_agent::model::device_by_name(&run.device)?;
            let start = Start::new(&sim, &corpus, &device, &mut || {})?;
            let rows = run_diloco(&sim, &corpus, &start, &mut || {})?;
            for r in rows {
                let hash = r.checkpoint.map(|h| h.to_hex()).unwrap_or_default();
                println!(
                    "round {} checkpoint {hash} heldout {:.4}",
                    r.round, r.heldout_loss
                );
            }
            Ok(())
        }
        Command::Bench { quick } => bench::run(&corpus, quick),
        Command::Audit(args) => cli::audit::run(&args),
        Command::Chain(_) | Command::Train(_) => unreachable!("handled above"),
    }
}

fn simulate(args: &RunArgs, corpus: &Corpus, out: &std::path::Path) -> Result<()> {
    let sim = args.sim()?;
    let m = &sim.run.model;
    println!(
        "model {} ({} parameters), {} workers × {} rounds × {} inner steps, batch {}×{}, {}, \
         outer lr {} momentum {}",
        args.model,
        m.param_count(),
        sim.workers,
        sim.rounds,
        sim.run.inner_steps,
        sim.run.inner.batch,
        sim.run.inner.seq_len,
        args.quant,
        sim.run.outer.lr,
        sim.run.outer.momentum
    );
    // Both methods advance a round at a time so each row prints as soon as it exists.
    let steps = sim.total_inner_steps();
    let warm = sim.warm_start_steps as u64;
    let pb = bar(warm + steps * (sim.workers as u64 + 1), "training");
    let device = crowdtrain_agent::model::device_by_name(&args.device)?;
    let start = Start::new(&sim, corpus, &device, &mut || pb.inc(1))?;
    if warm > 0 {
        pb.suspend(|| {
            println!(
                "warm start: {warm} synchronous steps shared by both ({} tokens, {} bytes per \
                 worker), held-out {:.4}; the table counts from there",
                start.tokens, start.bytes_per_worker, start.heldout_loss
            )
        });
    }
    let mut d = Diloco::new(&sim, corpus, &start)?;
    let mut s = Synchronous::new(&sim, corpus, &start)?;
    let (mut diloco, mut sync) = (vec![d.initial()?], vec![s.initial()?]);
    // println through suspend: indicatif's own println drops lines when stderr is not a tty.
    pb.suspend(|| {
        println!("{}", report::table_header());
        println!("{}", report::table_row(&diloco[0], &sync[0]));
    });
    for _ in 0..sim.rounds {
        diloco.push(d.round(&mut || pb.inc(1))?);
        sync.push(s.round(&mut || pb.inc(1))?);
        let row = report::table_row(diloco.last().expect("pushed"), sync.last().expect("pushed"));
        pb.suspend(|| println!("{row}"));
    }
    pb.finish_and_clear();
    println!("{}", report::summary(&diloco, &sync));
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let csv_path = out.join("simulate.csv");
    std::fs::write(&csv_path, report::csv(&diloco, &sync))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    let png_path = out.join("simulate.png");
    let title = format!(
        "{} model, {} workers, H = {}, {}: DiLoCo vs synchronous",
        args.model, sim.workers, sim.run.inner_steps, args.quant
    );
    report::plot(&png_path, &title, &diloco, &sync)
        .with_context(|| format!("drawing {}", png_path.display()))?;
    println!("wrote {} and {}", csv_path.display(), png_path.display());
    Ok(())
}
