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

mod closing;
mod config;
mod disputes;
mod events;
mod funding;
mod holder;
mod math;
mod owner;
mod payouts;
mod providers;
mod revenue;
mod rounds;
mod settlement;
mod storage;
mod token;
mod views;

pub use config::RunConfig;
pub use crowdtrain_protocol::{Hash32, Receipt};
pub use funding::{FundingPhase, FundingStatus};
pub use holder::Holder;
pub use providers::{Provider, ProviderStatus, ProviderView};
pub use revenue::Pending;
pub use rounds::{
    Checkpoint, CreditStatus, Finalization, ResultDispute, RoundState, RoundStatus, RoundView,
    StoredReceipt, Tally,
};
pub use settlement::SettleProgress;
pub use views::{RunInfo, TreasuryView};

use math::U256;
use near_sdk::store::{IterableMap, LookupMap, LookupSet};
use near_sdk::{AccountId, BorshStorageKey, PanicOnDefault, env, near};

/// Prefixes of the contract's storage collections.
#[derive(BorshStorageKey)]
#[near]
enum StorageKey {
    Holders,
    Providers,
    Rounds,
    Checkpoints,
    Receipts,
    Voters,
    Tallies,
    RoundBlobs,
    SigningKeys,
    Dishonest,
    PayoutsOwed,
}

/// The whole state of one run.
#[near(contract_state)]
#[derive(PanicOnDefault)]
pub struct Run {
    /// What the creator set up (auditors change with `set_auditors`).
    config: RunConfig,
    /// Owner switch: while set, no deposits, registrations, receipts or finalization
    /// (settlement, disputes, claims, refunds and exits are never paused).
    paused: bool,
    /// Set by `close_run`: no more deposits, registrations, receipts or rounds.
    closed: bool,
    /// Whether the unspent treasury of a closed run was handed to the share holders.
    treasury_released: bool,
    /// Who `propose_owner` named; becomes the owner when it calls `accept_owner`.
    pending_owner: Option<AccountId>,
    /// Auditors named by `set_auditors` and the time (unix ms) they take over.
    pending_auditors: Option<(Vec<AccountId>, u64)>,

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
    /// Bonds of active providers, in total: the stake a quorum is a fraction of.
    active_stake: u128,
    /// Number the next registration gets (see `Provider::generation`).
    next_generation: u64,
    /// Who signs with each signing key (raw key bytes): one key, one provider.
    signing_keys: LookupMap<Vec<u8>, AccountId>,
    /// Registrations proven dishonest (by generation): never paid again.
    dishonest: LookupSet<u64>,
    /// Rounds whose result was disputed and whose voters are not all slashed yet.
    pending_slash: Vec<u64>,
    /// The round whose checkpoint the open round builds on (the tip of the chain).
    head: u64,
    /// The open round: receipts are taken for this round id. Ids are never reused:
    /// after a rollback the next open round gets a fresh id.
    next_round: u64,
    /// When the last round was finalized (or the funding deadline), unix ms.
    last_progress_ms: u64,
    /// One small record per round: base, receipt count, finalization.
    rounds: LookupMap<u64, RoundState>,
    /// Finalized checkpoints by round (round 0 is the initial checkpoint).
    checkpoints: LookupMap<u64, Checkpoint>,
    /// One entry per (round, provider): O(1) storage and gas per receipt.
    receipts: LookupMap<(u64, AccountId), StoredReceipt>,
    /// (round, arrival index) → provider, so settlement and slashing can page.
    voters: LookupMap<(u64, u32), AccountId>,
    /// Stake and count of the receipts agreeing on (round, result, blob set).
    tallies: LookupMap<(u64, Hash32, Hash32), Tally>,
    /// The sorted blob hashes a finalized round aggregated.
    round_blobs: LookupMap<u64, Vec<Hash32>>,
    /// Failed payouts kept for their accounts (`retry_payout`).
    payouts_owed: LookupMap<AccountId, u128>,
    /// Σ payouts_owed.
    payouts_owed_total: u128,
    /// Payouts sent and not yet confirmed by `on_payout`.
    payouts_in_flight: u128,
}

#[near]
impl Run {
    /// Starts a run from its configuration. The caller (normally the factory)
    /// becomes irrelevant afterwards: `config.owner` holds the owner role.
    #[init]
    pub fn new(config: RunConfig) -> Self {
        config.assert_valid();
        let mut run = Self {
            last_progress_ms: config.funding_deadline_ms.0,
            config,
            paused: false,
            closed: false,
            treasury_released: false,
            pending_owner: None,
            pending_auditors: None,
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
            active_stake: 0,
            next_generation: 1,
            signing_keys: LookupMap::new(StorageKey::SigningKeys),
            dishonest: LookupSet::new(StorageKey::Dishonest),
            pending_slash: Vec::new(),
            head: 0,
            next_round: 1,
            rounds: LookupMap::new(StorageKey::Rounds),
            checkpoints: LookupMap::new(StorageKey::Checkpoints),
            receipts: LookupMap::new(StorageKey::Receipts),
            voters: LookupMap::new(StorageKey::Voters),
            tallies: LookupMap::new(StorageKey::Tallies),
            round_blobs: LookupMap::new(StorageKey::RoundBlobs),
            payouts_owed: LookupMap::new(StorageKey::PayoutsOwed),
            payouts_owed_total: 0,
            payouts_in_flight: 0,
        };
        run.account_storage_usage = run.internal_measure_account_storage();
        let initial = Checkpoint {
            round: 0,
            hash: run.config.initial_checkpoint_hash,
            uri: run.config.initial_checkpoint_uri.clone(),
            finalized_at_ms: env::block_timestamp_ms(),
        };
        let now = initial.finalized_at_ms;
        run.checkpoints.insert(0, initial);
        run.rounds.insert(
            0,
            RoundState::initial(run.config.initial_checkpoint_hash, now),
        );
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
