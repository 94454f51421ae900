//! [`RunSpec`]: everything that decides the bits of a run, as one serializable value with
//! a canonical hash. The hash is what the run contract stores as `model_spec_hash`; an
//! agent refuses to train unless its spec hashes to the chain's.
//!
//! `spec hash = sha256(SPEC_TAG ‖ borsh(SpecFields))`, with `SPEC_TAG =
//! b"crowdtrain:run-spec:v1\0"`. Borsh fixes the bytes of every field (f64 and f32 by
//! their IEEE bits, strings length-prefixed, fields in declaration order), so the hash
//! never depends on how a JSON file was formatted. The JSON form (`to_json`/`from_json`)
//! is for people and files; it round-trips every value exactly.
//!
//! Values derived from the fields (the schedule's total steps, the initial-weights
//! seed, the hash, the [`RunConfig`] training uses) are computed once, in
//! [`RunSpec::new`].

use crate::config::{InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crate::seeds::{Purpose, derive_seed};
use borsh::{BorshDeserialize, BorshSerialize};
use crowdtrain_kernels::{Bits, QuantConfig};
use crowdtrain_protocol::{Hash32, sha256};
use serde::{Deserialize, Serialize};

/// Domain tag of the spec hash (versioned: a new layout of [`SpecFields`] bumps it).
pub const SPEC_TAG: &[u8] = b"crowdtrain:run-spec:v1\0";

/// The fields of a run spec, exactly as serialized and hashed.
#[derive(Clone, Debug, PartialEq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFields {
    /// The run's account id: every seed (initial weights, shards, batches, rounding)
    /// derives from it.
    pub run_id: String,
    /// Name of the model preset the shape came from (`tiny`, `small`, `gpt2`, or `custom`).
    pub model_preset: String,
    /// Token vocabulary (256: bytes).
    pub vocab: u32,
    /// Longest context.
    pub block_size: u32,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Attention heads per block.
    pub n_head: u32,
    /// Width of the residual stream.
    pub n_embd: u32,
    /// Inner steps per round (H).
    pub inner_steps: u32,
    /// Rounds the learning-rate schedule spans (training may go on after, at `min_lr`).
    pub rounds: u64,
    /// Steps the initial checkpoint was already trained (a warm start); the schedule
    /// counts from there.
    pub warm_start_steps: u64,
    /// Sequences per inner step per provider.
    pub batch: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// Peak inner learning rate (AdamW).
    pub lr: f64,
    /// Inner learning rate at the end of the cosine decay.
    pub min_lr: f64,
    /// Linear warm-up steps of the inner schedule.
    pub warmup_steps: u64,
    /// AdamW's decoupled weight decay (matrices only).
    pub weight_decay: f64,
    /// AdamW's first-moment decay.
    pub beta1: f64,
    /// AdamW's second-moment decay.
    pub beta2: f64,
    /// AdamW's denominator guard.
    pub eps: f64,
    /// Outer (Nesterov) learning rate.
    pub outer_lr: f32,
    /// Outer momentum.
    pub outer_momentum: f32,
    /// The robust aggregation's clip: each pseudo-gradient's norm is clipped to this
    /// multiple of the round's median norm (`OuterConfig::clip_multiple`).
    pub outer_clip_multiple: f32,
    /// Bits per compressed value: 8 or 4.
    pub quant_bits: u8,
    /// Values sharing one scale in a compressed blob.
    pub quant_block: u32,
    /// Slots per round: at most this many providers train in a round, each on its own
    /// disjoint lot of the epoch's samples (`assignment.rs`).
    pub shards: u32,
}

/// Why a spec cannot describe a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A field is out of range; the message names it and what it must be.
    #[error("run spec: {0}")]
    Invalid(String),
    /// The JSON text is not a spec.
    #[error("run spec JSON: {0}")]
    Json(String),
}

/// A validated run spec with its derived values.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    fields: SpecFields,
    hash: Hash32,
    config: RunConfig,
    init_seed: u64,
}

impl SpecFields {
    /// The fields of a run `run_id` with model `preset`: `rounds` rounds of `inner_steps`
    /// steps, nanoGPT-like optimiser defaults, int8 compression, 16 shards.
    pub fn preset(run_id: &str, preset: &str, rounds: u64, inner_steps: u32) -> Option<Self> {
        let model = ModelConfig::by_name(preset)?;
        let seq_len = model.block_size.min(64);
        let inner = InnerConfig::new(8, seq_len, rounds * inner_steps as u64);
        let outer = OuterConfig::default();
        let quant = QuantConfig::int8();
        Some(Self {
            run_id: run_id.to_string(),
            model_preset: preset.to_string(),
            vocab: model.vocab as u32,
            block_size: model.block_size as u32,
            n_layer: model.n_layer as u32,
            n_head: model.n_head as u32,
            n_embd: model.n_embd as u32,
            inner_steps,
            rounds,
            warm_start_steps: 0,
            batch: inner.batch as u32,
            seq_len: seq_len as u32,
            lr: inner.lr,
            min_lr: inner.min_lr,
            warmup_steps: inner.warmup_steps,
            weight_decay: inner.weight_decay,
            beta1: inner.beta1,
            beta2: inner.beta2,
            eps: inner.eps,
            outer_lr: outer.lr,
            outer_momentum: outer.momentum,
            outer_clip_multiple: outer.clip_multiple,
            quant_bits: quant.bits.width(),
            quant_block: quant.block as u32,
            shards: 16,
        })
    }
}

