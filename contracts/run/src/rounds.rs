//! Rounds: signed receipts in (one storage entry per provider and round, a running
//! tally per result), finalization in O(1) once the agreeing receipts carry a
//! quorum of the active bonded stake.
//!
//! Round ids are never reused. Each round records the round it built on
//! (`base_round`); `head` is the tip of the live chain and `next_round` the open
//! round. A disputed result rolls `head` back to the disputed round's base and
//! opens a fresh round id on it (see `disputes.rs`).

use crate::RunExt;
use crate::funding::FundingPhase;
use crate::providers::ProviderStatus;
use crate::{Run, events};
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest};
use near_sdk::json_types::{Base64VecU8, U64, U128};
use near_sdk::serde_json::json;
use near_sdk::{AccountId, NearToken, env, near, require};

/// A finalized checkpoint.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The round that produced it (0 = the initial checkpoint).
    pub round: u64,
    /// sha256 of the canonical checkpoint file.
    pub hash: Hash32,
    /// Where to fetch it (`sha256:<hash>` = from peers by content address).
    pub uri: String,
    /// When it was finalized, unix ms.
    pub finalized_at_ms: u64,
}

/// What became of one receipt's credit.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub enum CreditStatus {
    /// Not settled yet (open round, challenge window, or waiting for `settle_round`).
    Pending,
    /// Disputed by an auditor (its own receipt, or the result it voted for): the
    /// bond was slashed and nothing is paid.
    Disputed {
        /// The auditor who disputed.
        auditor: AccountId,
        /// Why.
        reason: String,
    },
    /// Paid from the treasury and minted shares.
    Settled {
        /// yoctoNEAR credited (less than price × tokens when the treasury ran dry).
        payment: U128,
        /// Shares minted.
        shares: U128,
    },
    /// The receipt did not earn: another result or blob set, its blob outside the
    /// set, or its vote withdrawn (the provider left before finalization).
    Excluded,
    /// The provider was proven dishonest in another round: nothing is paid.
    Withheld,
    /// The provider closed its share account before settlement: nothing paid.
    Forfeited,
}

/// A receipt as posted, with the signature that authenticated it.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The provider's ed25519 signature over `receipt.signing_hash()`.
    pub signature: Base64VecU8,
    /// When it was posted, unix ms.
    pub submitted_at_ms: u64,
    /// The bond its vote carries (0 once withdrawn: the provider left or was slashed
    /// before the round was finalized).
    pub stake: U128,
    /// The provider's registration that signed it (see `Provider::generation`).
    pub generation: u64,
    /// What became of its credit.
    pub status: CreditStatus,
}

/// The stake and number of receipts agreeing on one (result, blob set).
#[near(serializers = [borsh, json])]
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Tally {
    /// Bonds of the agreeing voters.
    pub stake: U128,
    /// Agreeing receipts.
    pub count: u32,
}

/// A result dispute: the round is rolled back and its voters are slashed.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct ResultDispute {
    /// The auditor.
    pub auditor: AccountId,
    /// Why.
    pub reason: String,
    /// Receipts checked for slashing so far (`slash_voters` pages on).
    pub slashed_through: u32,
}

/// How a round was finalized.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct Finalization {
    /// The agreed checkpoint.
    pub result_checkpoint: Hash32,
    /// The agreed blob-set digest.
    pub blob_set: Hash32,
    /// When, unix ms; the challenge window runs from here.
    pub finalized_at_ms: u64,
    /// The agreeing votes when it was finalized.
    pub votes: Tally,
    /// The active bonded stake when it was finalized.
    pub active_stake: U128,
    /// Receipts settled so far (`settle_round` pages on).
    pub settled_through: u32,
    /// Whether every receipt has been settled.
    pub settled: bool,
    /// Set when an auditor disputed the result.
    pub disputed: Option<ResultDispute>,
}

/// One round's small record (receipts live in their own entries).
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RoundState {
    /// The round whose checkpoint this one trains from.
    pub base_round: u64,
    /// Receipts posted.
    pub receipt_count: u32,
    /// The (result, blob set) with the most stake so far: the default of `finalize_round`.
    pub leader: Option<(Hash32, Hash32)>,
    /// The round finalized on top of this one most recently (0 = none).
    pub child_round: u64,
    /// Set once the round is finalized.
    pub finalization: Option<Finalization>,
}

/// Where a round stands.
#[near(serializers = [json])]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundStatus {
    /// Taking receipts.
    Open,
    /// Never finalized, and its base was rolled back or the run closed.
    Abandoned,
    /// Finalized and on the live chain (challenge window open or settling).
    Finalized,
    /// Fully settled.
    Settled,
    /// An auditor disputed its result: rolled back, voters slashed, nothing paid.
    Disputed,
    /// Finalized on top of a result that was disputed: rolled back, nothing paid,
    /// nobody slashed.
    RolledBack,
}

