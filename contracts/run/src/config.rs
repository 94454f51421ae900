//! The run configuration: fixed at `new`, except the auditors (`set_auditors`).

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

/// Everything a run is created with. Amounts are yoctoNEAR (decimal strings in
/// JSON), times are unix milliseconds, hashes are 64 hex characters.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// May pause, unpause and replace the auditors.
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
    /// Agreeing receipts needed to finalize a round.
    pub quorum: u32,
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
        require!(self.min_deposit.0 > 0, "min_deposit must be more than 0");
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
}

/// Panics unless `uri` is a non-empty URI of at most [`MAX_URI_LEN`] bytes.
pub fn assert_uri(uri: &str) {
    require!(!uri.is_empty(), "a checkpoint URI must not be empty");
    require!(
        uri.len() <= MAX_URI_LEN,
        "a checkpoint URI must be at most 512 bytes"
    );
}
