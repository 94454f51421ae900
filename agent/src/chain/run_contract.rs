//! The run contract as the agent sees it: every method name, argument and view
//! shape the client uses, in this one file (contracts/run/src/{views,funding,
//! providers,rounds,revenue}.rs are the other side). When the contract changes,
//! this is the file to edit.
//!
//! Amounts are yoctoNEAR as decimal strings, times unix milliseconds, hashes hex.

use crowdtrain_protocol::{Hash32, Receipt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Gas for the calls the agent makes (Tgas). Generous: unused gas is refunded.
pub mod gas {
    /// One Tgas.
    pub const TGAS: u64 = 1_000_000_000_000;
    /// `deposit`.
    pub const DEPOSIT: u64 = 30 * TGAS;
    /// `register_provider` (measures its record, may refund the excess).
    pub const REGISTER: u64 = 50 * TGAS;
    /// `exit_provider` (may transfer the bond back).
    pub const EXIT: u64 = 30 * TGAS;
    /// yoctoNEAR `exit_provider` must carry: exactly 1, so only a full-access key
    /// (a wallet confirmation) can move a provider's bond.
    pub const EXIT_DEPOSIT: u128 = 1;
    /// `claim` (transfer plus the `on_claim` callback).
    pub const CLAIM: u64 = 50 * TGAS;
    /// `submit_receipt` (verifies an ed25519 signature).
    pub const RECEIPT: u64 = 100 * TGAS;
    /// `finalize_round` (tallies every receipt of the round).
    pub const FINALIZE: u64 = 300 * TGAS;
    /// `settle_round`, one page (a page of 50 receipts takes under 40 Tgas).
    pub const SETTLE: u64 = 300 * TGAS;
    /// `pay_revenue` (constant cost: a reward-per-share accumulator).
    pub const PAY_REVENUE: u64 = 30 * TGAS;
    /// The factory's `create_run` (deploys the run contract and calls its `new`).
    pub const CREATE_RUN: u64 = 300 * TGAS;
    /// `dispute` (slashes one registration and splits its bond over the holders).
    pub const DISPUTE: u64 = 100 * TGAS;
}

/// Method names.
pub mod method {
    /// Payable: fund the run, shares 1:1.
    pub const DEPOSIT: &str = "deposit";
    /// Payable: become a provider (bond + storage).
    pub const REGISTER_PROVIDER: &str = "register_provider";
    /// Leave (first call starts the window, second returns the bond).
    pub const EXIT_PROVIDER: &str = "exit_provider";
    /// Send pending royalties and compute payments.
    pub const CLAIM: &str = "claim";
    /// Post a signed receipt.
    pub const SUBMIT_RECEIPT: &str = "submit_receipt";
    /// Finalize the open round.
    pub const FINALIZE_ROUND: &str = "finalize_round";
    /// View: the run at a glance.
    pub const RUN_INFO: &str = "run_info";
    /// View: funding numbers.
    pub const FUNDING_STATUS: &str = "funding_status";
    /// View: providers, paged.
    pub const PROVIDERS: &str = "providers";
    /// View: a finalized checkpoint.
    pub const CHECKPOINT: &str = "checkpoint";
    /// View: receipts of a round.
    pub const RECEIPTS: &str = "receipts";
    /// View: receipts and finalization of a round (the wasm export is `round`).
    pub const ROUND: &str = "round";
    /// View: what an account can claim.
    pub const PENDING: &str = "pending";
    /// View: share balance (NEP-141).
    pub const FT_BALANCE_OF: &str = "ft_balance_of";
    /// Pay a finalized round's credits after its challenge window (paged).
    pub const SETTLE_ROUND: &str = "settle_round";
    /// Payable: inference revenue, split over every share.
    pub const PAY_REVENUE: &str = "pay_revenue";
    /// The factory's payable `create_run(name, config)`.
    pub const CREATE_RUN: &str = "create_run";
    /// The factory's view of what `create_run` must attach.
    pub const CREATE_RUN_COST: &str = "create_run_cost";
    /// An auditor voids one provider's receipt of a finalized round (and slashes it).
    pub const DISPUTE: &str = "dispute";
}

/// A u128 as the contract writes it (a decimal string).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Yocto(pub u128);

impl Serialize for Yocto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Yocto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Yocto).map_err(serde::de::Error::custom)
    }
}

