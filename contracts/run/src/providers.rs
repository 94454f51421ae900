//! Providers: a bonded registration with an ed25519 signing key and a peer node id.
//! A provider leaves in two calls: `exit_provider` stops it voting (its vote in the
//! open round is withdrawn), the second call returns the bond once the challenge
//! window of the exit and of the last round it voted in have closed, so every vote
//! stays slashable for its whole window. A signing key serves one provider only.

use crate::RunExt;
use crate::{Run, events};
use near_sdk::json_types::{U64, U128};
use near_sdk::serde_json::json;
use near_sdk::{
    AccountId, CurveType, NearToken, Promise, PublicKey, assert_one_yocto, env, near, require,
};

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
    /// Unique number of this registration: a dispute of a receipt signed under an
    /// earlier registration never slashes a bond posted later.
    pub generation: u64,
    /// The last round this provider voted in (0 = none).
    pub last_vote_round: u64,
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
    /// Refuses a key another provider already signs with: one key, one vote.
    fn internal_claim_key(&mut self, key: &PublicKey, account_id: &AccountId) {
        let bytes = key.as_bytes().to_vec();
        if let Some(owner) = self.signing_keys.get(&bytes) {
            require!(
                owner == account_id,
                format!(
                    "this signing key is already registered by {owner}; each provider needs its own key"
                )
            );
        }
        self.signing_keys.insert(bytes, account_id.clone());
    }

    /// Stops `provider` voting: leaves the active stake and withdraws its vote in
    /// the open round, if any (so a leaving or slashed provider never counts).
    pub(crate) fn internal_deactivate(&mut self, account_id: &AccountId, provider: &Provider) {
        if provider.status == ProviderStatus::Active {
            self.active_stake -= provider.bond;
        }
        if provider.last_vote_round == self.next_round {
            self.internal_withdraw_vote(self.next_round, account_id);
        }
    }

    /// When a vote in `round` stops being disputable: the end of the round's
    /// challenge window if it was finalized; at once if it never was (the vote was
    /// withdrawn when its provider left, or the round was abandoned).
    pub(crate) fn internal_vote_unlock_ms(&self, round: u64) -> u64 {
        self.rounds
            .get(&round)
            .and_then(|s| s.finalization.as_ref())
            .filter(|_| round > 0)
            .map_or(0, |f| f.finalized_at_ms + self.config.challenge_window_ms.0)
    }

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
        self.assert_open_for_rounds();
        let byte_cost = env::storage_byte_cost().as_yoctonear();
        let provider = Provider {
            signing_key: signing_key.clone(),
            node_id: node_id.clone(),
            bond,
            storage_deposit: u128::MAX,
            status: ProviderStatus::Active,
            generation: u64::MAX,
            last_vote_round: u64::MAX,
        };
        // Measure the record's bytes by writing it once and taking it back, so a
        // refused registration leaves nothing behind.
        let before = env::storage_usage();
        self.providers.insert(account_id.clone(), provider.clone());
        self.providers.flush();
        self.internal_claim_key(&signing_key, &account_id);
        self.signing_keys.flush();
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
                generation: self.next_generation,
                last_vote_round: 0,
                ..provider
            },
        );
        self.next_generation += 1;
        self.active_stake += bond;
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
            self.internal_payout(account_id, attached - required)
                .detach();
        }
    }

    /// Replaces the caller's signing key (receipts already posted stay valid).
    /// Attach exactly 1 yoctoNEAR (a full-access key must sign).
    #[payable]
    pub fn rotate_key(&mut self, signing_key: PublicKey) {
        assert_one_yocto();
        let account_id = env::predecessor_account_id();
        let mut provider = self.internal_provider(&account_id);
        require!(
            provider.status == ProviderStatus::Active,
            "only an active provider can rotate its key"
        );
        assert_signing_key(&signing_key);
        self.signing_keys.remove(provider.signing_key.as_bytes());
        self.internal_claim_key(&signing_key, &account_id);
        provider.signing_key = signing_key.clone();
        self.providers.insert(account_id.clone(), provider);
        events::emit(
            "provider_key_rotated",
            json!({ "account_id": account_id, "signing_key": signing_key }),
        );
    }

    /// First call: stop voting (a vote in the open round is withdrawn) and start
    /// the challenge window. Second call, once that window and the window of the
    /// last round voted in have closed: the bond and the record's storage come back.
    /// Attach exactly 1 yoctoNEAR (a full-access key must sign).
    #[payable]
    pub fn exit_provider(&mut self) -> Option<Promise> {
        assert_one_yocto();
        let account_id = env::predecessor_account_id();
        let mut provider = self.internal_provider(&account_id);
        let now = env::block_timestamp_ms();
        if provider.status != ProviderStatus::Slashed
            && self.internal_proven_dishonest(&account_id, provider.generation)
        {
            // A pending result dispute caught it: slashed now, before any bond leaves.
            provider = self.internal_provider(&account_id);
        }
        match provider.status {
            ProviderStatus::Active => {
                self.internal_deactivate(&account_id, &provider);
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
                // A closed run has no more rounds to vote in: only the last vote's
                // window still holds the bond.
                let exit_unlock = if self.closed {
                    0
                } else {
                    since_ms + self.config.challenge_window_ms.0
                };
                let unlock =
                    exit_unlock.max(self.internal_vote_unlock_ms(provider.last_vote_round));
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
        self.signing_keys.remove(provider.signing_key.as_bytes());
        self.bonds_held -= provider.bond;
        self.provider_storage_held -= provider.storage_deposit;
        let amount = provider.bond + provider.storage_deposit;
        events::emit(
            "provider_exited",
            json!({ "account_id": account_id, "returned": U128(amount) }),
        );
        self.internal_payout(account_id, amount)
    }
}
