//! Drains the outbox: oldest call first, one at a time (so calls land in the order
//! they were decided), each exactly once.
//!
//! For the head entry: sign it (nonce from the access key, block hash of that read)
//! and write the signed transaction to disk *before* sending; if the entry was
//! already signed by an earlier process, first ask the chain (`tx`) whether that
//! hash landed. Send and wait for finality; a timeout or an unreachable endpoint
//! is retried with backoff, then left queued. An expired block hash or a used
//! nonce: check by hash that the old transaction did not land, then re-sign. A
//! final outcome (success or contract panic) removes the entry; a transaction the
//! chain refuses for good moves to `outbox/failed/` with the reason.

use super::outbox::{Call, Outbox, OutboxEntry, Signed, write_atomically};
use super::rpc::{Failure, Outcome, Rpc, with_patience};
use super::{AccountKey, ChainError, Result};
use near_primitives::action::{Action, FunctionCallAction};
use near_primitives::gas::Gas;
use near_primitives::hash::CryptoHash;
use near_primitives::transaction::{SignedTransaction, Transaction, TransactionV0};
use near_primitives::types::Balance;
use std::time::Duration;

/// How long to keep trying an endpoint that does not answer.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Total time spent retrying one request before leaving the call queued.
    pub patience: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            patience: Duration::from_secs(30),
        }
    }
}

/// A call the chain has a final outcome for.
#[derive(Clone, Debug)]
pub struct Landed {
    /// Its position in the outbox.
    pub seq: u64,
    /// What was called.
    pub call: Call,
    /// The chain's outcome.
    pub outcome: Outcome,
}

/// What became of one drain.
#[derive(Debug, Default)]
pub struct Drained {
    /// Calls that reached a final outcome, in order.
    pub landed: Vec<Landed>,
    /// Calls the chain refused for good (moved to `outbox/failed/`): seq, label, reason.
    pub rejected: Vec<(u64, String, String)>,
    /// Why draining stopped early (the endpoint did not answer), if it did.
    pub stalled: Option<String>,
}

/// Signs and sends the outbox's calls with one account's key.
pub struct Sender {
    rpc: Rpc,
    outbox: Outbox,
    key: AccountKey,
    policy: RetryPolicy,
}

enum Step {
    Landed(Outcome),
    Rejected(String),
    Stalled(String),
}

impl Sender {
    /// A sender for `outbox`, signing as `key.account`.
    pub fn new(rpc: Rpc, outbox: Outbox, key: AccountKey, policy: RetryPolicy) -> Self {
        Self {
            rpc,
            outbox,
            key,
            policy,
        }
    }

    /// The outbox drained.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queues `call` durably (it will be sent even if this process dies now).
    pub fn queue(&self, call: Call) -> Result<OutboxEntry> {
        let _lock = self.outbox.lock()?;
        self.outbox.push(call)
    }

