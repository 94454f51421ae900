//! The chain state: accounts, access keys, contract code and contract storage.
//!
//! Kept in ordered maps so `view_state` prefixes and key lists come back sorted like
//! a trie walk. Cloning is cheap enough to checkpoint before every receipt (code is
//! shared behind `Arc`), which is how a failed receipt leaves no trace.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use borsh::{BorshDeserialize, BorshSerialize};
use near_crypto::PublicKey;
use near_primitives::account::{AccessKey, Account};
use near_primitives::hash::CryptoHash;
use near_primitives::types::AccountId;
use near_vm_runner::ContractCode;

/// One account's contract storage: key → value.
pub type Storage = BTreeMap<Vec<u8>, Vec<u8>>;

/// Everything the chain knows about accounts at the head block.
#[derive(Clone, Default)]
pub struct State {
    accounts: BTreeMap<AccountId, Account>,
    keys: BTreeMap<AccountId, BTreeMap<PublicKey, AccessKey>>,
    storage: BTreeMap<AccountId, Storage>,
    /// Content-addressed code; never removed so old hashes stay viewable.
    code: BTreeMap<CryptoHash, Arc<ContractCode>>,
}

impl State {
    /// The account record, if the account exists.
    pub fn account(&self, id: &AccountId) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// Inserts or replaces an account record.
    pub fn set_account(&mut self, id: AccountId, account: Account) {
        self.accounts.insert(id, account);
    }

    /// Removes an account with all its keys and storage.
    pub fn remove_account(&mut self, id: &AccountId) {
        self.accounts.remove(id);
        self.keys.remove(id);
        self.storage.remove(id);
    }

    /// The access key `pk` of `id`.
    pub fn access_key(&self, id: &AccountId, pk: &PublicKey) -> Option<&AccessKey> {
        self.keys.get(id).and_then(|keys| keys.get(pk))
    }

    /// All access keys of `id`, sorted by public key.
    pub fn access_keys(&self, id: &AccountId) -> impl Iterator<Item = (&PublicKey, &AccessKey)> {
        self.keys.get(id).into_iter().flatten()
    }

    /// Inserts or replaces an access key.
    pub fn set_access_key(&mut self, id: &AccountId, pk: PublicKey, key: AccessKey) {
        self.keys.entry(id.clone()).or_default().insert(pk, key);
    }

    /// Removes an access key; returns it if it existed.
    pub fn remove_access_key(&mut self, id: &AccountId, pk: &PublicKey) -> Option<AccessKey> {
        self.keys.get_mut(id).and_then(|keys| keys.remove(pk))
    }

    /// The contract storage of `id` (empty if none).
    pub fn storage(&self, id: &AccountId) -> Option<&Storage> {
        self.storage.get(id)
    }

    /// Mutable contract storage of `id`, created on first use.
    pub fn storage_mut(&mut self, id: &AccountId) -> &mut Storage {
        self.storage.entry(id.clone()).or_default()
    }

    /// Replaces the whole contract storage of `id`.
    pub fn set_storage(&mut self, id: &AccountId, storage: Storage) {
        self.storage.insert(id.clone(), storage);
    }

    /// Stores code under its sha256 hash and returns the hash.
    pub fn put_code(&mut self, code: Vec<u8>) -> CryptoHash {
        let code = ContractCode::new(code, None);
        let hash = *code.hash();
        self.code.entry(hash).or_insert_with(|| Arc::new(code));
        hash
    }

    /// Code by hash.
    pub fn code(&self, hash: &CryptoHash) -> Option<Arc<ContractCode>> {
        self.code.get(hash).cloned()
    }

    /// The code deployed on `id`, if any.
    pub fn account_code(&self, id: &AccountId) -> Option<Arc<ContractCode>> {
        let hash = self.accounts.get(id)?.local_contract_hash()?;
        self.code(&hash)
    }

