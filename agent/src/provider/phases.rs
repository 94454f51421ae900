//! The three phases of a provider's round, one method each, and how the base checkpoint
//! is obtained (state directory, then peers, then — for round 0 — the spec's seed).

use super::state::TrainedWork;
use super::{
    BaseRef, ChainCheckpoint, ChainError, CrashPoint, Peers, Phase, Progress, Provider,
    ProviderError, RunChain,
};
use crate::checkpoint::Checkpoint;
use crate::model::Gpt;
use crate::round::{RoundResult, WorkerState, aggregate, train_local};
use crowdtrain_protocol::{Hash32, Receipt};
use std::collections::BTreeSet;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

type Step = Result<Progress, ProviderError>;

impl<C: RunChain, P: Peers> Provider<C, P> {
    /// Does the next thing the round needs, or says what it waits for. Safe to call
    /// again after any error: the committed state decides what happens next.
    pub fn step(&mut self) -> Step {
        match self.state.phase.clone() {
            Phase::Ready => self.train(),
            Phase::Trained { round, work } => self.gather(round, work),
            Phase::Posted {
                round,
                work,
                receipt,
                signature,
                blobs,
            } => self.finalize(round, &work, &receipt, &signature, &blobs),
        }
    }

    /// Ready → Trained: H inner steps on the open round from its base checkpoint.
    fn train(&mut self) -> Step {
        let open = match self.chain.open_round() {
            Err(ChainError::Rejected(why)) => return Ok(Progress::Waiting(why)),
            r => r?,
        };
        let base = self.base_checkpoint(&open.base)?;
        let round = open.round;
        if self.state.base.hash != open.base.hash {
            // Rounds were finalized while this provider was away: continue from the last,
            // in a step of its own, so a caller that stops at that round trains no more.
            let mut next = self.state.clone();
            next.base = BaseRef {
                round: open.base.round,
                hash: open.base.hash,
            };
            self.commit(next)?;
            return Ok(Progress::Waiting(format!(
                "caught up with round {}'s checkpoint",
                open.base.round
            )));
        }
        let providers = self.chain.providers()?;
        let Some(me) = providers.iter().find(|p| p.account == self.key.account()) else {
            return Err(ProviderError::NotRegistered {
                account: self.key.account().to_string(),
                run: self.terms.run.clone(),
            });
        };
        if !me.active {
            return Ok(Progress::Waiting(format!(
                "{} is not an active provider (exiting or slashed)",
                me.account
            )));
        }
        // Train on a copy: the worker state in memory advances only with the commit.
        let mut worker = WorkerState {
            adamw: self.worker.adamw.clone(),
            feedback: self.worker.feedback.clone(),
        };
        let cfg = self.spec.config();
        let local = train_local(
            cfg,
            &self.corpus,
            &self.model,
            &base,
            round,
            me.index,
            &mut worker,
        )?;
        self.crash_point(round, CrashPoint::BeforeTrainedCommit)?;
        let blob = self.dir.save_blob(&local.blob_bytes)?;
        let adamw = worker
            .adamw
            .as_ref()
            .expect("train_local creates the optimiser");
        let mut next = self.state.clone();
        let (carried_adamw, carried_feedback) = (next.adamw.clone(), next.feedback.clone());
        next.adamw = Some(self.dir.save_adamw(round, adamw)?);
        next.feedback = Some(self.dir.save_feedback(round, worker.feedback.residual())?);
        next.phase = Phase::Trained {
            round,
            work: TrainedWork {
                blob,
                inner_steps: local.inner_steps,
                tokens: local.tokens,
                loss_start: local.loss_start,
                loss_end: local.loss_end,
                carried_adamw,
                carried_feedback,
            },
        };
        self.commit(next)?;
        self.worker = worker;
        let blob_bytes = local.blob_bytes.len();
        self.peers.publish_blob(round, local.blob_bytes.into())?;
        self.served = Some(round);
        tracing::info!(round, %blob, loss_end = local.loss_end, "trained");
        Ok(Progress::Trained {
            round,
            blob,
            blob_bytes,
            tokens: local.tokens,
            loss: (local.loss_start, local.loss_end),
        })
    }

