//! The provider's state directory, `DIR/provider/`: everything it needs to continue
//! after a crash with the bits it would have had.
//!
//! | file | what |
//! |---|---|
//! | `state.json` | [`ProviderState`]: the round cursor and the names of the files below |
//! | `checkpoints/<sha256>.safetensors` | the base checkpoint, and the round's result once aggregated |
//! | `adamw-<round>.safetensors` | inner AdamW moments after training `round` |
//! | `feedback-<round>.f32` | error-feedback residual after `round` (little-endian f32) |
//! | `blobs/<sha256>.blob` | this provider's own blob of the round in progress |
//!
//! Files other than `state.json` are written first, under names no committed state
//! refers to yet; then `state.json` is replaced atomically — that rename is the commit.
//! A crash before it leaves the previous state, whose files are all still there; files
//! no state refers to are removed after each commit.

use crate::adamw::AdamW;
use crate::checkpoint::Checkpoint;
use crate::config::ModelConfig;
use crate::provider::durable::{clean_partial, write_atomic};
use crate::{Error, Result};
use candle_core::Device;
use crowdtrain_protocol::{Hash32, Receipt, sha256};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// A finalized checkpoint this provider holds: which round made it, and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRef {
    /// The chain round that finalized it (0 = the initial checkpoint).
    pub round: u64,
    /// Its sha256.
    pub hash: Hash32,
}

/// What the inner steps of a round produced (the receipt's share of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainedWork {
    /// sha256 of this provider's blob.
    pub blob: Hash32,
    /// Inner steps taken.
    pub inner_steps: u32,
    /// Tokens trained on.
    pub tokens: u64,
    /// Loss of the first inner step.
    pub loss_start: f32,
    /// Loss of the last inner step.
    pub loss_end: f32,
    /// The optimiser file this provider carried into the round. If the round ends
    /// without its receipt on chain it goes back to it, so that its worker state is
    /// always the product of exactly the rounds its receipts name: what a replay audit
    /// re-trains.
    #[serde(default)]
    pub carried_adamw: Option<String>,
    /// The residual file carried into the round (see `carried_adamw`).
    #[serde(default)]
    pub carried_feedback: Option<String>,
}

/// Where the provider is in its round. Each variant is a commit point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Ready to train the open round from `base`.
    Ready,
    /// Trained `round` from `base`; its blob is served; gathering the others'.
    Trained {
        /// The chain round.
        round: u64,
        /// What training produced.
        work: TrainedWork,
    },
    /// Aggregated and signed `round`; the receipt is posted (or queued); waiting for
    /// a quorum and finalization.
    Posted {
        /// The chain round.
        round: u64,
        /// What training produced.
        work: TrainedWork,
        /// The receipt as signed (boxed: it is most of the state's size).
        receipt: Box<Receipt>,
        /// Its ed25519 signature, hex.
        signature: String,
        /// The blobs aggregated, ascending (what `finalize_round` is called with).
        blobs: Vec<Hash32>,
    },
}

/// The committed state of one provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderState {
    /// The run spec hash this directory belongs to.
    pub spec_hash: Hash32,
    /// The provider's account.
    pub account: String,
    /// The last finalized checkpoint this provider holds (the next round trains from it).
    pub base: BaseRef,
    /// File name of the AdamW moments (none before the first round).
    pub adamw: Option<String>,
    /// File name of the error-feedback residual (none: zeros).
    pub feedback: Option<String>,
    /// Where in the round it is.
    pub phase: Phase,
}

/// `DIR/provider/`: reads and commits [`ProviderState`] and the files it names.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

const STATE_FILE: &str = "state.json";

impl StateDir {
    /// Opens (creating) `dir/provider/` and removes what a crash mid-write left behind.
    pub fn open(dir: &Path) -> Result<Self> {
        let root = dir.join("provider");
        for sub in ["", "checkpoints", "blobs"] {
            fs::create_dir_all(root.join(sub))?;
            clean_partial(&root.join(sub))?;
        }
        Ok(Self { root })
    }

