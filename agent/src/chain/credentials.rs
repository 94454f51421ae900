//! Keys: the account's own key from near-cli's credentials files (it signs
//! transactions), and the receipt-signing key the agent makes on `init` (it signs
//! receipts; `register` puts its public key on the run).
//!
//! near-cli (JS, legacy) writes `<dir>/<network>/<account>.json`; near-cli-rs writes
//! `<dir>/<network>/<account>/<public_key>.json`. Both hold
//! `{"account_id","public_key","private_key"}`; neard's files say `secret_key`.

use super::{ChainError, Result, io_err};
use near_crypto::{KeyType, PublicKey, SecretKey};
use near_primitives::types::AccountId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Environment variable that overrides the credentials folder.
pub const CREDENTIALS_ENV: &str = "NEAR_CREDENTIALS_DIR";

/// A key file in near-cli's format (or neard's, which says `secret_key`).
#[derive(Serialize, Deserialize)]
struct KeyFile {
    account_id: Option<String>,
    public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_key: Option<String>,
}

/// An account's full-access key, with the file it came from (for error messages).
#[derive(Clone, Debug)]
pub struct AccountKey {
    /// The account.
    pub account: AccountId,
    /// The secret key.
    pub secret: SecretKey,
    /// The file it was read from.
    pub path: PathBuf,
}

/// The credentials folder: `explicit`, else `$NEAR_CREDENTIALS_DIR`, else
/// `~/.near-credentials`.
pub fn credentials_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    if let Some(dir) = std::env::var_os(CREDENTIALS_ENV) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".near-credentials")
}

fn read_key_file(path: &Path) -> Result<SecretKey> {
    let bad = |reason: String| ChainError::BadKeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(io_err(format!("reading {}", path.display())))?;
    let file: KeyFile = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("not a near-cli key file ({e})")))?;
    let text = file
        .private_key
        .or(file.secret_key)
        .ok_or_else(|| bad("no \"private_key\" field".into()))?;
    text.parse()
        .map_err(|e| bad(format!("\"private_key\" is not a key ({e})")))
}

/// Finds and reads the key of `account` on `network` in `dir`: the legacy file
/// first, then near-cli-rs's folder (the first `*.json` in name order).
pub fn load_account_key(dir: &Path, network: &str, account: &AccountId) -> Result<AccountKey> {
    let legacy = dir.join(network).join(format!("{account}.json"));
    let folder = dir.join(network).join(account.as_str());
    if legacy.is_file() {
        let secret = read_key_file(&legacy)?;
        return Ok(AccountKey {
            account: account.clone(),
            secret,
            path: legacy,
        });
    }
    if let Ok(entries) = std::fs::read_dir(&folder) {
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        if let Some(path) = files.into_iter().next() {
            let secret = read_key_file(&path)?;
            return Ok(AccountKey {
                account: account.clone(),
                secret,
                path,
            });
        }
    }
    Err(ChainError::MissingCredentials {
        account: account.to_string(),
        network: network.to_string(),
        looked_at: vec![legacy, folder.join("<public_key>.json")],
    })
}

/// The provider's receipt-signing key (ed25519), kept in `DIR/signing_key.json`.
#[derive(Clone, Debug)]
pub struct SigningKey {
    /// The secret key.
    pub secret: SecretKey,
}

impl SigningKey {
    /// File name inside the state directory.
    pub const FILE: &'static str = "signing_key.json";

    /// A fresh random ed25519 key.
    pub fn generate() -> Self {
        Self {
            secret: SecretKey::from_random(KeyType::ED25519),
        }
    }

    /// The public key `register` puts on the run.
    pub fn public_key(&self) -> PublicKey {
        self.secret.public_key()
    }

    /// Signs a receipt's signing hash: the 64 ed25519 signature bytes.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match self.secret.sign(message) {
            near_crypto::Signature::ED25519(sig) => sig.to_bytes(),
            _ => unreachable!("the signing key is ed25519 (checked on load)"),
        }
    }

    /// Writes the key in near-cli's format, readable by its owner only.
    pub fn save(&self, path: &Path, account: &AccountId) -> Result<()> {
        let file = KeyFile {
            account_id: Some(account.to_string()),
            public_key: Some(self.public_key().to_string()),
            private_key: Some(self.secret.to_string()),
            secret_key: None,
        };
        let json = serde_json::to_vec_pretty(&file).expect("a key file serializes");
        super::outbox::write_atomically(path, &json)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(io_err(format!("restricting {}", path.display())))?;
        }
        Ok(())
    }

    /// Reads the key `init` wrote.
    pub fn load(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(ChainError::BadKeyFile {
                path: path.to_path_buf(),
                reason: "missing: run `crowdtrain init` to create the receipt-signing key".into(),
            });
        }
        let secret = read_key_file(path)?;
        if !matches!(secret.key_type(), KeyType::ED25519) {
            return Err(ChainError::BadKeyFile {
                path: path.to_path_buf(),
                reason: "the receipt-signing key must be ed25519".into(),
            });
        }
        Ok(Self { secret })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, json: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, json).unwrap();
    }

    #[test]
    fn both_near_cli_layouts_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let sk = SecretKey::from_seed(KeyType::ED25519, "a");
        let alice: AccountId = "alice.testnet".parse().unwrap();
        write(
            &dir.path().join("testnet/alice.testnet.json"),
            &format!(
                r#"{{"account_id":"alice.testnet","public_key":"{}","private_key":"{sk}"}}"#,
                sk.public_key()
            ),
        );
        let key = load_account_key(dir.path(), "testnet", &alice).unwrap();
        assert_eq!(key.secret, sk);

        let bob: AccountId = "bob.testnet".parse().unwrap();
        let pk = sk.public_key().to_string();
        write(
            &dir.path().join(format!("testnet/bob.testnet/{pk}.json")),
            &format!(r#"{{"account_id":"bob.testnet","public_key":"{pk}","private_key":"{sk}"}}"#),
        );
        let key = load_account_key(dir.path(), "testnet", &bob).unwrap();
        assert_eq!(key.secret, sk);
        assert!(key.path.ends_with(format!("bob.testnet/{pk}.json")));
    }

    #[test]
    fn a_missing_key_names_both_paths_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let carol: AccountId = "carol.testnet".parse().unwrap();
        let e = load_account_key(dir.path(), "testnet", &carol).unwrap_err();
        let msg = e.to_string();
        let legacy = dir.path().join("testnet/carol.testnet.json");
        assert!(msg.contains(&legacy.display().to_string()), "{msg}");
        assert!(msg.contains("carol.testnet/<public_key>.json"), "{msg}");
        assert!(msg.contains("--credentials DIR"), "{msg}");
    }

    #[test]
    fn the_signing_key_round_trips_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SigningKey::FILE);
        let key = SigningKey::generate();
        key.save(&path, &"alice.testnet".parse().unwrap()).unwrap();
        let back = SigningKey::load(&path).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        let sig = back.sign(b"receipt hash");
        let sig = near_crypto::Signature::from_parts(KeyType::ED25519, &sig).unwrap();
        assert!(sig.verify(b"receipt hash", &key.public_key()));
        let e = SigningKey::load(&dir.path().join("nope.json")).unwrap_err();
        assert!(e.to_string().contains("run `crowdtrain init`"), "{e}");
    }
}
