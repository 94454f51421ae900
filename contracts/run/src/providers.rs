//! Providers: a bonded registration with an ed25519 signing key and a peer node id.
//! A provider leaves in two calls: `exit_provider` starts the challenge window,
//! the second call after it returns the bond (a dispute meanwhile slashes it).

use crate::RunExt;
use crate::{Run, events};
use near_sdk::json_types::{U64, U128};
use near_sdk::serde_json::json;
use near_sdk::{AccountId, CurveType, NearToken, Promise, PublicKey, env, near, require};

/// Longest peer node id accepted.
pub const MAX_NODE_ID_LEN: usize = 256;

/// Where a provider stands.
#[near(serializers = [borsh, json])]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderStatus {
    /// May post receipts.
    Active,
    /// Asked to leave at `since_ms`; the bond unlocks after the challenge window.
    Exiting {
        /// When `exit_provider` was first called, unix ms.
        since_ms: u64,
    },
    /// Lost its bond to a dispute; may only leave.
    Slashed,
}

/// A registered provider.
#[near(serializers = [borsh])]
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    /// The ed25519 key receipts must be signed with.
    pub signing_key: PublicKey,
    /// Peer id other agents dial to fetch this provider's blobs.
    pub node_id: String,
    /// Bond held (0 once slashed).
    pub bond: u128,
    /// What the provider record's storage cost, returned on exit.
    pub storage_deposit: u128,
    /// Where the provider stands.
    pub status: ProviderStatus,
}

/// A provider as the views show it.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderView {
    /// The provider's account.
    pub account_id: AccountId,
    /// Position in registration order.
    pub index: u32,
    /// The key receipts are verified with ("ed25519:<base58>").
    pub signing_key: PublicKey,
    /// Peer id to fetch blobs from.
    pub node_id: String,
    /// Bond held.
    pub bond: U128,
    /// Where the provider stands.
    pub status: ProviderStatus,
}

fn assert_signing_key(key: &PublicKey) {
    require!(
        key.curve_type() == CurveType::ED25519,
        "the signing key must be an ed25519 key (\"ed25519:<base58>\")"
    );
}

impl Run {
    /// The caller's provider record, or a message saying how to become one.
    pub(crate) fn internal_provider(&self, account_id: &AccountId) -> Provider {
        self.providers.get(account_id).cloned().unwrap_or_else(|| {
            env::panic_str(&format!(
                "{account_id} is not a registered provider: call register_provider first"
            ))
        })
    }
}

#[near]
impl Run {
    /// Registers the caller as a provider. Attach the bond plus the storage of the
    /// provider record (and of a share account, if the caller has none); the
    /// excess comes back.
    #[payable]
    pub fn register_provider(&mut self, signing_key: PublicKey, node_id: String) {
        self.assert_not_paused();
        let account_id = env::predecessor_account_id();
        require!(
            !self.providers.contains_key(&account_id),
            "already registered as a provider; use rotate_key to change the signing key"
        );
        assert_signing_key(&signing_key);
        require!(
            !node_id.is_empty() && node_id.len() <= MAX_NODE_ID_LEN,
            "node_id must be 1 to 256 characters"
        );
        let bond = self.config.provider_bond.0;
        let byte_cost = env::storage_byte_cost().as_yoctonear();
        let provider = Provider {
            signing_key: signing_key.clone(),
            node_id: node_id.clone(),
            bond,
            storage_deposit: u128::MAX,
            status: ProviderStatus::Active,
        };
        // Measure the record's bytes by writing it once and taking it back, so a
        // refused registration leaves nothing behind.
        let before = env::storage_usage();
        self.providers.insert(account_id.clone(), provider.clone());
        self.providers.flush();
        let record_cost = u128::from(env::storage_usage() - before) * byte_cost;
        self.providers.remove(&account_id);
        self.providers.flush();
        let holder_cost = if self.holders.contains_key(&account_id) {
            0
        } else {
            self.internal_account_storage_cost()
        };
        let required = bond + record_cost + holder_cost;
        let attached = env::attached_deposit().as_yoctonear();
        require!(
            attached >= required,
            format!(
                "attach {required} yoctoNEAR ({}): the bond of {bond} plus {} of storage",
                NearToken::from_yoctonear(required).exact_amount_display(),
                record_cost + holder_cost
            )
        );
        self.providers.insert(
            account_id.clone(),
            Provider {
                storage_deposit: record_cost,
                ..provider
            },
        );
        if holder_cost > 0 {
            self.internal_register(&account_id, holder_cost);
            self.holder_storage_held += holder_cost;
        }
        self.bonds_held += bond;
        self.provider_storage_held += record_cost;
        events::emit(
            "provider_registered",
            json!({ "account_id": account_id, "signing_key": signing_key, "node_id": node_id,
                    "bond": U128(bond), "storage_cost": U128(record_cost + holder_cost) }),
        );
        if attached > required {
            Promise::new(account_id)
                .transfer(NearToken::from_yoctonear(attached - required))
                .detach();
        }
    }