    /// Number of accounts (for status output and tests).
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Writes the state to `path` atomically (temp file then rename).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let snapshot = Snapshot {
            accounts: self
                .accounts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            keys: self
                .keys
                .iter()
                .flat_map(|(id, keys)| {
                    keys.iter()
                        .map(move |(pk, ak)| (id.clone(), pk.clone(), ak.clone()))
                })
                .collect(),
            storage: self
                .storage
                .iter()
                .map(|(id, s)| {
                    (
                        id.clone(),
                        s.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    )
                })
                .collect(),
            code: self.code.values().map(|c| c.code().to_vec()).collect(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, borsh::to_vec(&snapshot)?)?;
        std::fs::rename(tmp, path)
    }

    /// Reads a state written by [`State::save`].
    pub fn load(path: &Path) -> io::Result<State> {
        let snapshot = Snapshot::try_from_slice(&std::fs::read(path)?)?;
        let mut state = State::default();
        for (id, account) in snapshot.accounts {
            state.accounts.insert(id, account);
        }
        for (id, pk, ak) in snapshot.keys {
            state.set_access_key(&id, pk, ak);
        }
        for (id, entries) in snapshot.storage {
            state.storage.insert(id, entries.into_iter().collect());
        }
        for code in snapshot.code {
            state.put_code(code);
        }
        Ok(state)
    }
}

/// One storage entry on disk: key, value.
type Entry = (Vec<u8>, Vec<u8>);

/// The on-disk form of [`State`].
#[derive(BorshSerialize, BorshDeserialize)]
struct Snapshot {
    accounts: Vec<(AccountId, Account)>,
    keys: Vec<(AccountId, PublicKey, AccessKey)>,
    storage: Vec<(AccountId, Vec<Entry>)>,
    code: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use near_crypto::{KeyType, SecretKey};
    use near_primitives::account::AccountContract;
    use near_primitives::types::Balance;

    #[test]
    fn save_then_load_keeps_accounts_keys_code_and_storage() {
        let dir = tempfile::tempdir().unwrap();
        let id: AccountId = "alice.test.near".parse().unwrap();
        let mut state = State::default();
        let hash = state.put_code(vec![0, 97, 115, 109]);
        let account = Account::new(
            Balance::from_yoctonear(42),
            Balance::ZERO,
            AccountContract::Local(hash),
            182,
        );
        state.set_account(id.clone(), account.clone());
        let pk = SecretKey::from_seed(KeyType::ED25519, "alice").public_key();
        state.set_access_key(&id, pk.clone(), AccessKey::full_access());
        state.storage_mut(&id).insert(b"k".to_vec(), b"v".to_vec());

        let path = dir.path().join("state.borsh");
        state.save(&path).unwrap();
        let loaded = State::load(&path).unwrap();

        assert_eq!(loaded.account(&id), Some(&account));
        assert_eq!(loaded.access_key(&id, &pk), Some(&AccessKey::full_access()));
        assert_eq!(
            loaded.storage(&id).unwrap().get(&b"k"[..]),
            Some(&b"v".to_vec())
        );
        assert_eq!(loaded.account_code(&id).unwrap().code(), &[0, 97, 115, 109]);
    }

    #[test]
    fn removing_an_account_drops_its_keys_and_storage() {
        let id: AccountId = "bob.test.near".parse().unwrap();
        let mut state = State::default();
        state.set_account(
            id.clone(),
            Account::new(Balance::ZERO, Balance::ZERO, AccountContract::None, 100),
        );
        let pk = SecretKey::from_seed(KeyType::ED25519, "bob").public_key();
        state.set_access_key(&id, pk.clone(), AccessKey::full_access());
        state.storage_mut(&id).insert(vec![1], vec![2]);
        state.remove_account(&id);
        assert!(state.account(&id).is_none());
        assert!(state.access_key(&id, &pk).is_none());
        assert!(state.storage(&id).is_none());
    }
}