    /// Trained → Posted: gather the round's blobs until every active provider delivered
    /// or the deadline passed, aggregate, sign and post the receipt.
    fn gather(&mut self, round: u64, work: TrainedWork) -> Step {
        let open = match self.chain.open_round() {
            Err(ChainError::Rejected(why)) => return Ok(Progress::Waiting(why)),
            r => r?,
        };
        if open.round != round {
            // The others finalized the round without this provider: its checkpoint is the
            // new base (fetched from the peers), and the next round is trained from it.
            tracing::warn!(round, "round finalized without this provider's receipt");
            let mut next = self.state.clone();
            self.forget_round(&mut next, &work)?;
            if let Some(ck) = self.chain.checkpoint(round)? {
                self.base_checkpoint(&ck)?;
                next.base = BaseRef {
                    round: ck.round,
                    hash: ck.hash,
                };
            }
            next.phase = Phase::Ready;
            self.commit(next)?;
            return Ok(Progress::Waiting(format!(
                "round {round} was finalized without this provider"
            )));
        }
        if self.served != Some(round) {
            // Trained before a restart (or publishing failed): served once per process.
            let own = self.dir.load_blob(work.blob)?;
            self.peers.publish_blob(round, own.into())?;
            self.served = Some(round);
        }
        let providers = self.chain.providers()?;
        let expected = providers.iter().filter(|p| p.active).count();
        let blobs = self.peers.round_blobs(round, &providers)?;
        let arrived: BTreeSet<Hash32> = blobs
            .iter()
            .map(|b| crowdtrain_protocol::sha256(&b.bytes))
            .collect();
        let deadline = match self.gather_deadline {
            Some((r, t)) if r == round => t,
            _ => {
                let t = Instant::now() + self.options.gather_timeout;
                self.gather_deadline = Some((round, t));
                t
            }
        };
        if arrived.len() < expected && Instant::now() < deadline {
            return Ok(Progress::Waiting(format!(
                "{} of {expected} blobs of round {round}",
                arrived.len()
            )));
        }
        let base = self.base_checkpoint(&open.base)?;
        let aggregating = Instant::now();
        let agg = aggregate(self.spec.config(), round, &base, &blobs)?;
        let aggregate_secs = aggregating.elapsed().as_secs_f32();
        if !agg.blobs.contains(&work.blob) {
            tracing::warn!(round, blob = %work.blob, "own blob left out of the aggregate");
        }
        let bytes = agg.checkpoint.to_bytes()?;
        self.dir.save_checkpoint_bytes(&bytes)?;
        self.peers.publish_checkpoint(agg.hash, bytes.into())?;
        let result = RoundResult {
            round,
            base_checkpoint: open.base.hash,
            result_checkpoint: agg.hash,
            blob: work.blob,
            blob_set: agg.blob_set,
            inner_steps: work.inner_steps,
            tokens: work.tokens,
            loss_start: work.loss_start,
            loss_end: work.loss_end,
        };
        let receipt = result.receipt(&self.terms.run, self.key.account(), unix_ms());
        let signature = self.key.sign(&receipt);
        self.crash_point(round, CrashPoint::BeforePostedCommit)?;
        let mut next = self.state.clone();
        next.phase = Phase::Posted {
            round,
            work,
            receipt: Box::new(receipt.clone()),
            signature: hex(&signature),
            blobs: agg.blobs.clone(),
        };
        self.commit(next)?;
        self.crash_point(round, CrashPoint::BeforePost)?;
        let posted = self.chain.post_receipt(&receipt, &signature);
        self.posted = Some(round);
        if let Err(ChainError::Rejected(why)) = posted {
            // Most often late: a quorum finalized the round while this provider
            // aggregated (the next step adopts the finalized checkpoint).
            tracing::warn!(round, %why, "receipt refused");
            return Ok(Progress::Waiting(format!(
                "the receipt of round {round} was refused: {why}"
            )));
        }
        posted?;
        tracing::info!(round, result = %agg.hash, blobs = agg.blobs.len(), "receipt posted");
        Ok(Progress::Posted {
            round,
            result: agg.hash,
            blobs: agg.blobs.len(),
            aggregate_secs,
        })
    }

