//! The seam between the provider loop and the other providers: [`Peers`] serves this
//! provider's blobs and checkpoints and gathers everyone else's, all addressed by
//! sha256. [`SharedDir`] implements it over one folder every provider can read and
//! write (a shared disk, or one machine in tests); the P2P swarm implements it over the
//! network.
//!
//! Folder layout (also what `crowdtrain audit` reads):
//!
//! | path | what |
//! |---|---|
//! | `ROOT/blobs/round-<r>/<sha256>.blob` | a compressed pseudo-gradient of chain round `r` |
//! | `ROOT/checkpoints/<sha256>.safetensors` | a canonical checkpoint file |
//!
//! Every file is written atomically under its content's hash, so a reader never sees a
//! torn file, and one whose bytes do not hash to its name is ignored.

use crate::provider::chain::ProviderInfo;
use crate::provider::durable::{PARTIAL_SUFFIX, write_atomic};
use crate::round::PeerBlob;
use bytes::Bytes;
use crowdtrain_protocol::{Hash32, sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// Why the peers could not be reached or written to.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A file of the shared folder could not be read or written.
    #[error("peers folder {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The network could not be reached (try again later).
    #[error("peers unreachable: {0}")]
    Unavailable(String),
}

/// Content-addressed exchange of blobs and checkpoints with the run's other providers.
pub trait Peers {
    /// Serves this provider's blob of `round` to the others; returns its hash. The bytes
    /// are handed over, not copied: a large blob is held once in memory, however the
    /// peers keep it.
    fn publish_blob(&self, round: u64, bytes: Bytes) -> Result<Hash32, PeersError>;

    /// The blobs of `round` that have arrived so far, own included, in no set order.
    /// `providers` says whom to ask.
    fn round_blobs(
        &self,
        round: u64,
        providers: &[ProviderInfo],
    ) -> Result<Vec<PeerBlob>, PeersError>;

    /// Serves a canonical checkpoint file under its hash.
    fn publish_checkpoint(&self, hash: Hash32, bytes: Bytes) -> Result<(), PeersError>;

    /// A checkpoint's bytes if a peer has them. Unverified: the caller checks the hash.
    fn fetch_checkpoint(
        &self,
        hash: Hash32,
        providers: &[ProviderInfo],
    ) -> Result<Option<Vec<u8>>, PeersError>;
}

impl<T: Peers + ?Sized> Peers for &T {
    fn publish_blob(&self, round: u64, bytes: Bytes) -> Result<Hash32, PeersError> {
        (**self).publish_blob(round, bytes)
    }
    fn round_blobs(&self, round: u64, p: &[ProviderInfo]) -> Result<Vec<PeerBlob>, PeersError> {
        (**self).round_blobs(round, p)
    }
    fn publish_checkpoint(&self, hash: Hash32, bytes: Bytes) -> Result<(), PeersError> {
        (**self).publish_checkpoint(hash, bytes)
    }
    fn fetch_checkpoint(
        &self,
        hash: Hash32,
        p: &[ProviderInfo],
    ) -> Result<Option<Vec<u8>>, PeersError> {
        (**self).fetch_checkpoint(hash, p)
    }
}

/// [`Peers`] over a folder every provider shares (see the module doc for the layout).
#[derive(Clone, Debug)]
pub struct SharedDir {
    root: PathBuf,
}

impl SharedDir {
    /// The shared folder at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where the blobs of chain round `round` lie.
    pub fn round_dir(&self, round: u64) -> PathBuf {
        round_dir(&self.root, round)
    }

    /// Where checkpoint files lie.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
}

/// `ROOT/blobs/round-<r>`: the one place the round folder's name is spelled.
pub fn round_dir(root: &Path, round: u64) -> PathBuf {
    root.join("blobs").join(format!("round-{round}"))
}