    /// Sends everything queued, oldest first, until the queue is empty or the
    /// endpoint stops answering.
    pub async fn drain(&self) -> Result<Drained> {
        let _lock = self.outbox.lock()?;
        let mut report = Drained::default();
        for entry in self.outbox.entries()? {
            let seq = entry.seq;
            let call = entry.call.clone();
            match self.settle(entry).await? {
                Step::Landed(outcome) => {
                    self.outbox.remove(seq)?;
                    tracing::info!(seq, label = %call.label, hash = %outcome.hash, "landed");
                    report.landed.push(Landed { seq, call, outcome });
                }
                Step::Rejected(reason) => {
                    self.set_aside(seq, &reason)?;
                    tracing::warn!(seq, label = %call.label, %reason, "refused by the chain");
                    report.rejected.push((seq, call.label, reason));
                }
                Step::Stalled(reason) => {
                    report.stalled = Some(reason);
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Moves a refused entry to `outbox/failed/` with the chain's reason.
    fn set_aside(&self, seq: u64, reason: &str) -> Result<()> {
        let dir = self.outbox.dir().join("failed");
        let entry = self
            .outbox
            .entries()?
            .into_iter()
            .find(|e| e.seq == seq)
            .expect("the entry being drained is queued");
        let record = serde_json::json!({ "entry": entry, "reason": reason });
        write_atomically(
            &dir.join(format!("{seq:012}.json")),
            &serde_json::to_vec_pretty(&record).expect("serializes"),
        )?;
        self.outbox.remove(seq)
    }

    fn sign(&self, call: &Call, nonce: u64, block_hash: CryptoHash) -> SignedTransaction {
        let tx = Transaction::V0(TransactionV0 {
            signer_id: call.signer.clone(),
            public_key: self.key.secret.public_key(),
            nonce,
            receiver_id: call.receiver.clone(),
            block_hash,
            actions: vec![Action::FunctionCall(Box::new(FunctionCallAction {
                method_name: call.method.clone(),
                args: call.args.clone(),
                gas: Gas::from_gas(call.gas),
                deposit: Balance::from_yoctonear(call.deposit),
            }))],
        });
        let (hash, _) = tx.get_hash_and_size();
        SignedTransaction::new(self.key.secret.sign(hash.as_ref()), tx)
    }

    /// Takes one entry to a final outcome, a refusal, or a stall.
    async fn settle(&self, mut entry: OutboxEntry) -> Result<Step> {
        if entry.call.signer != self.key.account {
            return Err(ChainError::Server(format!(
                "outbox entry {} ({}) is signed by {}, but this agent holds the key of {}: \
                 run the agent as {} to send it, or move the file out of {}",
                entry.seq,
                entry.call.label,
                entry.call.signer,
                self.key.account,
                entry.call.signer,
                self.outbox.dir().display()
            )));
        }
        let patience = self.policy.patience;
        // Signed in this process and never sent: no need to ask the chain first.
        let mut fresh = false;
        loop {
            let Some(signed) = entry.signed.clone() else {
                let pk = self.key.secret.public_key();
                let key =
                    match with_patience(patience, || self.rpc.access_key(&entry.call.signer, &pk))
                        .await
                    {
                        Ok(k) => k,
                        Err((Failure::Transient(reason), _)) => return Ok(Step::Stalled(reason)),
                        Err((other, _)) => return Err(super::rpc::into_error(&self.rpc, other)),
                    };
                let Some((nonce, block_hash)) = key else {
                    // Nothing was signed or sent: set the call aside rather than
                    // block the queue, and say which key file is wrong.
                    let e = ChainError::KeyNotOnChain {
                        account: self.key.account.to_string(),
                        public_key: pk.to_string(),
                        path: self.key.path.clone(),
                    };
                    return Ok(Step::Rejected(e.to_string()));
                };
                let tx = self.sign(&entry.call, nonce + 1, block_hash);
                entry.signed = Some(Signed::new(&tx));
                // On disk before it can reach the chain.
                self.outbox.write(&entry)?;
                fresh = true;
                continue;
            };
            if !fresh {
                match self.landed(signed.hash, &entry).await {
                    Ok(Some(outcome)) => return Ok(Step::Landed(outcome)),
                    Ok(None) => {}
                    Err(step) => return step,
                }
            }
            let tx = signed.transaction().map_err(super::io_err(format!(
                "decoding outbox entry {} in {}",
                entry.seq,
                self.outbox.dir().display()
            )))?;
            match with_patience(patience, || self.rpc.send(tx.clone())).await {
                Ok(outcome) => return Ok(Step::Landed(outcome)),
                Err((Failure::Expired | Failure::Nonce, _)) => {
                    match self.landed(signed.hash, &entry).await {
                        Ok(Some(outcome)) => return Ok(Step::Landed(outcome)),
                        Ok(None) => {}
                        Err(step) => return step,
                    }
                    tracing::info!(
                        seq = entry.seq,
                        "block hash expired or nonce used; re-signing"
                    );
                    entry.signed = None;
                    self.outbox.write(&entry)?;
                    fresh = false;
                }
                Err((Failure::Rejected(reason), _)) => return Ok(Step::Rejected(reason)),
                Err((Failure::Transient(reason), _)) => {
                    // A send that timed out may still land: the next attempt asks first.
                    return Ok(Step::Stalled(reason));
                }
                Err((Failure::Fatal(e), _)) => return Err(e),
            }
        }
    }

    /// Whether transaction `hash` of `entry` already has a final outcome.
    async fn landed(
        &self,
        hash: CryptoHash,
        entry: &OutboxEntry,
    ) -> std::result::Result<Option<Outcome>, Result<Step>> {
        match with_patience(self.policy.patience, || {
            self.rpc.status(hash, &entry.call.signer)
        })
        .await
        {
            Ok(found) => Ok(found),
            Err((Failure::Transient(reason), _)) => Err(Ok(Step::Stalled(reason))),
            Err((other, _)) => Err(Err(super::rpc::into_error(&self.rpc, other))),
        }
    }
}
