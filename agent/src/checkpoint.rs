//! The canonical checkpoint: one safetensors file holding every parameter
//! (`param.<name>`) and its outer momentum (`momentum.<name>`), names sorted, no
//! metadata. Its sha256 is the checkpoint hash that receipts and the chain carry.

use crate::config::ModelConfig;
use crate::model::{Gpt, layout};
use crate::{Error, Result};
use crowdtrain_protocol::{Hash32, sha256};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::BTreeMap;
use std::path::Path;

/// Parameters and outer momentum as flat f32 vectors in canonical (sorted-name) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    layout: BTreeMap<String, Vec<usize>>,
    /// Every parameter, concatenated in canonical order.
    pub params: Vec<f32>,
    /// The outer Nesterov momentum, same layout.
    pub momentum: Vec<f32>,
}

impl Checkpoint {
    /// The starting checkpoint of a run: `model`'s weights and zero momentum.
    pub fn from_model(model: &Gpt) -> Result<Self> {
        let params = model.flat()?;
        let momentum = vec![0.0; params.len()];
        Ok(Self {
            layout: layout(model.config()),
            params,
            momentum,
        })
    }

    /// A checkpoint for `cfg` with the given vectors (lengths must match the model).
    pub fn new(cfg: &ModelConfig, params: Vec<f32>, momentum: Vec<f32>) -> Result<Self> {
        let layout = layout(cfg);
        let n: usize = layout.values().map(|s| s.iter().product::<usize>()).sum();
        if params.len() != n || momentum.len() != n {
            return Err(Error::Shape(format!(
                "checkpoint vectors of {} and {} values for a model of {n}",
                params.len(),
                momentum.len()
            )));
        }
        Ok(Self {
            layout,
            params,
            momentum,
        })
    }

    /// The canonical file bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut views: Vec<(String, TensorView<'_>)> = Vec::with_capacity(2 * self.layout.len());
        let momentum = f32_bytes(&self.momentum);
        let params = f32_bytes(&self.params);
        for (prefix, data) in [("momentum", &momentum), ("param", &params)] {
            let mut offset = 0;
            for (name, shape) in &self.layout {
                let n = 4 * shape.iter().product::<usize>();
                let view = TensorView::new(Dtype::F32, shape.clone(), &data[offset..offset + n])?;
                views.push((format!("{prefix}.{name}"), view));
                offset += n;
            }
        }
        views.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(safetensors::serialize(views, None)?)
    }

    /// sha256 of the canonical bytes.
    pub fn hash(&self) -> Result<Hash32> {
        Ok(sha256(&self.to_bytes()?))
    }

    /// Parses canonical bytes for a model of shape `cfg`, refusing them unless they
    /// hash to `expected`.
    pub fn from_bytes(bytes: &[u8], cfg: &ModelConfig, expected: Hash32) -> Result<Self> {
        let actual = sha256(bytes);
        if actual != expected {
            return Err(Error::CheckpointHash { expected, actual });
        }
        let st = safetensors::SafeTensors::deserialize(bytes)?;
        let layout = layout(cfg);
        let read = |prefix: &str| -> Result<Vec<f32>> {
            let mut out = Vec::new();
            for (name, shape) in &layout {
                let key = format!("{prefix}.{name}");
                let t = st
                    .tensor(&key)
                    .map_err(|_| Error::Checkpoint(format!("missing {key}")))?;
                if t.dtype() != Dtype::F32 || t.shape() != shape.as_slice() {
                    return Err(Error::Checkpoint(format!(
                        "{key} is {:?} {:?}, expected F32 {shape:?}",
                        t.dtype(),
                        t.shape()
                    )));
                }
                out.extend(
                    t.data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
                );
            }
            Ok(out)
        };
        let params = read("param")?;
        let momentum = read("momentum")?;
        if st.len() != 2 * layout.len() {
            return Err(Error::Checkpoint(format!(
                "{} tensors, expected {}",
                st.len(),
                2 * layout.len()
            )));
        }
        Ok(Self {
            layout,
            params,
            momentum,
        })
    }

    /// Writes the canonical file and returns its hash.
    pub fn save(&self, path: &Path) -> Result<Hash32> {
        let bytes = self.to_bytes()?;
        std::fs::write(path, &bytes)?;
        Ok(sha256(&bytes))
    }

    /// Reads a file, refusing it unless it hashes to `expected`.
    pub fn load(path: &Path, cfg: &ModelConfig, expected: Hash32) -> Result<Self> {
        Self::from_bytes(&std::fs::read(path)?, cfg, expected)
    }
}

/// Little-endian bytes of `values` (safetensors stores f32 little-endian).
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn checkpoint_round_trips_and_refuses_a_wrong_hash() {
        let cfg = ModelConfig::tiny();
        let model = Gpt::new(cfg, 3, &Device::Cpu).unwrap();
        let mut ck = Checkpoint::from_model(&model).unwrap();
        ck.momentum[5] = 0.25;
        let bytes = ck.to_bytes().unwrap();
        let hash = ck.hash().unwrap();
        assert_eq!(Checkpoint::from_bytes(&bytes, &cfg, hash).unwrap(), ck);

        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let err = Checkpoint::from_bytes(&tampered, &cfg, hash)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&hash.to_hex()) && err.contains(&sha256(&tampered).to_hex()),
            "{err}"
        );
        // No metadata: the header holds only tensor entries.
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert!(!header.contains("__metadata__"));
    }
}
