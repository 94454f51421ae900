//! `crowdtrain simulate` as a library: K DiLoCo workers exchanging blobs in memory for
//! R rounds, and the baseline — synchronous data-parallel training over the same
//! tokens with full-precision gradients averaged every step.

use crate::assignment::DataPlan;
use crate::checkpoint::Checkpoint;
use crate::config::{FIRST_ROUND, RunConfig};
use crate::data::{Batch, Corpus};
use crate::model::Gpt;
use crate::round::{PeerBlob, RoundBase, WorkerState, aggregate, train_local_at};
use crate::seeds::{Purpose, derive_seed};
use crate::train::{eval_loss, train_step};
use crate::{Result, adamw::AdamW};
use candle_core::Device;
use crowdtrain_protocol::Hash32;

/// A simulation: the run, how many workers, how many rounds, how much evaluation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The shared run configuration.
    pub run: RunConfig,
    /// Number of workers (K).
    pub workers: u32,
    /// Number of rounds (R).
    pub rounds: u32,
    /// Held-out batches per evaluation.
    pub eval_batches: usize,
    /// Synchronous steps trained before round 0, shared by both methods (0 = start from
    /// the seeded weights). The DiLoCo paper starts from such a pretrained model.
    pub warm_start_steps: u32,
}

impl SimConfig {
    /// Inner steps over the whole simulation (for the learning-rate schedule).
    pub fn total_inner_steps(&self) -> u64 {
        self.rounds as u64 * self.run.inner_steps as u64
    }
}

/// Where both methods start: the run's seeded weights, trained for
/// [`SimConfig::warm_start_steps`] synchronous steps if any, with the optimiser state of
/// those steps (DiLoCo workers and the baseline each continue from a copy of it).
pub struct Start {
    params: Vec<f32>,
    opt: Option<AdamW>,
    device: Device,
    /// Held-out loss of the starting weights.
    pub heldout_loss: f32,
    /// Tokens the warm start trained on, all workers together.
    pub tokens: u64,
    /// Bytes each worker sent during the warm start (f32 gradients every step).
    pub bytes_per_worker: u64,
}

impl Start {
    /// The seeded weights, warm-started if the simulation asks for it. The warm start
    /// reads its own batches (run id suffixed `/warm-start`), so no round sees them again.
    /// `tick` is called after every warm-start step.
    pub fn new(
        sim: &SimConfig,
        corpus: &Corpus,
        device: &Device,
        tick: &mut dyn FnMut(),
    ) -> Result<Self> {
        let eval = eval_set(sim, corpus);
        let model = initial_model(sim, device)?;
        let mut seeded = Self {
            params: model.flat()?,
            opt: None,
            device: device.clone(),
            heldout_loss: f32::NAN, // measured below on the weights actually returned
            tokens: 0,
            bytes_per_worker: 0,
        };
        if sim.warm_start_steps == 0 {
            seeded.heldout_loss = eval_loss(&model, &eval)?;
            return Ok(seeded);
        }
        let mut warm = sim.clone();
        warm.run.run_id = format!("{}/warm-start", sim.run.run_id);
        warm.run.inner_steps = sim.warm_start_steps;
        // One long round: one slot per worker, so the corpus holds it.
        warm.run.shards = sim.workers;
        warm.run.inner.step_offset = 0;
        warm.warm_start_steps = 0;
        warm.eval_batches = 0;
        let mut s = Synchronous::new(&warm, corpus, &seeded)?;
        let row = s.round(tick)?;
        Ok(Self {
            params: s.model.flat()?,
            heldout_loss: eval_loss(&s.model, &eval)?,
            opt: Some(s.opt),
            device: device.clone(),
            tokens: row.tokens,
            bytes_per_worker: row.bytes_per_worker,
        })
    }

    /// A model holding the starting weights.
    fn model(&self, sim: &SimConfig) -> Result<Gpt> {
        let model = initial_model(sim, &self.device)?;
        model.set_flat(&self.params)?;
        Ok(model)
    }
}

/// One row of the per-round table for one method (round 0 = before training).
#[derive(Clone, Debug, PartialEq)]
pub struct RoundStats {
    /// Round number (0 = initial weights).
    pub round: u32,
    /// Tokens trained on so far, all workers together.
    pub tokens: u64,
    /// Mean training loss over the round's steps (NaN for round 0).
    pub train_loss: f32,
    /// Held-out loss of the weights at the end of the round.
    pub heldout_loss: f32,
    /// Bytes each worker sent during the round.
    pub bytes_per_worker: u64,
    /// The round's checkpoint hash (DiLoCo only).
    pub checkpoint: Option<Hash32>,
}

