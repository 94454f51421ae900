//! The byte-level corpus (KJV, see `data/NOTICE`), its train/held-out split, shards,
//! and the deterministic batches every worker draws from them.

use crate::seeds::{Purpose, derive_seed, rng};
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use rand::Rng;
use std::io::Read;

/// The committed corpus, gzip-compressed (4.4 MB of ASCII when inflated).
const KJV_GZ: &[u8] = include_bytes!("../data/kjv.txt.gz");

/// Share of the text (by bytes) held out from training, taken from the end.
const HELDOUT_FRACTION: f64 = 0.05;

/// Size of the pieces (whole lines, about a chapter) the training text is shuffled in.
const CHUNK_BYTES: usize = 4096;

/// Seed of that shuffle: a property of the corpus, the same for every run.
const CHUNK_SHUFFLE_SEED: u64 = 0x6b6a_765f_7368_7566; // "kjv_shuf"

/// Training and held-out text as bytes (each byte is a token).
#[derive(Clone, Debug)]
pub struct Corpus {
    train: Vec<u8>,
    heldout: Vec<u8>,
}

/// Inputs and next-byte targets for one step, `batch × seq_len` each.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Input tokens, row-major.
    pub inputs: Vec<u32>,
    /// The token following each input.
    pub targets: Vec<u32>,
}

impl Batch {
    /// The batch as `(inputs, targets)` tensors of shape `[batch, seq_len]`.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        let shape = (self.batch, self.seq_len);
        let x = Tensor::from_slice(&self.inputs, shape, device)?;
        let y = Tensor::from_slice(&self.targets, shape, device)?;
        Ok((x, y))
    }

    /// Number of tokens predicted in this batch.
    pub fn tokens(&self) -> u64 {
        (self.batch * self.seq_len) as u64
    }
}

impl Corpus {
    /// The committed KJV corpus, split 95/5 at a line break.
    pub fn kjv() -> Result<Self> {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(KJV_GZ)
            .read_to_end(&mut text)
            .map_err(|e| Error::Corpus(format!("cannot inflate the committed corpus: {e}")))?;
        Self::from_text(text)
    }

    /// Splits `text`: the last 5% (from a line break on) is held out. The rest is cut
    /// into pieces of whole lines of about [`CHUNK_BYTES`] and shuffled once, with a
    /// fixed seed, so that every shard mixes the whole text (as a pretraining set of
    /// shuffled documents does) instead of being one or two books.
    pub fn from_text(mut text: Vec<u8>) -> Result<Self> {
        let mut cut = ((text.len() as f64) * (1.0 - HELDOUT_FRACTION)) as usize;
        while cut < text.len() && text[cut] != b'\n' {
            cut += 1;
        }
        let heldout = text.split_off((cut + 1).min(text.len()));
        if heldout.len() < 2 || text.len() < 2 {
            return Err(Error::Corpus("text too short to split".into()));
        }
        Ok(Self {
            train: shuffle_chunks(&text),
            heldout,
        })
    }

    /// The training text.
    pub fn train(&self) -> &[u8] {
        &self.train
    }

    /// The held-out text.
    pub fn heldout(&self) -> &[u8] {
        &self.heldout
    }

    /// Shard `index` of `shards` equal, contiguous pieces of the (shuffled) training text.
    pub fn shard(&self, index: u32, shards: u32) -> &[u8] {
        let shards = shards.max(1) as usize;
        let len = self.train.len() / shards;
        let start = (index as usize % shards) * len;
        &self.train[start..start + len]
    }

    /// The shard a provider trains on in a round (derived from run, round, provider).
    pub fn shard_for(&self, run_id: &str, round: u64, provider: u32, shards: u32) -> &[u8] {
        let seed = derive_seed(Purpose::Shard, run_id, round, provider);
        self.shard((seed % shards.max(1) as u64) as u32, shards)
    }