/// A round as the `round` view shows it.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct RoundView {
    /// The round id.
    pub round: u64,
    /// Where it stands.
    pub status: RoundStatus,
    /// The round's record.
    #[serde(flatten)]
    pub state: RoundState,
}

impl RoundState {
    /// Round 0: the initial checkpoint, final and settled from the start.
    pub(crate) fn initial(hash: Hash32, now_ms: u64) -> Self {
        RoundState {
            finalization: Some(Finalization {
                result_checkpoint: hash,
                blob_set: Hash32::default(),
                finalized_at_ms: now_ms,
                votes: Tally::default(),
                active_stake: U128(0),
                settled_through: 0,
                settled: true,
                disputed: None,
            }),
            ..Default::default()
        }
    }
}

impl Run {
    /// Panics with an actionable message unless `receipt` may be posted now.
    fn assert_receipt_fits(&self, receipt: &Receipt, provider_id: &AccountId) {
        let here = env::current_account_id();
        require!(
            receipt.run == here.as_str(),
            format!("this receipt is for run {}, not for {here}", receipt.run)
        );
        let open = self.next_round;
        require!(
            receipt.round == open,
            format!(
                "receipt is for round {}, but the open round is {open}",
                receipt.round
            )
        );
        let base = self
            .checkpoints
            .get(&self.head)
            .expect("head checkpoint")
            .hash;
        require!(
            receipt.base_checkpoint == base,
            format!(
                "receipt starts from checkpoint {}, but the open round builds on {base} (round {})",
                receipt.base_checkpoint, self.head
            )
        );
        require!(
            receipt.inner_steps == self.config.inner_steps,
            format!(
                "this run trains {} inner steps per round",
                self.config.inner_steps
            )
        );
        require!(
            receipt.tokens >= 1 && receipt.tokens <= self.config.max_tokens_per_round.0,
            format!(
                "tokens must be 1 to {} per round",
                self.config.max_tokens_per_round.0
            )
        );
        require!(
            receipt.losses_are_finite(),
            "receipt losses must be finite numbers"
        );
        let provider = self.internal_provider(provider_id);
        require!(
            provider.status == ProviderStatus::Active,
            format!("{provider_id} is not an active provider (exiting or slashed)")
        );
        require!(
            !self.internal_is_dishonest(provider_id, provider.generation),
            format!("{provider_id} voted for a disputed result; its bond is being slashed")
        );
    }

    /// Panics unless rounds may run: funded, not paused, not closed.
    pub(crate) fn assert_open_for_rounds(&self) {
        self.assert_not_paused();
        require!(!self.closed, "the run is closed: no more rounds");
    }

    /// Stake a quorum needs now: `quorum_bps` of the active bonded stake, rounded up.
    pub(crate) fn internal_quorum_stake(&self) -> u128 {
        let bps = u128::from(self.config.quorum_bps());
        crate::math::U256::mul_div_ceil(self.active_stake, bps, 10_000)
    }

    /// Takes back `provider`'s vote in `round` (it left or was slashed before the
    /// round was finalized): a vote without a bond at stake never counts.
    pub(crate) fn internal_withdraw_vote(&mut self, round: u64, provider: &AccountId) {
        let key = (round, provider.clone());
        let Some(mut stored) = self.receipts.get(&key).cloned() else {
            return;
        };
        if stored.stake.0 == 0 {
            return;
        }
        let tkey = (
            round,
            stored.receipt.result_checkpoint,
            stored.receipt.blob_set,
        );
        let mut tally = self.tallies.get(&tkey).copied().unwrap_or_default();
        tally.stake = U128(tally.stake.0 - stored.stake.0);
        tally.count -= 1;
        self.tallies.insert(tkey, tally);
        stored.stake = U128(0);
        self.receipts.insert(key, stored);
    }

    /// The round record, or a message that it does not exist.
    pub(crate) fn internal_round(&self, round: u64) -> RoundState {
        self.rounds
            .get(&round)
            .cloned()
            .unwrap_or_else(|| env::panic_str(&format!("round {round} has no receipts")))
    }

    /// The round's finalization, or a message that it is not finalized.
    pub(crate) fn internal_finalization(&self, round: u64) -> (RoundState, Finalization) {
        let state = self.rounds.get(&round).cloned().unwrap_or_default();
        let fin = state
            .finalization
            .clone()
            .unwrap_or_else(|| env::panic_str(&format!("round {round} is not finalized")));
        (state, fin)
    }