/// K DiLoCo workers exchanging blobs in memory, advanced one round at a time.
pub struct Diloco<'a> {
    sim: &'a SimConfig,
    corpus: &'a Corpus,
    eval: Vec<Batch>,
    model: Gpt,
    checkpoint: Checkpoint,
    /// The hash of `checkpoint`, computed once per round.
    hash: Hash32,
    workers: Vec<WorkerState>,
    round: u64,
    tokens: u64,
}

impl<'a> Diloco<'a> {
    /// Workers from `start`'s weights (and its optimiser state, after a warm start).
    pub fn new(sim: &'a SimConfig, corpus: &'a Corpus, start: &Start) -> Result<Self> {
        let model = start.model(sim)?;
        let checkpoint = Checkpoint::from_model(&model)?;
        let workers = (0..sim.workers)
            .map(|_| {
                let mut w = WorkerState::new(checkpoint.params.len());
                w.adamw = start.opt.clone();
                w
            })
            .collect();
        Ok(Self {
            eval: eval_set(sim, corpus),
            sim,
            corpus,
            model,
            hash: checkpoint.hash()?,
            checkpoint,
            workers,
            round: 0,
            tokens: 0,
        })
    }

    /// The row of the initial weights (round 0).
    pub fn initial(&self) -> Result<RoundStats> {
        initial_row(&self.model, &self.eval, Some(self.hash))
    }

    /// The current checkpoint (θ and outer momentum).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// One round: every worker's H inner steps, the aggregate, the outer step.
    /// `tick` is called after each worker's inner step.
    pub fn round(&mut self, tick: &mut dyn FnMut()) -> Result<RoundStats> {
        let run = &self.sim.run;
        // `self.round` counts rounds done; the one trained now has the chain's number.
        let round = self.round + FIRST_ROUND;
        let mut blobs = Vec::new();
        let mut loss_sum = 0.0f64;
        let mut steps = 0usize;
        let mut bytes = 0u64;
        let base = RoundBase {
            checkpoint: &self.checkpoint,
            hash: self.hash,
        };
        for (k, worker) in self.workers.iter_mut().enumerate() {
            let work = train_local_at(
                run,
                self.corpus,
                &self.model,
                &base,
                round,
                k as u32,
                worker,
            )?;
            for _ in 0..work.inner_steps {
                tick();
            }
            loss_sum += work.step_losses.iter().map(|&l| l as f64).sum::<f64>();
            steps += work.step_losses.len();
            self.tokens += work.tokens;
            bytes = bytes.max(work.blob_bytes.len() as u64);
            blobs.push(PeerBlob {
                peer: format!("worker-{k}"),
                bytes: work.blob_bytes.into(),
            });
        }
        let agg = aggregate(run, round, &self.checkpoint, &blobs)?;
        self.checkpoint = agg.checkpoint;
        self.hash = agg.hash;
        self.model.set_flat(&self.checkpoint.params)?;
        self.round += 1;
        tracing::info!(round, checkpoint = %agg.hash, "round aggregated");
        Ok(RoundStats {
            round: self.round as u32,
            tokens: self.tokens,
            train_loss: (loss_sum / steps.max(1) as f64) as f32,
            heldout_loss: eval_loss(&self.model, &self.eval)?,
            bytes_per_worker: bytes,
            checkpoint: Some(agg.hash),
        })
    }
}

/// The baseline, advanced one round (H steps) at a time: one model, every step trained
/// on the K workers' batches of that step at once. The mean loss over the concatenated
/// batch has exactly the average of the K workers' gradients, which is what synchronous
/// data parallelism all-reduces (4 bytes per parameter per worker per step).
pub struct Synchronous<'a> {
    sim: &'a SimConfig,
    corpus: &'a Corpus,
    eval: Vec<Batch>,
    model: Gpt,
    opt: AdamW,
    round: u64,
    tokens: u64,
}

impl<'a> Synchronous<'a> {
    /// The baseline from the same start as DiLoCo.
    pub fn new(sim: &'a SimConfig, corpus: &'a Corpus, start: &Start) -> Result<Self> {
        let model = start.model(sim)?;
        Ok(Self {
            eval: eval_set(sim, corpus),
            opt: match &start.opt {
                Some(opt) => opt.clone(),
                None => AdamW::new(model.params())?,
            },
            sim,
            corpus,
            model,
            round: 0,
            tokens: 0,
        })
    }