/// Every `<sha256>.blob` file in `dir` whose bytes hash to its name (others are skipped
/// with a warning). A missing folder holds no blobs.
pub fn read_blob_dir(dir: &Path) -> Result<Vec<PeerBlob>, PeersError> {
    let io = |source| PeersError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut blobs = Vec::new();
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(stem) = name.strip_suffix(".blob") else {
            continue;
        };
        if name.ends_with(PARTIAL_SUFFIX) {
            continue;
        }
        let Ok(named) = stem.parse::<Hash32>() else {
            tracing::warn!(file = %path.display(), "not a <sha256>.blob name; ignored");
            continue;
        };
        let bytes = fs::read(&path).map_err(|source| PeersError::Io {
            path: path.clone(),
            source,
        })?;
        if sha256(&bytes) != named {
            tracing::warn!(file = %path.display(), "blob bytes do not hash to its name; ignored");
            continue;
        }
        blobs.push(PeerBlob {
            peer: stem.to_string(),
            bytes: bytes.into(),
        });
    }
    Ok(blobs)
}

/// Writes `bytes` under `dir/<sha256><ext>` (atomically, once) and returns the hash.
fn store(dir: &Path, ext: &str, bytes: &[u8]) -> Result<Hash32, PeersError> {
    let hash = sha256(bytes);
    let path = dir.join(format!("{hash}{ext}"));
    let io = |source| PeersError::Io {
        path: path.clone(),
        source,
    };
    if path.exists() {
        return Ok(hash);
    }
    fs::create_dir_all(dir).map_err(io)?;
    write_atomic(&path, bytes).map_err(io)?;
    Ok(hash)
}

impl Peers for SharedDir {
    fn publish_blob(&self, round: u64, bytes: Bytes) -> Result<Hash32, PeersError> {
        store(&self.round_dir(round), ".blob", &bytes)
    }

    fn round_blobs(&self, round: u64, _: &[ProviderInfo]) -> Result<Vec<PeerBlob>, PeersError> {
        read_blob_dir(&self.round_dir(round))
    }

    fn publish_checkpoint(&self, hash: Hash32, bytes: Bytes) -> Result<(), PeersError> {
        let stored = store(&self.checkpoint_dir(), ".safetensors", &bytes)?;
        debug_assert_eq!(stored, hash, "checkpoint published under another hash");
        Ok(())
    }

    fn fetch_checkpoint(
        &self,
        hash: Hash32,
        _: &[ProviderInfo],
    ) -> Result<Option<Vec<u8>>, PeersError> {
        let path = self.checkpoint_dir().join(format!("{hash}.safetensors"));
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PeersError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_by_hash_and_a_tampered_one_is_ignored() {
        let root = std::env::temp_dir().join(format!("ct-peers-{}", std::process::id()));
        let peers = SharedDir::new(&root);
        let a = peers
            .publish_blob(2, Bytes::from_static(b"blob a"))
            .unwrap();
        let b = peers
            .publish_blob(2, Bytes::from_static(b"blob b"))
            .unwrap();
        assert_eq!(
            peers
                .publish_blob(2, Bytes::from_static(b"blob a"))
                .unwrap(),
            a,
            "idempotent"
        );
        peers
            .publish_blob(3, Bytes::from_static(b"other round"))
            .unwrap();
        let mut got: Vec<Hash32> = peers
            .round_blobs(2, &[])
            .unwrap()
            .iter()
            .map(|b| sha256(&b.bytes))
            .collect();
        got.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(got, want);
        // Bytes changed under a blob's name: left out.
        fs::write(peers.round_dir(2).join(format!("{a}.blob")), b"evil").unwrap();
        assert_eq!(peers.round_blobs(2, &[]).unwrap().len(), 1);
        assert!(peers.round_blobs(9, &[]).unwrap().is_empty());
        peers
            .publish_checkpoint(sha256(b"ck"), Bytes::from_static(b"ck"))
            .unwrap();
        assert_eq!(
            peers.fetch_checkpoint(sha256(b"ck"), &[]).unwrap().unwrap(),
            b"ck"
        );
        assert!(peers.fetch_checkpoint(a, &[]).unwrap().is_none());
        fs::remove_dir_all(&root).unwrap();
    }
}
