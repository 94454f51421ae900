//! AdamW with decoupled weight decay whose state can be saved and restored
//! (candle's own keeps it private). Weight decay applies to matrices and embeddings,
//! not to norms or biases (nanoGPT's grouping).

use crate::config::InnerConfig;
use crate::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::BTreeMap;

/// AdamW moments per parameter name, and the number of steps taken. Cloning is cheap
/// (tensors are shared) and safe: a step replaces the moments, never writes into them.
#[derive(Clone)]
pub struct AdamW {
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
    step: u64,
}

impl AdamW {
    /// Zero moments shaped like `params`.
    pub fn new(params: &BTreeMap<String, Var>) -> Result<Self> {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, p) in params {
            m.insert(name.clone(), p.as_tensor().zeros_like()?);
            v.insert(name.clone(), p.as_tensor().zeros_like()?);
        }
        Ok(Self { m, v, step: 0 })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter that has a gradient in `grads`, at rate `lr`.
    pub fn step(
        &mut self,
        params: &BTreeMap<String, Var>,
        grads: &GradStore,
        lr: f64,
        cfg: &InnerConfig,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bias1 = 1.0 - cfg.beta1.powi(t);
        let bias2 = 1.0 - cfg.beta2.powi(t);
        for (name, p) in params {
            let Some(g) = grads.get(p.as_tensor()) else {
                continue;
            };
            let m = self
                .m
                .get_mut(name)
                .ok_or_else(|| Error::Shape(format!("no moment for {name}")))?;
            let v = self
                .v
                .get_mut(name)
                .ok_or_else(|| Error::Shape(format!("no moment for {name}")))?;
            *m = ((&*m * cfg.beta1)? + (g * (1.0 - cfg.beta1))?)?;
            *v = ((&*v * cfg.beta2)? + (g.sqr()? * (1.0 - cfg.beta2))?)?;
            let update = ((&*m / bias1)? / ((&*v / bias2)?.sqrt()? + cfg.eps)?)?;
            let theta = p.as_tensor();
            let decay = if theta.rank() >= 2 {
                cfg.weight_decay
            } else {
                0.0
            };
            let decayed = (theta * (1.0 - lr * decay))?;
            p.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The state as canonical safetensors bytes (`m.<name>`, `v.<name>`, `step`).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in &self.m {
            named.push((format!("m.{name}"), t.clone()));
        }
        for (name, t) in &self.v {
            named.push((format!("v.{name}"), t.clone()));
        }
        named.push((
            "step".into(),
            Tensor::new(&[self.step as i64], &Device::Cpu)?,
        ));
        let map: BTreeMap<String, Tensor> = named.into_iter().collect();
        Ok(safetensors::serialize(
            map.iter().map(|(k, v)| (k.clone(), v)),
            None,
        )?)
    }

    /// Restores a state saved by [`AdamW::to_bytes`] onto `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load_buffer(bytes, device)?;
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        let mut step = None;
        for (name, t) in tensors {
            if let Some(p) = name.strip_prefix("m.") {
                m.insert(p.to_string(), t.to_dtype(DType::F32)?);
            } else if let Some(p) = name.strip_prefix("v.") {
                v.insert(p.to_string(), t.to_dtype(DType::F32)?);
            } else if name == "step" {
                step = Some(t.to_vec1::<i64>()?[0] as u64);
            }
        }
        let step = step.ok_or_else(|| Error::Shape("optimizer state has no step".into()))?;
        Ok(Self { m, v, step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::data::Corpus;
    use crate::model::Gpt;
    use crate::train::train_step;

    #[test]
    fn saved_state_resumes_exactly() {
        let cfg = InnerConfig::new(2, 16, 10);
        let corpus = Corpus::kjv().unwrap();
        let batches = corpus.round_batches("adamw", 0, 0, 16, 3, 2, 16);
        let a = Gpt::new(ModelConfig::tiny(), 5, &Device::Cpu).unwrap();
        let mut opt_a = AdamW::new(a.params()).unwrap();
        train_step(&a, &mut opt_a, &batches[0], 0, &cfg).unwrap();
        train_step(&a, &mut opt_a, &batches[1], 1, &cfg).unwrap();
        // A second model resumes from the saved weights and optimiser state.
        let b = Gpt::new(ModelConfig::tiny(), 6, &Device::Cpu).unwrap();
        b.set_flat(&a.flat().unwrap()).unwrap();
        let mut opt_b = AdamW::from_bytes(&opt_a.to_bytes().unwrap(), &Device::Cpu).unwrap();
        assert_eq!(opt_b.steps(), 2);
        train_step(&a, &mut opt_a, &batches[2], 2, &cfg).unwrap();
        train_step(&b, &mut opt_b, &batches[2], 2, &cfg).unwrap();
        assert_eq!(a.flat().unwrap(), b.flat().unwrap());
        // A fresh optimiser would have taken a different step.
        let c = Gpt::new(ModelConfig::tiny(), 6, &Device::Cpu).unwrap();
        c.set_flat(&b.flat().unwrap()).unwrap();
        assert_ne!(
            opt_a.to_bytes().unwrap(),
            AdamW::new(c.params()).unwrap().to_bytes().unwrap()
        );
    }
}
