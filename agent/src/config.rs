//! Plain configuration structs: the model's shape, the inner and outer optimisers,
//! and the data layout. Presets are named after where they run.

use crowdtrain_kernels::QuantConfig;

/// The round convention of the whole repository (chain, agent, simulator): round 0 is
/// the initial checkpoint, round 1 is the first trained round, and round `r` trains from
/// checkpoint `r − 1`. Seeds and the learning-rate schedule take these numbers.
pub const FIRST_ROUND: u64 = 1;

/// The shape of the decoder (nanoGPT's `GPTConfig`). Byte-level, so `vocab` is 256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// Token vocabulary (256 for bytes).
    pub vocab: usize,
    /// Longest context the position table covers.
    pub block_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
}

impl ModelConfig {
    /// CI-sized: about 0.1M parameters, trains in seconds.
    pub fn tiny() -> Self {
        Self {
            vocab: 256,
            block_size: 64,
            n_layer: 2,
            n_head: 4,
            n_embd: 64,
        }
    }

    /// A real CPU run: about 3.2M parameters.
    pub fn small() -> Self {
        Self {
            vocab: 256,
            block_size: 128,
            n_layer: 4,
            n_head: 8,
            n_embd: 256,
        }
    }

    /// GPT-2-small shapes (12 × 768, 1024 context) for GPU hosts.
    pub fn gpt2() -> Self {
        Self {
            vocab: 256,
            block_size: 1024,
            n_layer: 12,
            n_head: 12,
            n_embd: 768,
        }
    }

    /// A preset by name (`tiny`, `small`, `gpt2`).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::tiny()),
            "small" => Some(Self::small()),
            "gpt2" => Some(Self::gpt2()),
            _ => None,
        }
    }

    /// Number of trainable parameters (the output head is tied to `wte`).
    pub fn param_count(&self) -> usize {
        let d = self.n_embd;
        let per_block = 2 * d
            + (3 * d * d + 3 * d)
            + (d * d + d)
            + 2 * d
            + (4 * d * d + 4 * d)
            + (4 * d * d + d);
        self.vocab * d + self.block_size * d + self.n_layer * per_block + 2 * d
    }
}

/// The inner optimiser (AdamW) and its learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InnerConfig {
    /// Sequences per step per worker.
    pub batch: usize,
    /// Tokens per sequence (at most the model's `block_size`).
    pub seq_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Steps over which the cosine decays (the whole run's inner steps, a warm start's
    /// included).
    pub total_steps: u64,
    /// Steps the weights were trained before the first round (a warm start): chain round
    /// `r`'s inner step `i` is step `step_offset + (r − 1)·H + i` of the schedule.
    pub step_offset: u64,
    /// Decoupled weight decay on matrices (not on norms, biases).
    pub weight_decay: f64,
    /// Adam's first-moment decay.
    pub beta1: f64,
    /// Adam's second-moment decay.
    pub beta2: f64,
    /// Adam's denominator guard.
    pub eps: f64,
}

impl InnerConfig {
    /// nanoGPT-like defaults for a run of `total_steps` inner steps.
    pub fn new(batch: usize, seq_len: usize, total_steps: u64) -> Self {
        Self {
            batch,
            seq_len,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: (total_steps / 20).max(1),
            total_steps,
            step_offset: 0,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
        }
    }

    /// Learning rate at global inner step `step`: linear warmup, then cosine to `min_lr`.
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        if step >= self.total_steps {
            return self.min_lr;
        }
        let span = (self.total_steps - self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / span;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        self.min_lr + cosine * (self.lr - self.min_lr)
    }

    /// The schedule step of chain round `round`'s inner step `i` with `h` inner steps a
    /// round: the one place round numbers meet the schedule (see [`FIRST_ROUND`]).
    /// Rounds before [`FIRST_ROUND`] train nothing; asking for one is a caller's bug.
    pub fn global_step(&self, round: u64, h: u32, i: u64) -> u64 {
        let trained_before = round
            .checked_sub(FIRST_ROUND)
            .expect("round 0 is the initial checkpoint: training starts at FIRST_ROUND");
        self.step_offset + trained_before * h as u64 + i
    }