    /// Posted → Ready: once `quorum` receipts agree with this one, finalize; once the
    /// round is finalized, its checkpoint becomes the base.
    fn finalize(
        &mut self,
        round: u64,
        work: &TrainedWork,
        receipt: &Receipt,
        signature: &str,
        blobs: &[Hash32],
    ) -> Step {
        // The open round first: a round finalizes before the next one opens, so if the
        // open round has moved on, a finalization of this one is visible below.
        let open = self.chain.open_round();
        if let Some(ck) = self.chain.checkpoint(round)? {
            return self.adopt(ck, receipt.result_checkpoint, work);
        }
        match open {
            Ok(open) if open.round != round => {
                // Abandoned or rolled back: the chain went on from another base.
                tracing::warn!(round, open = open.round, "round closed without finalizing");
                let mut next = self.state.clone();
                if !self.receipt_on_chain(round)? {
                    self.forget_round(&mut next, work)?;
                }
                next.phase = Phase::Ready;
                self.commit(next)?;
                return Ok(Progress::Waiting(format!(
                    "round {round} closed without finalizing; the open round is {}",
                    open.round
                )));
            }
            Err(ChainError::Rejected(why)) => return Ok(Progress::Waiting(why)),
            r => {
                r?;
            }
        }
        let receipts = self.chain.receipts(round)?;
        if self.posted != Some(round) && !receipts.iter().any(|r| r.provider == receipt.provider) {
            // Posted before a restart, or lost: post again (the chain keeps one per provider).
            let sig: [u8; 64] = unhex(signature)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| crate::Error::Checkpoint("state.json: bad signature".into()))?;
            let posted = self.chain.post_receipt(receipt, &sig);
            self.posted = Some(round);
            if let Err(ChainError::Rejected(why)) = posted {
                tracing::warn!(round, %why, "receipt refused");
                return Ok(Progress::Waiting(format!(
                    "the receipt of round {round} was refused: {why}"
                )));
            }
            posted?;
        }
        let agreeing = receipts
            .iter()
            .filter(|r| {
                r.result_checkpoint == receipt.result_checkpoint && r.blob_set == receipt.blob_set
            })
            .count();
        if agreeing >= self.terms.quorum as usize {
            match self
                .chain
                .finalize_round(round, blobs, receipt.result_checkpoint)
            {
                Err(ChainError::Rejected(why)) => return Ok(Progress::Waiting(why)),
                r => r?,
            }
            if let Some(ck) = self.chain.checkpoint(round)? {
                return self.adopt(ck, receipt.result_checkpoint, work);
            }
        }
        Ok(Progress::Waiting(format!(
            "{agreeing} of {} receipts agree on round {round}",
            self.terms.quorum
        )))
    }

    /// Makes the finalized checkpoint `ck` the base of the next round.
    fn adopt(&mut self, ck: ChainCheckpoint, ours: Hash32, work: &TrainedWork) -> Step {
        let round = ck.round;
        if ck.hash != ours {
            tracing::warn!(round, chain = %ck.hash, %ours, "the chain finalized another checkpoint; fetching it");
        }
        self.base_checkpoint(&ck)?;
        self.crash_point(round, CrashPoint::BeforeReadyCommit)?;
        let mut next = self.state.clone();
        if !self.receipt_on_chain(round)? {
            // Refused (late): no replay re-trains a round without a receipt, so it
            // must leave no trace in the worker state either.
            tracing::warn!(
                round,
                "receipt not on chain; the round's training is set aside"
            );
            self.forget_round(&mut next, work)?;
        }
        next.base = BaseRef {
            round,
            hash: ck.hash,
        };
        next.phase = Phase::Ready;
        self.commit(next)?;
        tracing::info!(round, checkpoint = %ck.hash, "round finalized");
        Ok(Progress::Finalized {
            round,
            checkpoint: ck.hash,
            agreed: ck.hash == ours,
        })
    }

    /// Whether this provider's receipt of `round` is on chain.
    fn receipt_on_chain(&self, round: u64) -> Result<bool, ProviderError> {
        let me = self.key.account();
        Ok(self.chain.receipts(round)?.iter().any(|r| r.provider == me))
    }

    /// Sets `next` (and the worker in memory) back to the worker state carried into
    /// `work`'s round: the round ended without this provider's receipt on chain, so its
    /// training must not shape later rounds' (a replay audit re-trains only the rounds
    /// a provider's receipts name, in order).
    fn forget_round(
        &mut self,
        next: &mut super::ProviderState,
        work: &TrainedWork,
    ) -> Result<(), ProviderError> {
        next.adamw = work.carried_adamw.clone();
        next.feedback = work.carried_feedback.clone();
        self.worker = super::load_worker(
            &self.dir,
            next,
            self.model.device(),
            self.spec.config().model.param_count(),
        )?;
        Ok(())
    }

    /// The finalized checkpoint `want`, verified: from memory, the state directory, the
    /// peers (bytes that do not hash to it are refused and asked for again), or — for the
    /// initial checkpoint — rebuilt from the spec's seed. Does not change the state.
    pub(super) fn base_checkpoint(
        &mut self,
        want: &ChainCheckpoint,
    ) -> Result<Checkpoint, ProviderError> {
        if let Some((hash, base)) = &self.base
            && *hash == want.hash
        {
            return Ok(base.clone());
        }
        let cfg = self.spec.config().model;
        let mut found = self.dir.load_checkpoint(want.hash, &cfg)?;
        if found.is_none() && want.round == 0 {
            let model = Gpt::new(cfg, self.spec.init_seed(), self.model.device())?;
            let seeded = Checkpoint::from_model(&model)?;
            let bytes = seeded.to_bytes()?;
            if crowdtrain_protocol::sha256(&bytes) == want.hash {
                // Serve it too: auditors and late joiners fetch checkpoint 0 from peers.
                self.dir.save_checkpoint_bytes(&bytes)?;
                self.peers.publish_checkpoint(want.hash, bytes.into())?;
                found = Some(seeded);
            }
        }
        let mut attempts = 0;
        while found.is_none() && attempts < self.options.fetch_attempts {
            attempts += 1;
            let providers = self.chain.providers()?;
            match self.peers.fetch_checkpoint(want.hash, &providers)? {
                Some(bytes) => match Checkpoint::from_bytes(&bytes, &cfg, want.hash) {
                    Ok(c) => {
                        self.dir.save_checkpoint_bytes(&bytes)?;
                        found = Some(c);
                    }
                    Err(e) => {
                        tracing::warn!(round = want.round, %e, "checkpoint from peers refused; asking again")
                    }
                },
                None => tracing::debug!(round = want.round, "no peer has the checkpoint yet"),
            }
            if found.is_none() {
                std::thread::sleep(self.options.poll);
            }
        }
        let base = found.ok_or(ProviderError::CheckpointUnavailable {
            round: want.round,
            hash: want.hash,
        })?;
        self.base = Some((want.hash, base.clone()));
        Ok(base)
    }

    fn commit(&mut self, next: super::ProviderState) -> Result<(), ProviderError> {
        self.dir.commit(&next)?;
        self.state = next;
        Ok(())
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
