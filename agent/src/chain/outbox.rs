//! The durable outbox: every state-changing call the agent decides to make is on
//! disk before it goes to the chain, and leaves the disk only once the chain has a
//! final outcome for it. A crash, a restart or an endpoint that is down loses
//! nothing, and since a resent signed transaction keeps its hash, nothing is
//! posted twice.
//!
//! One JSON file per call, `DIR/outbox/<seq>.json` (seq zero-padded, so name order
//! is send order):
//!
//! | field | meaning |
//! |---|---|
//! | `seq` | position in the queue (1, 2, …; never reused while the folder lives) |
//! | `call` | what to do: signer, receiver, method, args (base64), deposit (yocto, decimal), gas, a label for people |
//! | `signed` | `null` until signed; then `hash` (base58) and `tx` (base64 of the borsh `SignedTransaction`) |
//!
//! Every write goes to a temporary file that is fsynced, renamed over the entry and
//! followed by an fsync of the folder: an entry is either the old one or the new one,
//! never half of each. `DIR/outbox/lock` serializes processes sharing the folder.

use super::{ChainError, Result, io_err};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::AccountId;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One function call, as decided (before any nonce or block hash exists).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// The account that signs and pays.
    pub signer: AccountId,
    /// The contract called.
    pub receiver: AccountId,
    /// The method.
    pub method: String,
    /// JSON arguments, as bytes (base64 on disk).
    #[serde(with = "b64")]
    pub args: Vec<u8>,
    /// Attached yoctoNEAR (a decimal string on disk).
    #[serde(with = "decimal")]
    pub deposit: u128,
    /// Prepaid gas.
    pub gas: u64,
    /// What a person reads in the queue ("fund 10 NEAR", "receipt round 3").
    pub label: String,
}

/// A call's signed transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signed {
    /// The transaction hash (what the chain indexes it by).
    pub hash: CryptoHash,
    /// borsh of the `SignedTransaction` (base64 on disk).
    #[serde(with = "b64")]
    pub tx: Vec<u8>,
}

impl Signed {
    /// Wraps a signed transaction.
    pub fn new(tx: &SignedTransaction) -> Self {
        Self {
            hash: tx.get_hash(),
            tx: borsh::to_vec(tx).expect("a signed transaction serializes"),
        }
    }

    /// The transaction back.
    pub fn transaction(&self) -> std::io::Result<SignedTransaction> {
        borsh::from_slice(&self.tx)
    }
}

/// One queued call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the queue.
    pub seq: u64,
    /// What to do.
    pub call: Call,
    /// The transaction, once signed.
    pub signed: Option<Signed>,
}

/// The queue of calls not yet known to be final, in a folder.
#[derive(Clone, Debug)]
pub struct Outbox {
    dir: PathBuf,
}

/// Holds the outbox for one process; dropped, it lets the next one in.
pub struct OutboxLock {
    _file: File,
}

const LAST_SEQ: &str = "last_seq";

