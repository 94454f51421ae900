//! The run configuration: fixed at `new`, except the auditors (`set_auditors`,
//! effective after `auditor_delay_ms`) and the owner (`propose_owner`/`accept_owner`).

use crowdtrain_protocol::Hash32;
use near_sdk::json_types::{U64, U128};
use near_sdk::{AccountId, env, near, require};

/// Most auditors a run may name (each dispute checks the list).
pub const MAX_AUDITORS: usize = 32;
/// Longest checkpoint URI accepted (it is stored once per round).
pub const MAX_URI_LEN: usize = 512;
/// Most shares one credit may mint (`shares_per_token × max_tokens_per_round`):
/// 2⁹⁶ leaves room for 2³² such credits before the u128 supply could overflow,
/// which would make `settle_round` fail for good.
pub const MAX_SHARES_PER_CREDIT: u128 = 1 << 96;
/// Longest challenge window, auditor delay or stall timeout: 365 days. Bounded so
/// that a window cannot lock bonds forever and time sums cannot overflow.
pub const MAX_PERIOD_MS: u64 = 365 * 24 * 3_600_000;
/// Latest accepted funding deadline (year 2286 in unix ms): far below u64::MAX, so
/// deadline + any period above never overflows.
pub const MAX_TIME_MS: u64 = 10_000_000_000_000;
/// Default quorum: more than half of the active bonded stake.
pub const DEFAULT_QUORUM_BPS: u32 = 5_001;
/// Default stall timeout: 30 days without a finalized round lets anyone close the run.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 30 * 24 * 3_600_000;

/// Everything a run is created with. Amounts are yoctoNEAR (decimal strings in
/// JSON), times are unix milliseconds, hashes are 64 hex characters.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// May pause, unpause, close the run, replace the auditors and hand over ownership.
    pub owner: AccountId,
    /// May dispute receipts inside the challenge window.
    pub auditors: Vec<AccountId>,
    /// Funding needed before rounds open; if missed by the deadline, funders get refunds.
    pub funding_goal: U128,
    /// End of the funding window, unix ms.
    pub funding_deadline_ms: U64,
    /// Smallest accepted funding deposit (the storage cost comes out of it).
    pub min_deposit: U128,
    /// Bond a provider attaches to `register_provider`; slashed on a successful dispute.
    pub provider_bond: U128,
    /// yoctoNEAR paid from the treasury per trained token of a settled credit.
    pub price_per_token: U128,
    /// Shares minted per trained token of a settled credit.
    pub shares_per_token: U128,
    /// Floor of the quorum: at least this many agreeing receipts, whatever the stake.
    pub quorum: u32,
    /// Quorum as a fraction of the bonded stake of active providers, in basis points
    /// (5001 to 10000; default 5001, a strict majority, so two results can never both
    /// reach it).
    #[serde(default)]
    pub quorum_bps: Option<u32>,
    /// How long a change of auditors waits before it takes effect, ms (default: the
    /// challenge window), so no one can appoint an auditor and slash at once.
    #[serde(default)]
    pub auditor_delay_ms: Option<U64>,
    /// After this long without a finalized round (counted from the funding deadline
    /// or the last finalization), anyone may close the run, ms (default 30 days).
    #[serde(default)]
    pub stall_timeout_ms: Option<U64>,
    /// How long after finalization auditors may dispute, in ms; credits settle after it.
    pub challenge_window_ms: U64,
    /// Inner optimizer steps every receipt must report.
    pub inner_steps: u32,
    /// Most tokens one provider may claim in one round.
    pub max_tokens_per_round: U64,
    /// sha256 of the model specification.
    pub model_spec_hash: Hash32,
    /// sha256 of the dataset manifest.
    pub dataset_hash: Hash32,
    /// sha256 of the initial checkpoint (round 0).
    pub initial_checkpoint_hash: Hash32,
    /// Where the initial checkpoint can be fetched.
    pub initial_checkpoint_uri: String,
}

impl RunConfig {
    /// Panics with a message naming the field when the configuration cannot work.
    pub fn assert_valid(&self) {
        require!(
            self.funding_goal.0 > 0,
            "funding_goal must be more than 0 yoctoNEAR"
        );
        require!(
            self.funding_deadline_ms.0 > env::block_timestamp_ms(),
            "funding_deadline_ms must be in the future (unix milliseconds)"
        );
        require!(
            self.funding_deadline_ms.0 <= MAX_TIME_MS,
            "funding_deadline_ms must be at most 10000000000000 (unix milliseconds, not microseconds)"
        );
        require!(self.min_deposit.0 > 0, "min_deposit must be more than 0");
        require!(
            self.provider_bond.0 > 0,
            "provider_bond must be more than 0: a vote without a bond could never be slashed"
        );
        require!(
            self.challenge_window_ms.0 >= 1 && self.challenge_window_ms.0 <= MAX_PERIOD_MS,
            "challenge_window_ms must be 1 to 31536000000 (365 days)"
        );
        require!(
            (5_001..=10_000).contains(&self.quorum_bps()),
            "quorum_bps must be 5001 to 10000 (more than half of the active bonded stake)"
        );
        require!(
            self.auditor_delay_ms() <= MAX_PERIOD_MS,
            "auditor_delay_ms must be at most 31536000000 (365 days)"
        );
        require!(
            self.stall_timeout_ms() >= self.challenge_window_ms.0
                && self.stall_timeout_ms() <= MAX_PERIOD_MS,
            "stall_timeout_ms must be at least challenge_window_ms and at most 31536000000 (365 days)"
        );
        require!(self.quorum >= 1, "quorum must be at least 1 receipt");
        require!(self.inner_steps >= 1, "inner_steps must be at least 1");
        require!(
            self.max_tokens_per_round.0 >= 1,
            "max_tokens_per_round must be at least 1"
        );
        require!(
            self.shares_per_token
                .0
                .checked_mul(u128::from(self.max_tokens_per_round.0))
                .is_some_and(|s| s <= MAX_SHARES_PER_CREDIT),
            "shares_per_token × max_tokens_per_round must be at most 2^96 shares (79228162514264337593543950336)"
        );
        require!(
            self.auditors.len() <= MAX_AUDITORS,
            "at most 32 auditors may be named"
        );
        assert_uri(&self.initial_checkpoint_uri);
    }

    /// The quorum in basis points of active bonded stake.
    pub fn quorum_bps(&self) -> u32 {
        self.quorum_bps.unwrap_or(DEFAULT_QUORUM_BPS)
    }

    /// The delay before a change of auditors takes effect, ms.
    pub fn auditor_delay_ms(&self) -> u64 {
        self.auditor_delay_ms
            .map_or(self.challenge_window_ms.0, |d| d.0)
    }

    /// How long without a finalized round before anyone may close the run, ms.
    pub fn stall_timeout_ms(&self) -> u64 {
        self.stall_timeout_ms
            .map_or(DEFAULT_STALL_TIMEOUT_MS, |d| d.0)
    }
}

/// Panics unless `uri` is a non-empty URI of at most [`MAX_URI_LEN`] bytes.
pub fn assert_uri(uri: &str) {
    require!(!uri.is_empty(), "a checkpoint URI must not be empty");
    require!(
        uri.len() <= MAX_URI_LEN,
        "a checkpoint URI must be at most 512 bytes"
    );
}
