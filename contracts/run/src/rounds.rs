//! Rounds: signed receipts in, finalization on a quorum of agreeing receipts,
//! disputes inside the challenge window, and settlement of credits after it.

use crate::RunExt;
use crate::funding::FundingPhase;
use crate::providers::ProviderStatus;
use crate::{Run, events};
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest};
use near_sdk::json_types::{Base64VecU8, U64, U128};
use near_sdk::serde_json::json;
use near_sdk::{AccountId, NearToken, Promise, env, near, require};

/// Longest dispute reason accepted.
pub const MAX_REASON_LEN: usize = 512;

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
}

/// What happened to one provider's credit for a finalized round.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub enum CreditStatus {
    /// Inside the challenge window, or waiting for `settle_round`.
    Pending,
    /// Voided by an auditor; the bond was slashed.
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
    /// The provider closed its share account before settlement: nothing paid.
    Forfeited,
}

/// One included provider's credit in a finalized round.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq)]
pub struct Credit {
    /// The provider.
    pub provider: AccountId,
    /// Tokens its receipt reported.
    pub tokens: U64,
    /// What became of it.
    pub status: CreditStatus,
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
    /// Credits of the included providers.
    pub credits: Vec<Credit>,
    /// Whether `settle_round` has run.
    pub settled: bool,
}

/// Everything known about one round.
#[near(serializers = [borsh, json])]
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RoundState {
    /// Receipts posted, in arrival order.
    pub receipts: Vec<StoredReceipt>,
    /// Set once the round is finalized.
    pub finalization: Option<Finalization>,
}

impl Run {
    /// Panics with an actionable message unless `receipt` may be posted now.
    fn assert_receipt_fits(&self, receipt: &Receipt, provider_id: &AccountId) {
        let here = env::current_account_id();
        require!(
            receipt.run == here.as_str(),
            format!("this receipt is for run {}, not for {here}", receipt.run)
        );
        let next = self.last_finalized + 1;
        require!(
            receipt.round == next,
            format!(
                "receipt is for round {}, but the open round is {next}",
                receipt.round
            )
        );
        let base = self
            .checkpoints
            .get(&self.last_finalized)
            .expect("last checkpoint")
            .hash;
        require!(
            receipt.base_checkpoint == base,
            format!(
                "receipt starts from checkpoint {}, but the last finalized checkpoint is {base}",
                receipt.base_checkpoint
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
    }

    fn internal_is_active_provider(&self, provider: &str) -> bool {
        let Ok(id) = provider.parse::<AccountId>() else {
            return false;
        };
        self.providers
            .get(&id)
            .is_some_and(|p| p.status == ProviderStatus::Active)
    }

    /// Pays for the bytes written since `before` (rounds and checkpoints, flushed by
    /// the caller): from the treasury while it lasts, otherwise from the attached
    /// deposit. An attached deposit that was not needed goes back to the caller.
    /// Without this the run's storage would grow into the money it owes.
    fn internal_pay_round_storage(&mut self, before: u64) {
        self.internal_pay_round_storage_from(before, &mut 0);
    }

    /// As `internal_pay_round_storage`, taking from `first` (a slashed bond) before
    /// the treasury.
    fn internal_pay_round_storage_from(&mut self, before: u64, first: &mut u128) {
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
            Promise::new(env::predecessor_account_id())
                .transfer(NearToken::from_yoctonear(attached - from_caller))
                .detach();
        }
    }

    /// Whether `provider` is registered and not slashed (active or exiting: its
    /// bond is still held).
    fn internal_is_bonded(&self, provider: &str) -> bool {
        let Ok(id) = provider.parse::<AccountId>() else {
            return false;
        };
        self.providers
            .get(&id)
            .is_some_and(|p| p.status != ProviderStatus::Slashed)
    }

    fn internal_finalization(&self, round: u64) -> (RoundState, Finalization) {
        let state = self.rounds.get(&round).cloned().unwrap_or_default();
        let fin = state
            .finalization
            .clone()
            .unwrap_or_else(|| env::panic_str(&format!("round {round} is not finalized")));
        (state, fin)
    }
}

#[near]
impl Run {
    /// Posts a provider's signed receipt for the open round (anyone may relay it).
    /// `signature` is base64 of the 64-byte ed25519 signature over the receipt's
    /// signing hash, made with the provider's registered key. The receipt's storage
    /// is paid from the treasury; once it is spent, attach it (the excess comes back).
    #[payable]
    pub fn submit_receipt(&mut self, receipt: Receipt, signature: Base64VecU8) {
        self.assert_not_paused();
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
        let key = self.internal_provider(&provider_id).signing_key;
        let key: [u8; 32] = key.as_bytes()[1..]
            .try_into()
            .expect("ed25519 key is 32 bytes");
        require!(
            env::ed25519_verify(&sig, receipt.signing_hash().0, &key),
            "the signature does not match this receipt and the provider's registered signing key"
        );
        let mut state = self.rounds.get(&receipt.round).cloned().unwrap_or_default();
        require!(
            !state
                .receipts
                .iter()
                .any(|r| r.receipt.provider == receipt.provider),
            format!(
                "{provider_id} already posted a receipt for round {}",
                receipt.round
            )
        );
        let agreeing = 1 + state
            .receipts
            .iter()
            .filter(|r| {
                r.receipt.result_checkpoint == receipt.result_checkpoint
                    && r.receipt.blob_set == receipt.blob_set
            })
            .count();
        events::emit(
            "receipt_submitted",
            json!({ "round": receipt.round, "provider": provider_id,
                    "result_checkpoint": receipt.result_checkpoint, "blob_set": receipt.blob_set,
                    "tokens": U64(receipt.tokens), "agreeing": agreeing }),
        );
        let round = receipt.round;
        state.receipts.push(StoredReceipt {
            receipt,
            signature,
            submitted_at_ms: env::block_timestamp_ms(),
        });
        self.rounds.insert(round, state);
        self.rounds.flush();
        self.internal_pay_round_storage(storage_before);
    }

