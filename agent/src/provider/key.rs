//! The receipt-signing key: a separate ed25519 key (not the account's) kept in
//! `DIR/signing_key.json` in near-cli's format, `{"account_id", "public_key",
//! "private_key"}`, keys written `ed25519:<base58>` (the private key is the 32-byte
//! seed followed by the 32-byte public key, as near-cli writes it).

use crate::provider::durable::write_atomic;
use crowdtrain_protocol::Receipt;
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file name of the key inside a state directory.
pub const KEY_FILE: &str = "signing_key.json";

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("signing key {path}: {source} (run `crowdtrain init` to create it)")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a near-cli ed25519 key file.
    #[error("signing key {path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The key file's fields, as near-cli writes them.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    account_id: String,
    public_key: String,
    private_key: String,
}

/// A provider's receipt-signing key and the account it signs for.
#[derive(Clone, Debug)]
pub struct ReceiptKey {
    account: String,
    signing: SigningKey,
}

impl ReceiptKey {
    /// The key of `account` made from a 32-byte seed.
    pub fn from_seed(account: &str, seed: [u8; 32]) -> Self {
        Self {
            account: account.to_string(),
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Reads `path`, checking that the public key matches the private one.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let secret = decode(&file.private_key).map_err(&bad)?;
        let seed: [u8; 32] = secret
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("private_key must hold at least 32 bytes".into()))?;
        let key = Self::from_seed(&file.account_id, seed);
        if key.public_key() != file.public_key {
            return Err(bad(format!(
                "public_key {} does not belong to private_key (which gives {})",
                file.public_key,
                key.public_key()
            )));
        }
        Ok(key)
    }

    /// Writes the key file atomically (near-cli's format).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut secret = self.signing.to_bytes().to_vec();
        secret.extend_from_slice(self.signing.verifying_key().as_bytes());
        let file = KeyFile {
            account_id: self.account.clone(),
            public_key: self.public_key(),
            private_key: format!("ed25519:{}", bs58::encode(secret).into_string()),
        };
        let text = serde_json::to_string_pretty(&file).expect("strings serialize");
        write_atomic(path, text.as_bytes()).map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The account this key signs receipts for.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The public key as the run contract stores it: `ed25519:<base58>`.
    pub fn public_key(&self) -> String {
        let public = self.signing.verifying_key();
        format!("ed25519:{}", bs58::encode(public.as_bytes()).into_string())
    }

    /// The ed25519 signature over the receipt's signing hash (what the contract verifies).
    pub fn sign(&self, receipt: &Receipt) -> [u8; 64] {
        self.signing.sign(&receipt.signing_hash().0).to_bytes()
    }
}

/// The bytes of an `ed25519:<base58>` string.
fn decode(key: &str) -> Result<Vec<u8>, String> {
    let body = key
        .strip_prefix("ed25519:")
        .ok_or_else(|| format!("{key:?} is not an ed25519 key (\"ed25519:<base58>\")"))?;
    bs58::decode(body)
        .into_vec()
        .map_err(|e| format!("not base58: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crowdtrain_protocol::Hash32;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn a_saved_key_loads_and_signs_what_the_contract_verifies() {
        let dir = std::env::temp_dir().join(format!("ct-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        let key = ReceiptKey::from_seed("gpu-berlin.test.near", [7; 32]);
        key.save(&path).unwrap();
        let back = ReceiptKey::load(&path).unwrap();
        assert_eq!(back.account(), "gpu-berlin.test.near");
        assert_eq!(back.public_key(), key.public_key());
        let receipt = Receipt {
            run: "run.near".into(),
            round: 1,
            provider: "gpu-berlin.test.near".into(),
            base_checkpoint: Hash32([1; 32]),
            result_checkpoint: Hash32([2; 32]),
            blob: Hash32([3; 32]),
            blob_set: Hash32([4; 32]),
            inner_steps: 5,
            tokens: 6,
            loss_start: 5.5,
            loss_end: 4.5,
            unix_ms: 7,
        };
        let sig = Signature::from_bytes(&back.sign(&receipt));
        let public: [u8; 32] = decode(&key.public_key()).unwrap().try_into().unwrap();
        VerifyingKey::from_bytes(&public)
            .unwrap()
            .verify(&receipt.signing_hash().0, &sig)
            .expect("verifies under the published key");
        // A file whose public key is someone else's is refused, naming both.
        let text = std::fs::read_to_string(&path).unwrap().replace(
            &key.public_key(),
            &ReceiptKey::from_seed("x", [8; 32]).public_key(),
        );
        std::fs::write(&path, text).unwrap();
        let err = ReceiptKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("does not belong to private_key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