    /// The row of the initial weights (round 0).
    pub fn initial(&self) -> Result<RoundStats> {
        initial_row(&self.model, &self.eval, None)
    }

    /// H steps over the round's batches of all K workers; `tick` after each step.
    pub fn round(&mut self, tick: &mut dyn FnMut()) -> Result<RoundStats> {
        let run = &self.sim.run;
        // `self.round` counts rounds done; the one trained now has the chain's number.
        let round = self.round + FIRST_ROUND;
        let h = run.inner_steps;
        let plan = DataPlan::new(
            self.corpus,
            run.inner.seq_len,
            run.inner.batch,
            h,
            run.shards,
        )?;
        let per_worker: Vec<Vec<Batch>> = (0..self.sim.workers)
            .map(|k| {
                let a = plan.assignment(&run.run_id, round, k)?;
                Ok(self.corpus.batches(&run.run_id, &a))
            })
            .collect::<Result<_>>()?;
        let mut loss_sum = 0.0f64;
        for step in 0..h as usize {
            let joined = concat(per_worker.iter().map(|w| &w[step]));
            let global_step = run.inner.global_step(round, h, step as u64);
            loss_sum +=
                train_step(&self.model, &mut self.opt, &joined, global_step, &run.inner)? as f64;
            self.tokens += joined.tokens();
            tick();
        }
        self.round += 1;
        Ok(RoundStats {
            round: self.round as u32,
            tokens: self.tokens,
            train_loss: (loss_sum / h.max(1) as f64) as f32,
            heldout_loss: eval_loss(&self.model, &self.eval)?,
            bytes_per_worker: 4 * run.model.param_count() as u64 * h as u64,
            checkpoint: None,
        })
    }
}

/// Runs K DiLoCo workers for R rounds; `tick` is called after every inner step.
pub fn run_diloco(
    sim: &SimConfig,
    corpus: &Corpus,
    start: &Start,
    tick: &mut dyn FnMut(),
) -> Result<Vec<RoundStats>> {
    let mut d = Diloco::new(sim, corpus, start)?;
    let mut rows = vec![d.initial()?];
    for _ in 0..sim.rounds {
        rows.push(d.round(tick)?);
    }
    Ok(rows)
}

/// Runs the synchronous baseline over the same tokens; `tick` after every step.
pub fn run_sync(
    sim: &SimConfig,
    corpus: &Corpus,
    start: &Start,
    tick: &mut dyn FnMut(),
) -> Result<Vec<RoundStats>> {
    let mut s = Synchronous::new(sim, corpus, start)?;
    let mut rows = vec![s.initial()?];
    for _ in 0..sim.rounds {
        rows.push(s.round(tick)?);
    }
    Ok(rows)
}

/// The run's seeded initial weights, which both methods start from.
fn initial_model(sim: &SimConfig, device: &Device) -> Result<Gpt> {
    let run = &sim.run;
    Gpt::new(
        run.model,
        derive_seed(Purpose::Init, &run.run_id, 0, 0),
        device,
    )
}

fn eval_set(sim: &SimConfig, corpus: &Corpus) -> Vec<Batch> {
    corpus.eval_batches(
        &sim.run.run_id,
        sim.eval_batches,
        sim.run.inner.batch,
        sim.run.inner.seq_len,
    )
}

fn initial_row(model: &Gpt, eval: &[Batch], checkpoint: Option<Hash32>) -> Result<RoundStats> {
    Ok(RoundStats {
        round: 0,
        tokens: 0,
        train_loss: f32::NAN,
        heldout_loss: eval_loss(model, eval)?,
        bytes_per_worker: 0,
        checkpoint,
    })
}

/// Stacks batches of equal sequence length into one.
fn concat<'a>(batches: impl Iterator<Item = &'a Batch>) -> Batch {
    let mut out = Batch {
        batch: 0,
        seq_len: 0,
        inputs: Vec::new(),
        targets: Vec::new(),
    };
    for b in batches {
        out.batch += b.batch;
        out.seq_len = b.seq_len;
        out.inputs.extend_from_slice(&b.inputs);
        out.targets.extend_from_slice(&b.targets);
    }
    out
}
