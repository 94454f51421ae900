//! The byte-level corpus (KJV by default, see `data/NOTICE`): read from a file and
//! checked against the run's dataset hash, split into train and held-out text, cut into
//! samples, and turned into the batches a provider's assignment names.

use crate::assignment::Assignment;
use crate::seeds::{Purpose, derive_seed, rng};
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use crowdtrain_protocol::{Hash32, sha256};
use rand::Rng;
use std::io::Read;
use std::path::Path;

/// The bundled corpus, gzip-compressed (4.4 MB of ASCII when inflated). Read at run time,
/// not compiled in: a run names its dataset by hash and any file with that hash will do.
pub const KJV_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/kjv.txt.gz");

/// sha256 of the bytes of [`KJV_PATH`]: the dataset hash of a run on the bundled corpus.
pub const KJV_SHA256: &str = "f8597285c2787681ed91bc104fdd33b020987b9f48814e5e6677697a117010bc";

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
    hash: Hash32,
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
    /// The bundled KJV corpus ([`KJV_PATH`]), checked against [`KJV_SHA256`].
    pub fn kjv() -> Result<Self> {
        let expected = KJV_SHA256.parse().expect("KJV_SHA256 is 64 hex digits");
        Self::from_file(Path::new(KJV_PATH), expected)
    }

    /// Reads a dataset file (plain text, or gzip by its magic bytes), refusing it unless
    /// the sha256 of the file's bytes is `expected` (the run's dataset hash).
    pub fn from_file(path: &Path, expected: Hash32) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Corpus(format!(
                "cannot read the dataset {}: {e} (pass the file whose sha256 is {expected})",
                path.display()
            ))
        })?;
        let actual = sha256(&bytes);
        if actual != expected {
            return Err(Error::Corpus(format!(
                "{} hashes to {actual} but the run's dataset is {expected}: \
                 use the run's dataset file",
                path.display()
            )));
        }
        Self::from_bytes(path, bytes, actual)
    }

    /// Reads a dataset file whatever its hash (a run's owner choosing its dataset);
    /// [`Self::hash`] is then the run's `dataset_hash`.
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::Corpus(format!("cannot read the dataset {}: {e}", path.display()))
        })?;
        let hash = sha256(&bytes);
        Self::from_bytes(path, bytes, hash)
    }

    /// The corpus of a file's `bytes` (whose sha256 is `hash`).
    fn from_bytes(path: &Path, bytes: Vec<u8>, actual: Hash32) -> Result<Self> {
        let text = if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .read_to_end(&mut text)
                .map_err(|e| Error::Corpus(format!("cannot inflate {}: {e}", path.display())))?;
            text
        } else {
            bytes
        };
        let mut corpus = Self::from_text(text)?;
        corpus.hash = actual;
        Ok(corpus)
    }

    /// The dataset hash: sha256 of the file read, or of the text given to [`Self::from_text`].
    pub fn hash(&self) -> Hash32 {
        self.hash
    }

    /// Splits `text`: the last 5% (from a line break on) is held out. The rest is cut
    /// into pieces of whole lines of about [`CHUNK_BYTES`] and shuffled once, with a
    /// fixed seed, so that every stretch mixes the whole text (as a pretraining set of
    /// shuffled documents does) instead of being one or two books.
    pub fn from_text(mut text: Vec<u8>) -> Result<Self> {
        let hash = sha256(&text);
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
            hash,
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

    /// Training samples of `seq_len` (inputs and next-byte targets): sample `j` is the
    /// `seq_len + 1` bytes from `j · seq_len`, so samples share only their edge byte.
    pub fn samples(&self, seq_len: usize) -> u64 {
        (self.train.len().saturating_sub(1) / seq_len.max(1)) as u64
    }

    /// The order of the training samples in `epoch` of run `run_id`: a Fisher–Yates
    /// permutation of `0..samples(seq_len)` seeded from (run, epoch).
    pub fn epoch_order(&self, run_id: &str, epoch: u64, seq_len: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.samples(seq_len) as u32).collect();
        let mut prng = rng(derive_seed(Purpose::Epoch, run_id, epoch, 0));
        for i in (1..order.len()).rev() {
            order.swap(i, prng.random_range(0..=i));
        }
        order
    }

    /// The sample indices an assignment names, in training order.
    pub fn assigned_samples(&self, run_id: &str, a: &Assignment) -> Vec<u32> {
        let order = self.epoch_order(run_id, a.epoch, a.seq_len);
        order[a.first as usize..(a.first + a.samples()) as usize].to_vec()
    }

    /// The batches of an assignment, one per inner step, in order.
    pub fn batches(&self, run_id: &str, a: &Assignment) -> Vec<Batch> {
        let samples = self.assigned_samples(run_id, a);
        samples
            .chunks(a.batch)
            .map(|chunk| self.batch_of(chunk, a.seq_len))
            .collect()
    }

    /// The `steps` batches provider `provider` trains on in `round` when the run has
    /// `shards` slots per round (see [`crate::assignment::DataPlan`]).
    ///
    /// # Panics
    /// When `provider >= shards` or the corpus holds less than one round of samples;
    /// [`crate::assignment::DataPlan`] returns those as errors.
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
        let plan = crate::assignment::DataPlan::new(self, seq_len, batch, steps, shards)
            .unwrap_or_else(|e| panic!("{e}"));
        let a = plan
            .assignment(run_id, round, provider)
            .unwrap_or_else(|e| panic!("{e}"));
        self.batches(run_id, &a)
    }

    /// One batch of the given training samples.
    fn batch_of(&self, samples: &[u32], seq_len: usize) -> Batch {
        let mut inputs = Vec::with_capacity(samples.len() * seq_len);
        let mut targets = Vec::with_capacity(samples.len() * seq_len);
        for &j in samples {
            let start = j as usize * seq_len;
            let w = &self.train[start..start + seq_len + 1];
            inputs.extend(w[..seq_len].iter().map(|&b| b as u32));
            targets.extend(w[1..].iter().map(|&b| b as u32));
        }
        Batch {
            batch: samples.len(),
            seq_len,
            inputs,
            targets,
        }
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
    fn shuffled_training_text_holds_the_same_lines() {
        let c = Corpus::kjv().unwrap();
        assert!(c.train().len() > 4_000_000, "the corpus is a few MB");
        assert!(c.train().ends_with(b"\n"));
        // Shuffling moves whole lines: the same lines, in another order.
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(std::fs::read(KJV_PATH).unwrap().as_slice())
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
    fn a_dataset_file_must_match_the_run_hash() {
        let c = Corpus::kjv().unwrap();
        assert_eq!(c.hash().to_hex(), KJV_SHA256);
        let dir = std::env::temp_dir().join(format!("crowdtrain-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny.txt");
        let text = "In the beginning\n".repeat(200);
        std::fs::write(&path, &text).unwrap();
        let plain = Corpus::from_file(&path, sha256(text.as_bytes())).unwrap();
        assert_eq!(plain.hash(), sha256(text.as_bytes()));
        assert!(plain.heldout().starts_with(b"In the beginning"));
        let err = Corpus::from_file(&path, c.hash()).unwrap_err().to_string();
        assert!(
            err.contains(KJV_SHA256) && err.contains(&sha256(text.as_bytes()).to_hex()),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batches_are_deterministic_windows_of_the_training_text() {
        let c = Corpus::kjv().unwrap();
        let a = c.round_batches("run", 2, 1, 16, 3, 4, 32);
        assert_eq!(a, c.round_batches("run", 2, 1, 16, 3, 4, 32));
        assert_ne!(a, c.round_batches("run", 2, 2, 16, 3, 4, 32));
        assert_eq!(a.len(), 3);
        // Targets are the inputs shifted by one byte, and every row is a window of the text.
        assert_eq!(a[0].inputs[1..32], a[0].targets[..31]);
        let row: Vec<u8> = a[0].inputs[..32].iter().map(|&t| t as u8).collect();
        assert!(c.train().windows(32).any(|w| w == row.as_slice()));
    }
}