    /// The `steps` batches a provider trains on in a round, in order.
    // Every argument is one coordinate of the derivation; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn round_batches(
        &self,
        run_id: &str,
        round: u64,
        provider: u32,
        shards: u32,
        steps: u32,
        batch: usize,
        seq_len: usize,
    ) -> Vec<Batch> {
        let shard = self.shard_for(run_id, round, provider, shards);
        let mut prng = rng(derive_seed(Purpose::Batch, run_id, round, provider));
        (0..steps)
            .map(|_| windows(shard, &mut prng, batch, seq_len))
            .collect()
    }

    /// Fixed held-out batches for evaluation (the same for every round of a run).
    pub fn eval_batches(
        &self,
        run_id: &str,
        count: usize,
        batch: usize,
        seq_len: usize,
    ) -> Vec<Batch> {
        let mut prng = rng(derive_seed(Purpose::Eval, run_id, 0, 0));
        (0..count)
            .map(|_| windows(&self.heldout, &mut prng, batch, seq_len))
            .collect()
    }
}

/// `text` cut after a line break once a piece reaches [`CHUNK_BYTES`], the pieces put
/// in an order drawn by Fisher–Yates from [`CHUNK_SHUFFLE_SEED`].
fn shuffle_chunks(text: &[u8]) -> Vec<u8> {
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + CHUNK_BYTES).min(text.len());
        while end < text.len() && text[end - 1] != b'\n' {
            end += 1;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    let mut prng = rng(CHUNK_SHUFFLE_SEED);
    for i in (1..pieces.len()).rev() {
        pieces.swap(i, prng.random_range(0..=i));
    }
    pieces.concat()
}

/// `batch` random windows of `seq_len + 1` bytes from `text`.
fn windows(text: &[u8], prng: &mut impl Rng, batch: usize, seq_len: usize) -> Batch {
    assert!(text.len() > seq_len + 1, "text shorter than one window");
    let mut inputs = Vec::with_capacity(batch * seq_len);
    let mut targets = Vec::with_capacity(batch * seq_len);
    for _ in 0..batch {
        let start = prng.random_range(0..text.len() - seq_len - 1);
        let w = &text[start..start + seq_len + 1];
        inputs.extend(w[..seq_len].iter().map(|&b| b as u32));
        targets.extend(w[1..].iter().map(|&b| b as u32));
    }
    Batch {
        batch,
        seq_len,
        inputs,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_mixes_the_whole_bible() {
        let c = Corpus::kjv().unwrap();
        for i in 0..16 {
            let shard = c.shard(i, 16);
            // Verses start with the book's abbreviation: "Ge1:1", "Mt5:3", ... (books whose
            // abbreviation starts with a digit, "1Co", are not counted).
            let books: std::collections::BTreeSet<&[u8]> = shard
                .split(|&b| b == b'\n')
                .filter_map(|l| {
                    let n = l.iter().position(|b| b.is_ascii_digit())?;
                    (n > 0 && l[n..].iter().take(8).any(|&b| b == b':')).then(|| &l[..n])
                })
                .collect();
            // A contiguous sixteenth would hold one to five books.
            assert!(
                books.len() >= 15,
                "shard {i} holds only {} books",
                books.len()
            );
        }
        // Shuffling moves whole lines: the same lines, in another order.
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(KJV_GZ)
            .read_to_end(&mut text)
            .unwrap();
        let mut original: Vec<&[u8]> = text[..c.train().len()].split(|&b| b == b'\n').collect();
        let mut shuffled: Vec<&[u8]> = c.train().split(|&b| b == b'\n').collect();
        assert_ne!(original, shuffled);
        original.sort_unstable();
        shuffled.sort_unstable();
        assert_eq!(original, shuffled);
    }

    #[test]
    fn corpus_splits_and_batches_are_deterministic() {
        let c = Corpus::kjv().unwrap();
        assert!(c.train().len() > 4_000_000, "the corpus is a few MB");
        assert!(c.heldout().starts_with(b"") && c.train().ends_with(b"\n"));
        let a = c.round_batches("run", 2, 1, 16, 3, 4, 32);
        let b = c.round_batches("run", 2, 1, 16, 3, 4, 32);
        assert_eq!(a, b);
        assert_ne!(a, c.round_batches("run", 2, 2, 16, 3, 4, 32));
        // Targets are the inputs shifted by one byte.
        assert_eq!(a[0].inputs[1..32], a[0].targets[..31]);
        let shard = c.shard_for("run", 2, 1, 16);
        let window: Vec<u8> = a[0].inputs[..32].iter().map(|&t| t as u8).collect();
        assert!(
            shard.windows(32).any(|w| w == window.as_slice()),
            "batches come from the shard"
        );
    }
}