/// A u64 as the contract writes it (a decimal string, near-sdk's `U64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct U64Text(pub u64);

impl Serialize for U64Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for U64Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(U64Text).map_err(serde::de::Error::custom)
    }
}

/// The run's configuration (`RunConfig` in the contract).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// May pause the run and name auditors.
    pub owner: String,
    /// May dispute receipts.
    pub auditors: Vec<String>,
    /// Funding needed before rounds open.
    pub funding_goal: Yocto,
    /// End of the funding window, unix ms.
    pub funding_deadline_ms: U64Text,
    /// Smallest funding deposit.
    pub min_deposit: Yocto,
    /// Provider bond.
    pub provider_bond: Yocto,
    /// yoctoNEAR paid per trained token.
    pub price_per_token: Yocto,
    /// Shares minted per trained token.
    pub shares_per_token: Yocto,
    /// Agreeing receipts needed to finalize.
    pub quorum: u32,
    /// Dispute window after finalization, ms.
    pub challenge_window_ms: U64Text,
    /// Inner steps every receipt reports.
    pub inner_steps: u32,
    /// Most tokens per provider per round.
    pub max_tokens_per_round: U64Text,
    /// Hash of the training spec.
    pub model_spec_hash: Hash32,
    /// Hash of the dataset manifest.
    pub dataset_hash: Hash32,
    /// Hash of checkpoint 0.
    pub initial_checkpoint_hash: Hash32,
    /// Where checkpoint 0 is.
    pub initial_checkpoint_uri: String,
}

/// A finalized checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChainCheckpoint {
    /// The round that produced it (0 = initial).
    pub round: u64,
    /// sha256 of the canonical checkpoint file.
    pub hash: Hash32,
    /// Where to fetch it (`sha256:<hash>` = from peers).
    pub uri: String,
    /// When it was finalized, unix ms.
    pub finalized_at_ms: u64,
}

/// `run_info`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The configuration.
    pub config: RunSettings,
    /// Paused by its owner.
    pub paused: bool,
    /// "Open", "Funded" or "Failed".
    pub phase: String,
    /// Last finalized round (the tip the open round builds on).
    pub last_finalized_round: u64,
    /// The round taking receipts (newer contracts; older ones: last finalized + 1).
    #[serde(default)]
    pub open_round: Option<u64>,
    /// The checkpoint the open round trains from.
    pub checkpoint: ChainCheckpoint,
    /// Registered providers.
    pub providers: u32,
    /// Shares outstanding.
    pub total_supply: Yocto,
}

impl RunInfo {
    /// The round taking receipts.
    pub fn open_round(&self) -> u64 {
        self.open_round.unwrap_or(self.last_finalized_round + 1)
    }
}

/// `funding_status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FundingStatus {
    /// "Open", "Funded" or "Failed".
    pub phase: String,
    /// Raised so far.
    pub raised: Yocto,
    /// The goal.
    pub goal: Yocto,
    /// The deadline, unix ms.
    pub deadline_ms: U64Text,
    /// Refunded after a missed goal.
    pub refunded: Yocto,
    /// Storage taken from a new funder's first deposit.
    pub storage_cost: Yocto,
}

/// Where a provider stands (`ProviderStatus`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ProviderStatus {
    /// May post receipts.
    Active,
    /// Leaving; the bond unlocks after the challenge window.
    Exiting {
        /// Since when, unix ms.
        since_ms: u64,
    },
    /// Lost its bond.
    Slashed,
}