    /// Whether `round` is on the live chain (walks back from the head; rounds
    /// inside a challenge window are few, and older ones are reached only by views).
    pub(crate) fn internal_is_live(&self, round: u64) -> bool {
        let mut r = self.head;
        while r > round {
            r = self.rounds.get(&r).map_or(0, |s| s.base_round);
        }
        r == round
    }

    /// Pays the bytes a call added (receipts, finalizations, disputes, settlements).
    pub(crate) fn internal_pay_round_storage(&mut self, before: u64) {
        self.internal_pay_round_storage_from(before, &mut 0);
    }

    /// Pays the bytes a call added since `before`: from `first` (slashed bonds),
    /// then the treasury, then the attached deposit; an attached deposit that was
    /// not needed goes back to the caller. Without this the run's storage would
    /// grow into the money it owes.
    pub(crate) fn internal_pay_round_storage_from(&mut self, before: u64, first: &mut u128) {
        let bytes = env::storage_usage().saturating_sub(before);
        let cost = u128::from(bytes) * env::storage_byte_cost().as_yoctonear();
        let from_first = cost.min(*first);
        *first -= from_first;
        let from_treasury = (cost - from_first).min(self.treasury);
        let from_caller = cost - from_first - from_treasury;
        let attached = env::attached_deposit().as_yoctonear();
        require!(
            attached >= from_caller,
            format!(
                "the run's treasury is spent: attach {from_caller} yoctoNEAR ({}) for the {bytes} bytes of storage this call adds",
                NearToken::from_yoctonear(from_caller).exact_amount_display()
            )
        );
        self.treasury -= from_treasury;
        self.round_storage_held += cost;
        if attached > from_caller {
            self.internal_payout(env::predecessor_account_id(), attached - from_caller)
                .detach();
        }
    }
}

#[near]
impl Run {
    /// Posts a provider's signed receipt for the open round (anyone may relay it).
    /// `signature` is base64 of the 64-byte ed25519 signature over the receipt's
    /// signing hash, made with the provider's registered key. Its vote carries the
    /// provider's bond. Storage is paid from the treasury; once it is spent, attach
    /// it (the excess comes back). Costs the same with 1 or 1,000 receipts posted.
    #[payable]
    pub fn submit_receipt(&mut self, receipt: Receipt, signature: Base64VecU8) {
        self.assert_open_for_rounds();
        let storage_before = env::storage_usage();
        require!(
            self.internal_funding_phase() == FundingPhase::Funded,
            "rounds open once the funding goal is reached"
        );
        let provider_id: AccountId = receipt
            .provider
            .parse()
            .unwrap_or_else(|_| env::panic_str("receipt.provider is not a valid NEAR account id"));
        self.assert_receipt_fits(&receipt, &provider_id);
        let sig: [u8; 64] = signature.0.as_slice().try_into().unwrap_or_else(|_| {
            env::panic_str("signature must be base64 of the 64 ed25519 signature bytes")
        });
        let mut provider = self.internal_provider(&provider_id);
        let key: [u8; 32] = provider.signing_key.as_bytes()[1..]
            .try_into()
            .expect("ed25519 key is 32 bytes");
        require!(
            env::ed25519_verify(&sig, receipt.signing_hash().0, &key),
            "the signature does not match this receipt and the provider's registered signing key"
        );
        let round = receipt.round;
        let key = (round, provider_id.clone());
        require!(
            !self.receipts.contains_key(&key),
            format!("{provider_id} already posted a receipt for round {round}")
        );
        let mut state = self.rounds.get(&round).cloned().unwrap_or(RoundState {
            base_round: self.head,
            ..Default::default()
        });
        let tkey = (round, receipt.result_checkpoint, receipt.blob_set);
        let mut tally = self.tallies.get(&tkey).copied().unwrap_or_default();
        tally.stake = U128(tally.stake.0 + provider.bond);
        tally.count += 1;
        self.tallies.insert(tkey, tally);
        let leads = match state.leader {
            None => true,
            Some((r, b)) => {
                (r, b) == (tkey.1, tkey.2)
                    || self
                        .tallies
                        .get(&(round, r, b))
                        .is_none_or(|t| t.stake.0 < tally.stake.0)
            }
        };
        if leads {
            state.leader = Some((tkey.1, tkey.2));
        }
        events::emit(
            "receipt_submitted",
            json!({ "round": round, "provider": provider_id,
                    "result_checkpoint": receipt.result_checkpoint, "blob_set": receipt.blob_set,
                    "tokens": U64(receipt.tokens), "agreeing": tally.count,
                    "agreeing_stake": tally.stake, "quorum_stake": U128(self.internal_quorum_stake()) }),
        );
        self.voters
            .insert((round, state.receipt_count), provider_id.clone());
        state.receipt_count += 1;
        self.rounds.insert(round, state);
        self.receipts.insert(
            key,
            StoredReceipt {
                receipt,
                signature,
                submitted_at_ms: env::block_timestamp_ms(),
                stake: U128(provider.bond),
                generation: provider.generation,
                status: CreditStatus::Pending,
            },
        );
        provider.last_vote_round = round;
        self.providers.insert(provider_id, provider);
        self.flush_rounds();
        self.internal_pay_round_storage(storage_before);
    }

