//! The crowdtrain run contract: one training run on NEAR.
//!
//! Funders deposit NEAR and receive shares 1:1; providers post a bond, train, and
//! post signed [`Receipt`]s; once a quorum of receipts agree on a round's result the
//! round is finalized, and after the challenge window each included provider is paid
//! from the treasury and minted compute shares. Inference revenue paid in is split
//! over all shares outstanding with a reward-per-share accumulator.
//!
//! Money invariants (checked by the property test in `tests/money.rs`):
//! - every yoctoNEAR the contract received sits in exactly one bucket: the treasury,
//!   the revenue pool (owed to holders or carried as dust), compute payments owed,
//!   provider bonds, storage deposits, or has been sent out;
//! - a holder's balance never changes before [`Run::internal_settle`] has credited
//!   its royalties up to that moment, so royalties are exactly pro rata in time;
//! - total royalties claimed never exceed total revenue paid in.
//!
//! Time: deadlines and windows are unix milliseconds, compared with the block time.
//! The signature argument of `submit_receipt` is base64 of the 64 ed25519 bytes.

mod config;
mod events;
mod funding;
mod holder;
mod math;
mod owner;
mod providers;
mod revenue;
mod rounds;
mod storage;
mod token;
mod views;

pub use config::RunConfig;
pub use crowdtrain_protocol::{Hash32, Receipt};
pub use funding::{FundingPhase, FundingStatus};
pub use holder::Holder;
pub use providers::{Provider, ProviderStatus, ProviderView};
pub use revenue::Pending;
pub use rounds::{Checkpoint, Credit, CreditStatus, Finalization, RoundState, StoredReceipt};
pub use views::{RunInfo, TreasuryView};

use math::U256;
use near_sdk::store::{IterableMap, LookupMap};
use near_sdk::{AccountId, BorshStorageKey, PanicOnDefault, env, near};

/// Prefixes of the contract's storage collections.
#[derive(BorshStorageKey)]
#[near]
enum StorageKey {
    Holders,
    Providers,
    Rounds,
    Checkpoints,
}

/// The whole state of one run.
#[near(contract_state)]
#[derive(PanicOnDefault)]
pub struct Run {
    /// What the creator set up (auditors change with `set_auditors`).
    config: RunConfig,
    /// Owner switch: while set, no deposits, registrations, receipts or finalization.
    paused: bool,

    // Funding and treasury (yoctoNEAR).
    /// Shares minted by funding deposits, net of storage (never decreases).
    raised: u128,
    /// Funding deposits refunded because the goal was missed.
    refunded: u128,
    /// What is left of the deposits to pay compute: raised − refunded − compute paid.
    treasury: u128,
    /// Compute payments credited to providers from the treasury, in total.
    compute_paid: u128,
    /// Compute payments sent out (or on their way) by `claim`.
    compute_sent: u128,

    // The share token.
    /// Registered token accounts: balance, storage deposit, royalty bookkeeping.
    holders: LookupMap<AccountId, Holder>,
    /// Shares outstanding.
    total_supply: u128,
    /// NEP-145 storage deposits held for token accounts, in total.
    holder_storage_held: u128,
    /// Storage bytes one token account takes (measured in `new`).
    account_storage_usage: u64,

    // Royalties.
    /// Σ payment × 2¹²⁸ / supply over every distribution.
    reward_per_share: U256,
    /// Remainder of the last division by the supply, in 2⁻¹²⁸ yocto units: carried
    /// into the next distribution so no dust is lost.
    reward_carry: U256,
    /// Revenue paid while no shares existed, distributed with the next payment.
    revenue_waiting: u128,
    /// All revenue ever paid in, including slashed bonds.
    revenue_in: u128,
    /// Royalties sent out (or on their way) by `claim`.
    royalties_claimed: u128,

    // Providers and rounds.
    /// Registered providers in registration order.
    providers: IterableMap<AccountId, Provider>,
    /// Provider bonds held, in total (slashed bonds leave this bucket).
    bonds_held: u128,
    /// Provider record storage deposits held, in total.
    provider_storage_held: u128,
    /// Storage of receipts, finalizations and checkpoints, paid from the treasury
    /// (or by the caller once it is dry) so it never eats into money owed.
    round_storage_held: u128,
    /// The last finalized round (0 = the initial checkpoint).
    last_finalized: u64,
    /// Rounds with receipts, finalization and credits.
    rounds: LookupMap<u64, RoundState>,
    /// Finalized checkpoints by round (round 0 is the initial checkpoint).
    checkpoints: LookupMap<u64, Checkpoint>,
}

#[near]
impl Run {
    /// Starts a run from its configuration. The caller (normally the factory)
    /// becomes irrelevant afterwards: `config.owner` holds the owner role.
    #[init]
    pub fn new(config: RunConfig) -> Self {
        config.assert_valid();
        let mut run = Self {
            config,
            paused: false,
            raised: 0,
            refunded: 0,
            treasury: 0,
            compute_paid: 0,
            compute_sent: 0,
            holders: LookupMap::new(StorageKey::Holders),
            total_supply: 0,
            holder_storage_held: 0,
            account_storage_usage: 0,
            reward_per_share: U256::zero(),
            reward_carry: U256::zero(),
            revenue_waiting: 0,
            revenue_in: 0,
            royalties_claimed: 0,
            providers: IterableMap::new(StorageKey::Providers),
            bonds_held: 0,
            provider_storage_held: 0,
            round_storage_held: 0,
            last_finalized: 0,
            rounds: LookupMap::new(StorageKey::Rounds),
            checkpoints: LookupMap::new(StorageKey::Checkpoints),
        };
        run.account_storage_usage = run.internal_measure_account_storage();
        let initial = Checkpoint {
            round: 0,
            hash: run.config.initial_checkpoint_hash,
            uri: run.config.initial_checkpoint_uri.clone(),
            finalized_at_ms: env::block_timestamp_ms(),
        };
        run.checkpoints.insert(0, initial);
        events::emit(
            "run_created",
            near_sdk::serde_json::json!({
                "owner": run.config.owner,
                "funding_goal": run.config.funding_goal,
                "funding_deadline_ms": run.config.funding_deadline_ms,
                "initial_checkpoint": run.config.initial_checkpoint_hash,
            }),
        );
        run
    }
}