impl Outbox {
    /// Opens (creating) the outbox in `dir`; leftovers of an interrupted write are removed.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        for entry in std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))? {
            let path = entry.map_err(io_err(dir.display().to_string()))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("removing {}", path.display())))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for other processes on this outbox to finish, then holds it.
    pub fn lock(&self) -> Result<OutboxLock> {
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        file.lock()
            .map_err(io_err(format!("locking {}", path.display())))?;
        Ok(OutboxLock { _file: file })
    }

    fn path_of(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:012}.json"))
    }

    /// Queues `call` behind everything already queued; durable when this returns.
    pub fn push(&self, call: Call) -> Result<OutboxEntry> {
        let last_path = self.dir.join(LAST_SEQ);
        let last = match std::fs::read_to_string(&last_path) {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
            Err(_) => 0,
        };
        let newest = self.entries()?.last().map_or(0, |e| e.seq);
        let seq = last.max(newest) + 1;
        let entry = OutboxEntry {
            seq,
            call,
            signed: None,
        };
        self.write(&entry)?;
        write_atomically(&last_path, seq.to_string().as_bytes())?;
        Ok(entry)
    }

    /// Replaces an entry (e.g. once it is signed); durable when this returns.
    pub fn write(&self, entry: &OutboxEntry) -> Result<()> {
        let json = serde_json::to_vec_pretty(entry).expect("an entry serializes");
        write_atomically(&self.path_of(entry.seq), &json)
    }

    /// Every queued entry, oldest first.
    pub fn entries(&self) -> Result<Vec<OutboxEntry>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(io_err(format!("reading {}", self.dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let bytes = std::fs::read(p).map_err(io_err(format!("reading {}", p.display())))?;
                serde_json::from_slice(&bytes).map_err(|e| ChainError::BadKeyFile {
                    path: p.clone(),
                    reason: format!("not an outbox entry ({e}); move it away to go on"),
                })
            })
            .collect()
    }

    /// Removes an entry whose outcome is final; durable when this returns.
    pub fn remove(&self, seq: u64) -> Result<()> {
        let path = self.path_of(seq);
        std::fs::remove_file(&path).map_err(io_err(format!("removing {}", path.display())))?;
        sync_dir(&self.dir)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new
/// one: temporary file, fsync, rename, fsync of the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_err(format!("writing {}", tmp.display())))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err(format!("renaming {}", tmp.display())))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A rename is durable only once the folder itself is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

mod b64 {
    use super::B64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Base64 of bytes (the encoding the outbox and the contract's signatures use).
pub fn base64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_crypto::{KeyType, SecretKey};
    use near_primitives::transaction::{Transaction, TransactionV0};

    fn call(label: &str) -> Call {
        Call {
            signer: "alice.test.near".parse().unwrap(),
            receiver: "run.test.near".parse().unwrap(),
            method: "deposit".into(),
            args: b"{}".to_vec(),
            deposit: 10u128.pow(24) * 3 + 7,
            gas: 30_000_000_000_000,
            label: label.into(),
        }
    }

    fn signed_tx(nonce: u64) -> SignedTransaction {
        let sk = SecretKey::from_seed(KeyType::ED25519, "alice");
        let tx = Transaction::V0(TransactionV0 {
            signer_id: "alice.test.near".parse().unwrap(),
            public_key: sk.public_key(),
            nonce,
            receiver_id: "run.test.near".parse().unwrap(),
            block_hash: CryptoHash::hash_bytes(b"block"),
            actions: vec![],
        });
        let (hash, _) = tx.get_hash_and_size();
        SignedTransaction::new(sk.sign(hash.as_ref()), tx)
    }

    #[test]
    fn entries_come_back_in_order_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        for label in ["a", "b", "c"] {
            outbox.push(call(label)).unwrap();
        }
        let again = Outbox::open(dir.path()).unwrap();
        let labels: Vec<String> = again
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.call.label)
            .collect();
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(again.entries().unwrap()[0].call, call("a"));
    }

    #[test]
    fn a_signed_entry_keeps_its_exact_transaction_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let mut entry = outbox.push(call("fund")).unwrap();
        let tx = signed_tx(5);
        entry.signed = Some(Signed::new(&tx));
        outbox.write(&entry).unwrap();
        let back = Outbox::open(dir.path())
            .unwrap()
            .entries()
            .unwrap()
            .remove(0);
        let signed = back.signed.unwrap();
        assert_eq!(signed.hash, tx.get_hash());
        assert_eq!(signed.transaction().unwrap(), tx);
    }

    #[test]
    fn removed_entries_are_gone_and_their_numbers_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let a = outbox.push(call("a")).unwrap();
        let b = outbox.push(call("b")).unwrap();
        outbox.remove(a.seq).unwrap();
        outbox.remove(b.seq).unwrap();
        assert!(outbox.entries().unwrap().is_empty());
        let c = outbox.push(call("c")).unwrap();
        assert!(c.seq > b.seq, "{} after {}", c.seq, b.seq);
    }

    #[test]
    fn an_interrupted_write_leaves_the_old_entry_and_no_debris() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let entry = outbox.push(call("a")).unwrap();
        // A crash between writing the temporary file and the rename.
        std::fs::write(outbox.path_of(entry.seq).with_extension("tmp"), b"{\"half").unwrap();
        let reopened = Outbox::open(dir.path()).unwrap();
        assert_eq!(reopened.entries().unwrap(), vec![entry]);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_corrupt_entry_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("000000000009.json"), b"garbage").unwrap();
        let e = outbox.entries().unwrap_err().to_string();
        assert!(
            e.contains("000000000009.json") && e.contains("not an outbox entry"),
            "{e}"
        );
    }

    #[test]
    fn the_lock_is_exclusive_between_handles() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let held = outbox.lock().unwrap();
        let file = File::options()
            .write(true)
            .open(dir.path().join("lock"))
            .unwrap();
        assert!(file.try_lock().is_err(), "a second holder must wait");
        drop(held);
        assert!(file.try_lock().is_ok());
    }
}
