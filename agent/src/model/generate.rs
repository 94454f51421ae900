//! Text from the model: byte-level sampling with a temperature, seeded so the same
//! checkpoint and seed always write the same text (what `make demo` prints to show a
//! person what the run has learned).

use super::Gpt;
use crate::Result;
use crate::seeds::rng;
use candle_core::{D, IndexOp, Tensor};
use rand::Rng;

impl Gpt {
    /// `n` bytes that follow `prompt`, each drawn from the softmax of the logits divided
    /// by `temperature` (0 = always the most likely byte), with a ChaCha8 stream seeded
    /// by `seed`. The context is the last `block_size` bytes.
    pub fn generate(
        &self,
        prompt: &[u8],
        n: usize,
        temperature: f32,
        seed: u64,
    ) -> Result<Vec<u8>> {
        let mut rng = rng(seed);
        let mut text: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
        if text.is_empty() {
            text.push(u32::from(b'\n'));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let from = text.len().saturating_sub(self.cfg.block_size);
            let ctx = &text[from..];
            let idx = Tensor::from_slice(ctx, (1, ctx.len()), &self.device)?;
            let logits = self.forward(&idx)?.i((0, ctx.len() - 1))?;
            let logits: Vec<f32> = logits.to_vec1()?;
            let next = if temperature <= 0.0 {
                argmax(&logits)
            } else {
                let probs = Tensor::from_slice(&logits, logits.len(), &self.device)?;
                let probs = candle_nn::ops::softmax(&(probs / f64::from(temperature))?, D::Minus1)?;
                draw(&probs.to_vec1::<f32>()?, rng.random::<f32>())
            };
            text.push(next as u32);
            out.push(next as u8);
        }
        Ok(out)
    }
}

/// The index of the largest value (the first one on ties).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The index where the running sum of `probs` passes `u` ∈ [0, 1).
fn draw(probs: &[f32], u: f32) -> usize {
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    probs.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use candle_core::Device;

    #[test]
    fn the_same_checkpoint_and_seed_write_the_same_bytes() {
        let model = Gpt::new(ModelConfig::tiny(), 7, &Device::Cpu).unwrap();
        let a = model.generate(b"In the beginning", 24, 0.8, 1).unwrap();
        assert_eq!(a.len(), 24);
        assert_eq!(a, model.generate(b"In the beginning", 24, 0.8, 1).unwrap());
        assert_ne!(a, model.generate(b"In the beginning", 24, 0.8, 2).unwrap());
        let greedy = model.generate(b"", 8, 0.0, 1).unwrap();
        assert_eq!(greedy, model.generate(b"", 8, 0.0, 99).unwrap());
    }

    #[test]
    fn drawing_follows_the_cumulative_sum() {
        assert_eq!(draw(&[0.25, 0.5, 0.25], 0.1), 0);
        assert_eq!(draw(&[0.25, 0.5, 0.25], 0.3), 1);
        assert_eq!(draw(&[0.25, 0.5, 0.25], 0.99), 2);
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
    }
}