/// One entry of `providers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// The provider's account.
    pub account_id: String,
    /// Registration order.
    pub index: u32,
    /// Its receipt-signing key, "ed25519:<base58>".
    pub signing_key: String,
    /// Its peer node id.
    pub node_id: String,
    /// Bond held.
    pub bond: Yocto,
    /// Where it stands.
    pub status: ProviderStatus,
}

/// A receipt as stored on chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// base64 of the 64 signature bytes.
    pub signature: String,
    /// When it was posted, unix ms.
    pub submitted_at_ms: u64,
    /// What became of it ("Pending", {"Settled": ...}, ...; newer contracts only).
    #[serde(default)]
    pub status: Option<Value>,
}

/// Whether a `round(round)` view says the round is finalized (a non-null
/// `finalization`; the view's other fields differ between contract versions, so
/// the client reads only this one).
pub fn round_is_finalized(view: &Value) -> bool {
    !view["finalization"].is_null()
}

/// A receipt's credit as the views tell it: the receipt's own `status` (newer
/// contracts) or the matching entry of the round's `finalization.credits` (older
/// ones); null while the round is not finalized.
pub fn credit_of(receipt: &StoredReceipt, round_view: &Value) -> Value {
    if let Some(status) = &receipt.status {
        return status.clone();
    }
    round_view["finalization"]["credits"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["provider"] == receipt.receipt.provider.as_str())
                .map(|c| c["status"].clone())
        })
        .unwrap_or(Value::Null)
}

/// `pending(account_id)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Royalties claimable.
    pub royalties: Yocto,
    /// Compute payments claimable.
    pub compute_payments: Yocto,
}

/// Arguments of a view, as JSON bytes.
pub fn args(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).expect("JSON serializes")
}

/// `providers` from `from_index`, `limit` at a time.
pub fn providers_args(from_index: u32, limit: u32) -> Vec<u8> {
    args(json!({ "from_index": from_index, "limit": limit }))
}

/// `checkpoint`, `receipts` and `round` take a round number.
pub fn round_args(round: u64) -> Vec<u8> {
    args(json!({ "round": round }))
}

/// `pending` and `ft_balance_of` take an account.
pub fn account_args(account: &str) -> Vec<u8> {
    args(json!({ "account_id": account }))
}

/// `register_provider`.
pub fn register_args(signing_key: &str, node_id: &str) -> Vec<u8> {
    args(json!({ "signing_key": signing_key, "node_id": node_id }))
}

/// `submit_receipt`: the receipt and base64 of its signature.
pub fn receipt_args(receipt: &Receipt, signature: &[u8; 64]) -> Vec<u8> {
    args(json!({ "receipt": receipt, "signature": super::outbox::base64(signature) }))
}

/// `finalize_round` on `result` with the default checkpoint URI (`sha256:<hash>`).
/// Contracts before `result_checkpoint` existed ignore it and pick the result with
/// the most agreeing receipts.
pub fn finalize_args(round: u64, blob_hashes: &[Hash32], result: Hash32) -> Vec<u8> {
    args(
        json!({ "round": round, "blob_hashes": blob_hashes, "checkpoint_uri": null,
                 "result_checkpoint": result }),
    )
}

/// The contract's message when `finalize_round` names a round that is not open
/// (finalized already by someone else, or not open yet: check `checkpoint`).
pub fn is_not_open(message: &str) -> bool {
    message.contains("cannot be finalized: the open round is")
}

/// The contract's message when a provider's receipt for the round is already there.
pub fn is_duplicate_receipt(message: &str) -> bool {
    message.contains("already posted a receipt for round")
}

/// NEP-297 events in `logs` named `event`: their `data[0]` objects.
pub fn events(logs: &[String], event: &str) -> Vec<Value> {
    logs.iter()
        .filter_map(|l| l.strip_prefix("EVENT_JSON:"))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter(|e| e["event"] == event)
        .map(|e| e["data"][0].clone())
        .collect()
}