    /// Finalizes the open round once `quorum` receipts agree on the result
    /// checkpoint and on the digest of `blob_hashes`. Credits every agreeing,
    /// still active provider whose own blob is in the set. `checkpoint_uri` defaults to
    /// `sha256:<hash>` (fetch from peers by content address); only the owner or a
    /// provider credited in the round may set another. Storage is paid as in
    /// `submit_receipt`.
    #[payable]
    pub fn finalize_round(
        &mut self,
        round: u64,
        blob_hashes: Vec<Hash32>,
        checkpoint_uri: Option<String>,
    ) -> Checkpoint {
        self.assert_not_paused();
        let storage_before = env::storage_usage();
        let next = self.last_finalized + 1;
        require!(
            round == next,
            format!("round {round} cannot be finalized: the open round is {next}")
        );
        let digest = blob_set_digest(&blob_hashes);
        let mut state = self.rounds.get(&round).cloned().unwrap_or_default();
        // Only providers with a bond still at stake vote: a slashed one, or one that
        // already took its bond back, could otherwise finalize without risk.
        let on_set: Vec<&StoredReceipt> = state
            .receipts
            .iter()
            .filter(|r| {
                r.receipt.blob_set == digest && self.internal_is_bonded(&r.receipt.provider)
            })
            .collect();
        // The result most receipts on this blob set agree on (first posted wins a
        // tie); one pass, with one tally per distinct result.
        let mut tally: Vec<(Hash32, usize)> = Vec::new();
        for r in &on_set {
            let h = r.receipt.result_checkpoint;
            match tally.iter_mut().find(|t| t.0 == h) {
                Some(t) => t.1 += 1,
                None => tally.push((h, 1)),
            }
        }
        let (result, votes) =
            tally.iter().fold(
                (Hash32::default(), 0),
                |best, c| {
                    if c.1 > best.1 { *c } else { best }
                },
            );
        let quorum = self.config.quorum as usize;
        require!(
            votes >= quorum,
            format!(
                "no quorum: {votes} of the {quorum} receipts needed agree on this blob set ({} receipts posted)",
                state.receipts.len()
            )
        );
        // Only active providers earn: one that started exiting could otherwise take
        // its bond back before the challenge window of this credit closes.
        let credits: Vec<Credit> = on_set
            .iter()
            .filter(|r| {
                r.receipt.result_checkpoint == result
                    && blob_hashes.contains(&r.receipt.blob)
                    && self.internal_is_active_provider(&r.receipt.provider)
            })
            .map(|r| Credit {
                provider: r.receipt.provider.parse().expect("checked at submission"),
                tokens: U64(r.receipt.tokens),
                status: CreditStatus::Pending,
            })
            .collect();
        // Anyone may finalize, but where agents fetch the checkpoint from is said
        // only by someone accountable: the owner or a provider credited here.
        if checkpoint_uri.is_some() {
            let caller = env::predecessor_account_id();
            require!(
                caller == self.config.owner || credits.iter().any(|c| c.provider == caller),
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
            json!({ "round": round, "checkpoint": result, "uri": checkpoint.uri, "blob_set": digest,
                    "credited": credits.iter().map(|c| c.provider.clone()).collect::<Vec<_>>(),
                    "challenge_ends_at_ms": U64(now + self.config.challenge_window_ms.0) }),
        );
        state.finalization = Some(Finalization {
            result_checkpoint: result,
            blob_set: digest,
            finalized_at_ms: now,
            credits,
            settled: false,
        });
        self.rounds.insert(round, state);
        self.checkpoints.insert(round, checkpoint.clone());
        self.rounds.flush();
        self.checkpoints.flush();
        self.internal_pay_round_storage(storage_before);
        self.last_finalized = round;
        checkpoint
    }

    /// An auditor voids `provider`'s credit for a finalized `round` inside the
    /// challenge window; the provider's bond is slashed into the revenue pool, less
    /// the dispute's storage (paid as in `submit_receipt` if there is no bond left).
    #[payable]
    pub fn dispute(&mut self, round: u64, provider: AccountId, reason: String) {
        let storage_before = env::storage_usage();
        let auditor = env::predecessor_account_id();
        require!(
            self.config.auditors.contains(&auditor),
            "only the run's auditors may dispute receipts"
        );
        require!(
            reason.len() <= MAX_REASON_LEN,
            "the reason must be at most 512 bytes"
        );
        let (mut state, mut fin) = self.internal_finalization(round);
        let closes = fin.finalized_at_ms + self.config.challenge_window_ms.0;
        require!(
            env::block_timestamp_ms() < closes,
            format!("the challenge window of round {round} closed at {closes} (unix ms)")
        );
        let credit = fin
            .credits
            .iter_mut()
            .find(|c| c.provider == provider)
            .unwrap_or_else(|| {
                env::panic_str(&format!("{provider} has no credit in round {round}"))
            });
        require!(
            credit.status == CreditStatus::Pending,
            format!("{provider}'s credit in round {round} was already disputed")
        );
        credit.status = CreditStatus::Disputed {
            auditor: auditor.clone(),
            reason: reason.clone(),
        };
        state.finalization = Some(fin);
        self.rounds.insert(round, state);
        let mut slashed = 0;
        if let Some(mut p) = self.providers.get(&provider).cloned() {
            slashed = std::mem::take(&mut p.bond);
            p.status = ProviderStatus::Slashed;
            self.providers.insert(provider.clone(), p);
            self.bonds_held -= slashed;
        }
        // The dispute's storage comes out of the slashed bond first, so an auditor
        // never has to pay to dispute, even once the treasury is spent.
        self.rounds.flush();
        self.providers.flush();
        let mut to_holders = slashed;
        self.internal_pay_round_storage_from(storage_before, &mut to_holders);
        self.internal_distribute_rounding_down(to_holders);
        events::emit(
            "dispute",
            json!({ "round": round, "provider": provider, "auditor": auditor, "reason": reason,
                    "slashed": U128(slashed), "to_holders": U128(to_holders) }),
        );
    }

    /// After the challenge window (anyone may call): pays each undisputed credit
    /// `price_per_token × tokens` from the treasury (as far as it reaches) into the
    /// provider's claimable balance and mints `shares_per_token × tokens` shares.
    /// Storage is paid as in `submit_receipt`.
    #[payable]
    pub fn settle_round(&mut self, round: u64) {
        self.assert_not_paused();
        let storage_before = env::storage_usage();
        let (mut state, mut fin) = self.internal_finalization(round);
        require!(!fin.settled, format!("round {round} is already settled"));
        let opens = fin.finalized_at_ms + self.config.challenge_window_ms.0;
        require!(
            env::block_timestamp_ms() >= opens,
            format!("round {round} settles at {opens} (unix ms), after its challenge window")
        );
        for credit in fin
            .credits
            .iter_mut()
            .filter(|c| c.status == CreditStatus::Pending)
        {
            credit.status = self.internal_settle_credit(&credit.provider, credit.tokens.0);
            events::emit(
                "credit_settled",
                json!({ "round": round, "provider": credit.provider, "status": credit.status }),
            );
        }
        fin.settled = true;
        state.finalization = Some(fin);
        self.rounds.insert(round, state);
        self.rounds.flush();
        self.internal_pay_round_storage(storage_before);
    }
}

impl Run {
    /// Pays and mints one credit; the payment is capped by what the treasury holds.
    fn internal_settle_credit(&mut self, provider: &AccountId, tokens: u64) -> CreditStatus {
        if !self.holders.contains_key(provider) {
            return CreditStatus::Forfeited;
        }
        let owed = self
            .config
            .price_per_token
            .0
            .saturating_mul(u128::from(tokens));
        let payment = owed.min(self.treasury);
        let shares = self
            .config
            .shares_per_token
            .0
            .saturating_mul(u128::from(tokens));
        self.treasury -= payment;
        self.compute_paid += payment;
        let mut holder = self.internal_settled_holder(provider);
        holder.compute_owed += payment;
        self.holders.insert(provider.clone(), holder);
        self.internal_mint(provider, shares, "compute shares");
        CreditStatus::Settled {
            payment: U128(payment),
            shares: U128(shares),
        }
    }
}