    /// Finalizes the open round once the receipts agreeing on `result_checkpoint`
    /// (default: the result with the most stake on this blob set) and on the digest
    /// of `blob_hashes` carry `quorum_bps` of the active bonded stake and number at
    /// least `quorum`. Constant work, whatever the number of receipts: credits are
    /// worked out page by page in `settle_round`. `checkpoint_uri` defaults to
    /// `sha256:<hash>`; only the owner or a provider credited in the round may set
    /// another. Storage is paid as in `submit_receipt`.
    #[payable]
    pub fn finalize_round(
        &mut self,
        round: u64,
        blob_hashes: Vec<Hash32>,
        checkpoint_uri: Option<String>,
        result_checkpoint: Option<Hash32>,
    ) -> Checkpoint {
        self.assert_open_for_rounds();
        let storage_before = env::storage_usage();
        let open = self.next_round;
        require!(
            round == open,
            format!("round {round} cannot be finalized: the open round is {open}")
        );
        let digest = blob_set_digest(&blob_hashes);
        let mut state = self.rounds.get(&round).cloned().unwrap_or_default();
        let result = result_checkpoint
            .or_else(|| state.leader.filter(|l| l.1 == digest).map(|l| l.0))
            .unwrap_or_default();
        let votes = self
            .tallies
            .get(&(round, result, digest))
            .copied()
            .unwrap_or_default();
        let needed = self.internal_quorum_stake().max(1);
        let floor = self.config.quorum;
        require!(
            votes.stake.0 >= needed && votes.count >= floor,
            format!(
                "no quorum: {} agreeing receipts carry {} of the {needed} yoctoNEAR of bonded stake needed (and at least {floor} receipts) on this result and blob set ({} receipts posted)",
                votes.count, votes.stake.0, state.receipt_count
            )
        );
        let mut blobs = blob_hashes;
        blobs.sort_unstable();
        blobs.dedup();
        // Anyone may finalize, but where agents fetch the checkpoint from is said
        // only by someone accountable: the owner or a provider credited here.
        if checkpoint_uri.is_some() {
            let caller = env::predecessor_account_id();
            let credited = self
                .receipts
                .get(&(round, caller.clone()))
                .is_some_and(|r| {
                    r.stake.0 > 0
                        && r.receipt.result_checkpoint == result
                        && r.receipt.blob_set == digest
                        && blobs.binary_search(&r.receipt.blob).is_ok()
                });
            require!(
                caller == self.config.owner || credited,
                "only the run's owner or a provider credited in this round may set checkpoint_uri; pass null for the default sha256:<hash>"
            );
        }
        let uri = checkpoint_uri.unwrap_or_else(|| format!("sha256:{result}"));
        crate::config::assert_uri(&uri);
        let now = env::block_timestamp_ms();
        let checkpoint = Checkpoint {
            round,
            hash: result,
            uri,
            finalized_at_ms: now,
        };
        events::emit(
            "round_finalized",
            json!({ "round": round, "base_round": state.base_round, "checkpoint": result,
                    "uri": checkpoint.uri, "blob_set": digest, "blobs": blobs.len(),
                    "votes": votes.count, "vote_stake": votes.stake,
                    "active_stake": U128(self.active_stake),
                    "challenge_ends_at_ms": U64(now + self.config.challenge_window_ms.0) }),
        );
        state.finalization = Some(Finalization {
            result_checkpoint: result,
            blob_set: digest,
            finalized_at_ms: now,
            votes,
            active_stake: U128(self.active_stake),
            settled_through: 0,
            settled: false,
            disputed: None,
        });
        let base = state.base_round;
        self.rounds.insert(round, state);
        let mut parent = self.internal_round(base);
        parent.child_round = round;
        self.rounds.insert(base, parent);
        self.round_blobs.insert(round, blobs);
        self.checkpoints.insert(round, checkpoint.clone());
        self.head = round;
        self.next_round = round + 1;
        self.last_progress_ms = now;
        self.flush_rounds();
        self.internal_pay_round_storage(storage_before);
        checkpoint
    }
}

impl Run {
    /// Writes the round collections now, so the storage they add can be measured.
    pub(crate) fn flush_rounds(&mut self) {
        self.rounds.flush();
        self.checkpoints.flush();
        self.receipts.flush();
        self.voters.flush();
        self.tallies.flush();
        self.round_blobs.flush();
        self.providers.flush();
    }
}
