//! Which training samples each provider trains on in a round, dealt like Psyche's
//! coordinator deals batch ids: disjoint intervals, a fresh permutation every round.
//!
//! - The training text is cut into samples of `seq_len + 1` bytes (`Corpus::samples`).
//!   Every epoch visits them in its own order, a permutation seeded from (run, epoch).
//! - A *lot* is what one provider trains on in one round: `H × batch` samples, H steps.
//! - A round has `S` slots (the run's `shards`): lots `S·k .. S·k + S` of its epoch's
//!   order, where `k` is the round's place in its epoch. An epoch holds
//!   `⌊samples / (S · lot)⌋` rounds, so a round never straddles two epochs and its lots
//!   never share a sample.
//! - Provider `i` (its index in the run's provider list, `i < S`) takes slot `π_r(i)`,
//!   `π_r` a permutation of `0..S` seeded from (run, round): who reads which part of the
//!   data changes every round, and nobody can choose it.
//!
//! So within a round providers' data is disjoint, over an epoch every sample is trained
//! at most once (all of them but the tail `samples mod (S · lot)` when every slot is
//! filled), and the tokens a receipt claims are tokens nobody else was given. A slot no
//! provider fills leaves its lot untrained for that epoch.

use crate::data::Corpus;
use crate::seeds::{Purpose, derive_seed, rng};
use crate::{Error, Result};
use rand::Rng;

/// How a run deals its samples out: derived once from the corpus and the run's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataPlan {
    /// Tokens per sample (the inner `seq_len`).
    pub seq_len: usize,
    /// Samples per inner step.
    pub batch: usize,
    /// Inner steps per round (H).
    pub steps: u32,
    /// Slots per round (S).
    pub slots: u32,
    /// Training samples in the corpus.
    pub samples: u64,
    /// Whole rounds per epoch: `⌊samples / (S · lot)⌋`.
    pub rounds_per_epoch: u64,
}

/// One provider's data in one round: a run of `steps × batch` positions of its epoch's
/// sample order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The round.
    pub round: u64,
    /// The provider's index in the run's provider list.
    pub provider: u32,
    /// The slot it was dealt.
    pub slot: u32,
    /// The epoch the round belongs to.
    pub epoch: u64,
    /// First position in the epoch's sample order.
    pub first: u64,
    /// Inner steps (batches).
    pub steps: u32,
    /// Samples per batch.
    pub batch: usize,
    /// Tokens per sample.
    pub seq_len: usize,
}

impl Assignment {
    /// Samples in the assignment.
    pub fn samples(&self) -> u64 {
        self.steps as u64 * self.batch as u64
    }

    /// Tokens trained on (what the receipt claims).
    pub fn tokens(&self) -> u64 {
        self.samples() * self.seq_len as u64
    }
}

impl DataPlan {
    /// The plan for `corpus` with `steps` inner steps of `batch × seq_len` and `slots`
    /// slots a round; an error if the corpus holds less than one round.
    pub fn new(
        corpus: &Corpus,
        seq_len: usize,
        batch: usize,
        steps: u32,
        slots: u32,
    ) -> Result<Self> {
        if seq_len == 0 || batch == 0 || steps == 0 || slots == 0 {
            return Err(Error::Corpus(format!(
                "seq_len {seq_len}, batch {batch}, inner steps {steps} and slots {slots} must all be at least 1"
            )));
        }
        let samples = corpus.samples(seq_len);
        let per_round = slots as u64 * steps as u64 * batch as u64;
        let rounds_per_epoch = samples / per_round;
        if rounds_per_epoch == 0 {
            return Err(Error::Corpus(format!(
                "one round needs {per_round} samples of {seq_len} tokens ({slots} slots × {steps} steps × {batch}) \
                 but the corpus has {samples}: use fewer slots, steps or a smaller batch"
            )));
        }
        Ok(Self {
            seq_len,
            batch,
            steps,
            slots,
            samples,
            rounds_per_epoch,
        })
    }

    /// Samples per lot (one provider, one round).
    pub fn lot(&self) -> u64 {
        self.steps as u64 * self.batch as u64
    }

    /// `π_round`: entry `i` is the slot provider `i` takes.
    pub fn slot_permutation(&self, run_id: &str, round: u64) -> Vec<u32> {
        let mut slots: Vec<u32> = (0..self.slots).collect();
        let mut prng = rng(derive_seed(Purpose::Slots, run_id, round, 0));
        for i in (1..slots.len()).rev() {
            slots.swap(i, prng.random_range(0..=i));
        }
        slots
    }

    /// What provider `provider` trains on in `round`.
    pub fn assignment(&self, run_id: &str, round: u64, provider: u32) -> Result<Assignment> {
        if provider >= self.slots {
            return Err(Error::Corpus(format!(
                "provider index {provider} has no slot: the run deals {} slots a round \
                 (raise the run's slots to at least the number of providers)",
                self.slots
            )));
        }
        let slot = self.slot_permutation(run_id, round)[provider as usize];
        let place = round % self.rounds_per_epoch;
        let lot_index = place * self.slots as u64 + slot as u64;
        Ok(Assignment {
            round,
            provider,
            slot,
            epoch: round / self.rounds_per_epoch,
            first: lot_index * self.lot(),
            steps: self.steps,
            batch: self.batch,
            seq_len: self.seq_len,
        })
    }
}