/// The outer step of `f`: every field of [`OuterConfig`] comes from the spec, so the
/// spec hash covers the whole aggregation rule.
fn outer_config(f: &SpecFields) -> OuterConfig {
    OuterConfig {
        lr: f.outer_lr,
        momentum: f.outer_momentum,
        clip_multiple: f.outer_clip_multiple,
    }
}

impl RunSpec {
    /// Validates `fields` and derives the training configuration, seeds and hash.
    pub fn new(fields: SpecFields) -> Result<Self, SpecError> {
        let f = &fields;
        let bad = |what: String| Err(SpecError::Invalid(what));
        if f.run_id.is_empty() {
            return bad("run_id must name the run (its contract account)".into());
        }
        for (name, v) in [
            ("vocab", f.vocab),
            ("block_size", f.block_size),
            ("n_layer", f.n_layer),
            ("n_head", f.n_head),
            ("n_embd", f.n_embd),
            ("inner_steps", f.inner_steps),
            ("batch", f.batch),
            ("seq_len", f.seq_len),
            ("shards", f.shards),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !f.n_embd.is_multiple_of(f.n_head) {
            return bad(format!(
                "n_embd {} must be a multiple of n_head {}",
                f.n_embd, f.n_head
            ));
        }
        if f.seq_len > f.block_size {
            return bad(format!(
                "seq_len {} exceeds the model's block_size {}",
                f.seq_len, f.block_size
            ));
        }
        if f.rounds == 0 {
            return bad("rounds (what the schedule spans) must be at least 1".into());
        }
        if !(f.lr.is_finite() && f.lr > 0.0 && f.min_lr.is_finite() && f.min_lr >= 0.0)
            || f.min_lr > f.lr
        {
            return bad(format!(
                "learning rates must satisfy 0 ≤ min_lr ≤ lr, finite (lr {}, min_lr {})",
                f.lr, f.min_lr
            ));
        }
        for (name, b) in [("beta1", f.beta1), ("beta2", f.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(format!("{name} must be in [0, 1), not {b}"));
            }
        }
        if !(f.eps.is_finite() && f.eps > 0.0 && f.weight_decay.is_finite()) {
            return bad("eps must be positive and weight_decay finite".into());
        }
        if !(f.outer_lr.is_finite() && f.outer_momentum.is_finite()) {
            return bad("outer_lr and outer_momentum must be finite".into());
        }
        if !(f.outer_clip_multiple.is_finite() && f.outer_clip_multiple >= 1.0) {
            return bad(format!(
                "outer_clip_multiple must be a finite number of at least 1 (the median blob is never clipped), not {}",
                f.outer_clip_multiple
            ));
        }
        let Some(bits) = Bits::from_width(f.quant_bits) else {
            return bad(format!("quant_bits must be 8 or 4, not {}", f.quant_bits));
        };
        let quant = QuantConfig {
            bits,
            block: f.quant_block as usize,
        };
        quant
            .validate()
            .map_err(|e| SpecError::Invalid(format!("quant_block: {e}")))?;
        let model = ModelConfig {
            vocab: f.vocab as usize,
            block_size: f.block_size as usize,
            n_layer: f.n_layer as usize,
            n_head: f.n_head as usize,
            n_embd: f.n_embd as usize,
        };
        let inner = InnerConfig {
            batch: f.batch as usize,
            seq_len: f.seq_len as usize,
            lr: f.lr,
            min_lr: f.min_lr,
            warmup_steps: f.warmup_steps,
            total_steps: f.warm_start_steps + f.rounds * f.inner_steps as u64,
            step_offset: f.warm_start_steps,
            weight_decay: f.weight_decay,
            beta1: f.beta1,
            beta2: f.beta2,
            eps: f.eps,
        };
        let config = RunConfig {
            run_id: f.run_id.clone(),
            model,
            inner,
            outer: outer_config(f),
            inner_steps: f.inner_steps,
            quant,
            shards: f.shards,
        };
        let mut bytes = SPEC_TAG.to_vec();
        bytes.extend(borsh::to_vec(f).expect("validated fields are finite"));
        Ok(Self {
            hash: sha256(&bytes),
            init_seed: derive_seed(Purpose::Init, &f.run_id, 0, 0),
            config,
            fields,
        })
    }

    /// The fields as given.
    pub fn fields(&self) -> &SpecFields {
        &self.fields
    }

    /// The canonical hash (the run contract's `model_spec_hash`).
    pub fn hash(&self) -> Hash32 {
        self.hash
    }

    /// The training configuration the round functions take.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The seed of the run's initial weights.
    pub fn init_seed(&self) -> u64 {
        self.init_seed
    }

    /// Most tokens one provider trains on in a round (`max_tokens_per_round` on chain).
    pub fn tokens_per_round(&self) -> u64 {
        self.config.inner.tokens_per_step() * self.config.inner_steps as u64
    }

    /// The schedule step of chain round `round`'s inner step `i` (round ≥ [`crate::config::FIRST_ROUND`]).
    pub fn schedule_step(&self, round: u64, i: u64) -> u64 {
        self.config
            .inner
            .global_step(round, self.config.inner_steps, i)
    }

    /// Pretty JSON of the fields (for spec files); [`RunSpec::from_json`] reads it back.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.fields).expect("plain fields serialize")
    }