    /// The folder (`DIR/provider`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The committed state, or `None` for a fresh directory.
    pub fn load(&self) -> Result<Option<ProviderState>> {
        let path = self.root.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Checkpoint(format!("{} is not a provider state: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Commits `state` (the atomic rename of `state.json`), then removes the files it
    /// no longer refers to.
    pub fn commit(&self, state: &ProviderState) -> Result<()> {
        let text = serde_json::to_vec_pretty(state).expect("plain state serializes");
        write_atomic(&self.root.join(STATE_FILE), &text)?;
        self.collect_garbage(state)
    }

    /// Removes every file `state` does not name: older optimiser and residual files,
    /// checkpoints other than the base (and the round's result), blobs of past rounds.
    fn collect_garbage(&self, state: &ProviderState) -> Result<()> {
        let mut files: BTreeSet<String> = [STATE_FILE.to_string()].into();
        files.extend(state.adamw.clone());
        files.extend(state.feedback.clone());
        let mut checkpoints: BTreeSet<String> = [checkpoint_name(state.base.hash)].into();
        let mut blobs = BTreeSet::new();
        match &state.phase {
            Phase::Ready => {}
            Phase::Trained { work, .. } => {
                blobs.insert(blob_name(work.blob));
                files.extend(work.carried_adamw.clone());
                files.extend(work.carried_feedback.clone());
            }
            Phase::Posted { work, receipt, .. } => {
                blobs.insert(blob_name(work.blob));
                files.extend(work.carried_adamw.clone());
                files.extend(work.carried_feedback.clone());
                checkpoints.insert(checkpoint_name(receipt.result_checkpoint));
            }
        }
        for (dir, keep) in [
            (self.root.clone(), files),
            (self.root.join("checkpoints"), checkpoints),
            (self.root.join("blobs"), blobs),
        ] {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type()?.is_file() && !keep.contains(&name) {
                    fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Stores a checkpoint under its hash and returns the hash.
    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<Hash32> {
        self.save_checkpoint_bytes(&checkpoint.to_bytes()?)
    }

    /// Stores canonical checkpoint bytes under their hash and returns the hash.
    pub fn save_checkpoint_bytes(&self, bytes: &[u8]) -> Result<Hash32> {
        let hash = sha256(bytes);
        write_atomic(&self.checkpoint_path(hash), bytes)?;
        Ok(hash)
    }

    /// The checkpoint `hash` if this directory holds it intact. A file whose bytes do
    /// not hash to `hash` (a damaged disk) is deleted and reported as absent, so that
    /// the caller fetches it again.
    pub fn load_checkpoint(&self, hash: Hash32, cfg: &ModelConfig) -> Result<Option<Checkpoint>> {
        let path = self.checkpoint_path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match Checkpoint::from_bytes(&bytes, cfg, hash) {
            Ok(c) => Ok(Some(c)),
            Err(Error::CheckpointHash { actual, .. }) => {
                tracing::warn!(file = %path.display(), %actual, "checkpoint file damaged; deleted, fetching it again");
                fs::remove_file(&path)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The canonical bytes of checkpoint `hash`, if held.
    pub fn checkpoint_bytes(&self, hash: Hash32) -> Result<Option<Vec<u8>>> {
        match fs::read(self.checkpoint_path(hash)) {
            Ok(b) if sha256(&b) == hash => Ok(Some(b)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the AdamW state after `round` and returns its file name.
    pub fn save_adamw(&self, round: u64, adamw: &AdamW) -> Result<String> {
        let name = format!("adamw-{round}.safetensors");
        write_atomic(&self.root.join(&name), &adamw.to_bytes()?)?;
        Ok(name)
    }

    /// Reads an AdamW state file named by the committed state.
    pub fn load_adamw(&self, name: &str, device: &Device) -> Result<AdamW> {
        AdamW::from_bytes(&fs::read(self.root.join(name))?, device)
    }

    /// Writes the error-feedback residual after `round` and returns its file name.
    pub fn save_feedback(&self, round: u64, residual: &[f32]) -> Result<String> {
        let name = format!("feedback-{round}.f32");
        let bytes: Vec<u8> = residual.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_atomic(&self.root.join(&name), &bytes)?;
        Ok(name)
    }

    /// Reads a residual file named by the committed state.
    pub fn load_feedback(&self, name: &str) -> Result<Vec<f32>> {
        let bytes = fs::read(self.root.join(name))?;
        if bytes.len() % 4 != 0 {
            return Err(Error::Checkpoint(format!(
                "{name} is not a whole number of f32"
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    /// Stores this provider's own blob and returns its hash.
    pub fn save_blob(&self, bytes: &[u8]) -> Result<Hash32> {
        let hash = sha256(bytes);
        write_atomic(&self.root.join("blobs").join(blob_name(hash)), bytes)?;
        Ok(hash)
    }

    /// This provider's own blob `hash` (verified).
    pub fn load_blob(&self, hash: Hash32) -> Result<Vec<u8>> {
        let bytes = fs::read(self.root.join("blobs").join(blob_name(hash)))?;
        if sha256(&bytes) != hash {
            return Err(Error::Checkpoint(format!(
                "own blob {hash} is damaged on disk; delete {} to retrain the round",
                self.root.display()
            )));
        }
        Ok(bytes)
    }

    fn checkpoint_path(&self, hash: Hash32) -> PathBuf {
        self.root.join("checkpoints").join(checkpoint_name(hash))
    }
}

fn checkpoint_name(hash: Hash32) -> String {
    format!("{hash}.safetensors")
}

fn blob_name(hash: Hash32) -> String {
    format!("{hash}.blob")
}