    /// Replaces the caller's signing key (receipts already posted stay valid).
    pub fn rotate_key(&mut self, signing_key: PublicKey) {
        let account_id = env::predecessor_account_id();
        let mut provider = self.internal_provider(&account_id);
        require!(
            provider.status == ProviderStatus::Active,
            "only an active provider can rotate its key"
        );
        assert_signing_key(&signing_key);
        provider.signing_key = signing_key.clone();
        self.providers.insert(account_id.clone(), provider);
        events::emit(
            "provider_key_rotated",
            json!({ "account_id": account_id, "signing_key": signing_key }),
        );
    }

    /// First call: stop posting receipts and start the challenge window. Second
    /// call, after the window: the bond and the record's storage come back.
    pub fn exit_provider(&mut self) -> Option<Promise> {
        let account_id = env::predecessor_account_id();
        let mut provider = self.internal_provider(&account_id);
        let now = env::block_timestamp_ms();
        match provider.status {
            ProviderStatus::Active => {
                provider.status = ProviderStatus::Exiting { since_ms: now };
                self.providers.insert(account_id.clone(), provider);
                let unlock = now + self.config.challenge_window_ms.0;
                events::emit(
                    "provider_exiting",
                    json!({ "account_id": account_id, "bond_unlocks_at_ms": U64(unlock) }),
                );
                None
            }
            ProviderStatus::Exiting { since_ms } => {
                let unlock = since_ms + self.config.challenge_window_ms.0;
                require!(
                    now >= unlock,
                    format!("the bond unlocks at {unlock} (unix ms), after the challenge window")
                );
                Some(self.internal_remove_provider(account_id, provider))
            }
            ProviderStatus::Slashed => Some(self.internal_remove_provider(account_id, provider)),
        }
    }

    /// Providers in registration order, `limit` (default 100) from `from_index`.
    pub fn providers(&self, from_index: Option<u32>, limit: Option<u32>) -> Vec<ProviderView> {
        let from = from_index.unwrap_or(0);
        self.providers
            .iter()
            .enumerate()
            .skip(from as usize)
            .take(limit.unwrap_or(100) as usize)
            .map(|(i, (id, p))| ProviderView {
                account_id: id.clone(),
                index: i as u32,
                signing_key: p.signing_key.clone(),
                node_id: p.node_id.clone(),
                bond: U128(p.bond),
                status: p.status,
            })
            .collect()
    }
}

impl Run {
    fn internal_remove_provider(&mut self, account_id: AccountId, provider: Provider) -> Promise {
        self.providers.remove(&account_id);
        self.bonds_held -= provider.bond;
        self.provider_storage_held -= provider.storage_deposit;
        let amount = provider.bond + provider.storage_deposit;
        events::emit(
            "provider_exited",
            json!({ "account_id": account_id, "returned": U128(amount) }),
        );
        Promise::new(account_id).transfer(NearToken::from_yoctonear(amount))
    }
}