    /// Tokens one worker processes per inner step.
    pub fn tokens_per_step(&self) -> u64 {
        (self.batch * self.seq_len) as u64
    }
}

/// Default of [`OuterConfig::clip_multiple`]: honest pseudo-gradients of one round differ in
/// norm by far less than 2× (agent/README.md, "Robust aggregation").
pub const DEFAULT_CLIP_MULTIPLE: f32 = 2.0;

/// The outer optimiser: Nesterov momentum on the averaged pseudo-gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OuterConfig {
    /// Outer learning rate (DiLoCo uses 0.7).
    pub lr: f32,
    /// Outer momentum (DiLoCo uses 0.9).
    pub momentum: f32,
    /// Each pseudo-gradient's L2 norm is clipped to this multiple of the round's median
    /// norm before averaging (the robust aggregation rule).
    pub clip_multiple: f32,
}

impl Default for OuterConfig {
    fn default() -> Self {
        Self {
            lr: 0.7,
            momentum: 0.9,
            clip_multiple: DEFAULT_CLIP_MULTIPLE,
        }
    }
}

/// Everything every participant of a run must agree on to reach the same bits.
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// The run's identifier (its contract account): feeds every derived seed.
    pub run_id: String,
    /// The model shape.
    pub model: ModelConfig,
    /// The inner optimiser.
    pub inner: InnerConfig,
    /// The outer optimiser.
    pub outer: OuterConfig,
    /// Inner steps per round (H).
    pub inner_steps: u32,
    /// Pseudo-gradient compression.
    pub quant: QuantConfig,
    /// Slots per round: at most this many providers train in a round, each on its own
    /// disjoint interval of the epoch's samples (see `data::DataPlan`).
    pub shards: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = InnerConfig::new(8, 64, 200); // 10 warmup steps
        assert!(c.lr_at(0) < c.lr_at(5) && c.lr_at(5) < c.lr_at(9));
        assert!(
            (c.lr_at(9) - c.lr).abs() < 1e-12,
            "peak at the end of warmup"
        );
        assert!(c.lr_at(50) > c.lr_at(150) && c.lr_at(150) > c.min_lr);
        assert_eq!(c.lr_at(500), c.min_lr);
    }

    #[test]
    fn chain_round_one_starts_the_warm_up_and_round_two_continues_it() {
        // 2 rounds × 20 steps, 2 warm-up steps: the demo's shape.
        let c = InnerConfig::new(8, 64, 40);
        let h = 20;
        assert_eq!(c.global_step(FIRST_ROUND, h, 0), 0);
        assert_eq!(
            c.lr_at(c.global_step(1, h, 0)),
            c.lr / 2.0,
            "first step warms up"
        );
        assert_eq!(c.lr_at(c.global_step(1, h, 1)), c.lr, "peak after warm-up");
        assert_eq!(c.global_step(2, h, 0), 20);
        let mid = c.lr_at(c.global_step(2, h, 0));
        assert!(
            mid > c.min_lr && mid < c.lr,
            "round 2 is mid-decay, not at the floor"
        );
        assert!(c.lr_at(c.global_step(2, h, 19)) > c.min_lr);
        let mut warm = c;
        warm.step_offset = 100;
        assert_eq!(warm.global_step(1, h, 3), 103);
    }

    #[test]
    #[should_panic(expected = "round 0 is the initial checkpoint")]
    fn round_zero_trains_nothing() {
        InnerConfig::new(8, 64, 40).global_step(0, 20, 0);
    }

    #[test]
    fn presets_have_the_documented_sizes() {
        assert!(ModelConfig::tiny().param_count() < 1_000_000);
        let small = ModelConfig::small().param_count();
        assert!((2_000_000..10_000_000).contains(&small), "{small}");
        assert_eq!(ModelConfig::by_name("gpt2"), Some(ModelConfig::gpt2()));
    }
}
