//! Settlement, page by page, after a round's challenge window: each receipt that
//! agreed on the finalized result and blob set, whose blob is in the set and whose
//! vote still carried its bond, is paid `price_per_token × tokens` from the
//! treasury (as far as it reaches) into the provider's claimable balance and minted
//! `shares_per_token × tokens` shares. Rounds settle in chain order (a round after
//! its base), so a rolled-back round is never reached; settlement is never paused.
//! Each page logs one `credits_settled` event and one `ft_mint` event with every
//! mint of the page, so 50 credits stay under NEAR's 100 logs and 16 KiB per receipt.

use crate::RunExt;
use crate::rounds::CreditStatus;
use crate::{Run, events};
use near_contract_standards::fungible_token::events::FtMint;
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, env, near, require};

/// Receipts `settle_round` handles per call by default (and at most).
pub const SETTLE_PAGE: u32 = 50;

/// How far a round's settlement has come.
#[near(serializers = [json])]
#[derive(Clone, Debug, PartialEq)]
pub struct SettleProgress {
    /// Receipts handled so far.
    pub settled_through: u32,
    /// Receipts in the round.
    pub receipt_count: u32,
    /// Whether the round is fully settled.
    pub done: bool,
}

#[near]
impl Run {
    /// After `round`'s challenge window (anyone may call; its base must be settled
    /// first): settles up to `limit` (default and at most 50) more receipts. Call
    /// again until `done`. Storage is paid as in `submit_receipt`.
    #[payable]
    pub fn settle_round(&mut self, round: u64, limit: Option<u32>) -> SettleProgress {
        let storage_before = env::storage_usage();
        let (mut state, mut fin) = self.internal_finalization(round);
        require!(!fin.settled, format!("round {round} is already settled"));
        require!(
            fin.disputed.is_none(),
            format!("round {round}'s result was disputed: it is never paid")
        );
        let base = self.internal_round(state.base_round);
        let base_fin = base.finalization.as_ref();
        require!(
            base.child_round == round && base_fin.is_some_and(|f| f.disputed.is_none()),
            format!(
                "round {round} was rolled back by a dispute of an earlier round: it is never paid"
            )
        );
        require!(
            base_fin.is_some_and(|f| f.settled),
            format!(
                "settle round {} first: rounds settle in order",
                state.base_round
            )
        );
        let opens = fin.finalized_at_ms + self.config.challenge_window_ms.0;
        require!(
            env::block_timestamp_ms() >= opens,
            format!("round {round} settles at {opens} (unix ms), after its challenge window")
        );
        let blobs = self.round_blobs.get(&round).cloned().unwrap_or_default();
        let limit = limit.unwrap_or(SETTLE_PAGE).clamp(1, SETTLE_PAGE);
        let end = state.receipt_count.min(fin.settled_through + limit);
        let mut credits = Vec::new();
        let mut mints: Vec<(AccountId, u128)> = Vec::new();
        for i in fin.settled_through..end {
            let who = self.voters.get(&(round, i)).cloned().expect("voter index");
            let key = (round, who.clone());
            let mut stored = self.receipts.get(&key).cloned().expect("receipt");
            if stored.status != CreditStatus::Pending {
                continue;
            }
            let r = &stored.receipt;
            let earns = stored.stake.0 > 0
                && r.result_checkpoint == fin.result_checkpoint
                && r.blob_set == fin.blob_set
                && blobs.binary_search(&r.blob).is_ok();
            stored.status = if !earns {
                CreditStatus::Excluded
            } else if self.internal_proven_dishonest(&who, stored.generation) {
                CreditStatus::Withheld
            } else {
                self.internal_settle_credit(&who, r.tokens, &mut mints)
            };
            if let CreditStatus::Settled { payment, shares } = &stored.status {
                credits.push(json!({ "provider": who, "payment": payment, "shares": shares }));
            }
            self.receipts.insert(key, stored);
        }
        fin.settled_through = end;
        fin.settled = end == state.receipt_count;
        let progress = SettleProgress {
            settled_through: end,
            receipt_count: state.receipt_count,
            done: fin.settled,
        };
        state.finalization = Some(fin);
        self.rounds.insert(round, state);
        events::emit(
            "credits_settled",
            json!({ "round": round, "settled_through": end, "done": progress.done,
                    "credits": credits }),
        );
        if !mints.is_empty() {
            let events: Vec<FtMint> = mints
                .iter()
                .map(|(who, amount)| FtMint {
                    owner_id: who,
                    amount: U128(*amount),
                    memo: None,
                })
                .collect();
            FtMint::emit_many(&events);
        }
        self.flush_rounds();
        self.holders.flush();
        self.internal_pay_round_storage(storage_before);
        progress
    }
}

impl Run {
    /// Pays and mints one credit; the payment is capped by what the treasury holds.
    fn internal_settle_credit(
        &mut self,
        provider: &AccountId,
        tokens: u64,
        mints: &mut Vec<(AccountId, u128)>,
    ) -> CreditStatus {
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
        if self.internal_mint_silent(provider, shares) {
            mints.push((provider.clone(), shares));
        }
        CreditStatus::Settled {
            payment: U128(payment),
            shares: U128(shares),
        }
    }
}