    /// Reads and validates a spec written by [`RunSpec::to_json`] (unknown fields refused).
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let fields: SpecFields =
            serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))?;
        Self::new(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> SpecFields {
        SpecFields::preset("run.factory.test.near", "tiny", 4, 10).unwrap()
    }

    #[test]
    fn json_round_trips_to_the_same_hash() {
        let mut f = tiny();
        // Values whose decimal forms are long: a lossy float parse would move their bits.
        f.lr = 0.1 + 0.2;
        f.min_lr = 1.0 / 3.0 * 1e-4;
        f.outer_lr = 0.7f32 + f32::EPSILON;
        let spec = RunSpec::new(f).unwrap();
        let back = RunSpec::from_json(&spec.to_json()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(back.hash(), spec.hash());
    }

    #[test]
    fn every_field_moves_the_hash_and_the_hash_is_pinned() {
        let base = RunSpec::new(tiny()).unwrap();
        let mut f = tiny();
        f.lr *= 1.0 + f64::EPSILON;
        assert_ne!(RunSpec::new(f).unwrap().hash(), base.hash());
        let mut f = tiny();
        f.shards = 15;
        assert_ne!(RunSpec::new(f).unwrap().hash(), base.hash());
        let mut f = tiny();
        f.outer_clip_multiple = 3.0;
        assert_ne!(RunSpec::new(f).unwrap().hash(), base.hash());
        let mut f = tiny();
        f.run_id.push('x');
        assert_ne!(RunSpec::new(f).unwrap().hash(), base.hash());
        // The documented formula, computed by hand: tag, then borsh of the fields.
        let mut bytes = b"crowdtrain:run-spec:v1\0".to_vec();
        bytes.extend(borsh::to_vec(base.fields()).unwrap());
        assert_eq!(base.hash(), sha256(&bytes));
        // borsh puts the run id first, length-prefixed (the layout is part of the hash).
        let id = b"run.factory.test.near";
        assert_eq!(bytes[23..27], (id.len() as u32).to_le_bytes());
        assert_eq!(&bytes[27..27 + id.len()], id);
    }

    #[test]
    fn derived_values_follow_the_fields() {
        let mut f = tiny();
        f.warm_start_steps = 30;
        let spec = RunSpec::new(f).unwrap();
        let c = spec.config();
        assert_eq!(c.inner.total_steps, 30 + 4 * 10);
        assert_eq!(c.inner.step_offset, 30);
        assert_eq!(spec.tokens_per_round(), 8 * 64 * 10);
        assert_eq!(
            spec.init_seed(),
            derive_seed(Purpose::Init, "run.factory.test.near", 0, 0)
        );
    }

    #[test]
    fn bad_specs_are_refused_naming_the_field() {
        type Edit = fn(&mut SpecFields);
        let cases: [(Edit, &str); 5] = [
            (|f| f.seq_len = 1000, "seq_len 1000 exceeds"),
            (|f| f.quant_bits = 2, "quant_bits must be 8 or 4"),
            (|f| f.min_lr = 1.0, "min_lr ≤ lr"),
            (|f| f.n_head = 5, "multiple of n_head"),
            (|f| f.inner_steps = 0, "inner_steps must be at least 1"),
        ];
        for (edit, want) in cases {
            let mut f = tiny();
            edit(&mut f);
            let err = RunSpec::new(f).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        let err = RunSpec::from_json(r#"{"run_id": "x", "surprise": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
