//! A run contract in memory that keeps the rules the provider loop relies on (those of
//! contracts/run/src/rounds.rs): receipts only for the open round, on the tip's
//! checkpoint, with the run's inner steps and a token count in range, signed by the
//! provider's registered key, one per provider; finalization only with `quorum`
//! agreeing receipts on the blob set, the result being the one most of them report.
//! Calls can be made to fail as an unreachable endpoint does.

use crowdtrain_agent::provider::{
    ChainCheckpoint, ChainError, OpenRound, ProviderInfo, RunChain, RunTerms,
};
use crowdtrain_protocol::{Hash32, Receipt, blob_set_digest};
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The run contract's state that matters to a provider.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Ledger {
    providers: Vec<ProviderInfo>,
    checkpoints: BTreeMap<u64, ChainCheckpoint>,
    tip: u64,
    receipts: BTreeMap<u64, Vec<Receipt>>,
    funded: bool,
    down: bool,
    posts: usize,
}

/// An in-memory run contract.
pub struct MemoryChain {
    terms: RunTerms,
    ledger: Mutex<Ledger>,
    /// Where the state is kept across processes (written after every change), if anywhere.
    file: Option<PathBuf>,
}

impl MemoryChain {
    /// A funded run whose checkpoint 0 is `initial`.
    pub fn new(terms: RunTerms, initial: Hash32) -> Self {
        let mut ledger = Ledger {
            funded: true,
            ..Ledger::default()
        };
        ledger.checkpoints.insert(
            0,
            ChainCheckpoint {
                round: 0,
                hash: initial,
                uri: format!("sha256:{initial}"),
                finalized_at_ms: 0,
            },
        );
        Self {
            terms,
            ledger: Mutex::new(ledger),
            file: None,
        }
    }

    /// Keeps this chain in `path` from now on (written after every change), so that a
    /// later process — a provider restarted after `kill -9` — sees what an earlier one did.
    pub fn keep_in(&mut self, path: &Path) {
        self.file = Some(path.to_path_buf());
        self.save(&self.ledger.lock().unwrap());
    }

    /// The chain a previous process kept in `path`.
    pub fn load(path: &Path) -> Self {
        let (terms, ledger): (RunTerms, Ledger) =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        Self {
            terms,
            ledger: Mutex::new(ledger),
            file: Some(path.to_path_buf()),
        }
    }

    fn save(&self, ledger: &Ledger) {
        if let Some(path) = &self.file {
            let bytes = serde_json::to_vec(&(&self.terms, ledger)).unwrap();
            crowdtrain_agent::provider::durable::write_atomic(path, &bytes).unwrap();
        }
    }

    /// Registers an active provider with its signing key (`ed25519:<base58>`).
    pub fn register(&self, account: &str, signing_key: &str) {
        let mut l = self.ledger.lock().unwrap();
        let index = l.providers.len() as u32;
        l.providers.push(ProviderInfo {
            account: account.into(),
            index,
            signing_key: signing_key.into(),
            node_id: format!("{account}-node"),
            active: true,
        });
    }

    /// Makes every call fail as an unreachable endpoint does (or work again).
    pub fn set_down(&self, down: bool) {
        self.ledger.lock().unwrap().down = down;
    }

    /// Whether rounds are open (the funding goal reached).
    pub fn set_funded(&self, funded: bool) {
        self.ledger.lock().unwrap().funded = funded;
    }

    /// The finalized checkpoint hash of `round`.
    pub fn finalized(&self, round: u64) -> Option<Hash32> {
        self.ledger
            .lock()
            .unwrap()
            .checkpoints
            .get(&round)
            .map(|c| c.hash)
    }

    /// How many receipts were accepted, all rounds together.
    pub fn receipts_accepted(&self) -> usize {
        self.ledger.lock().unwrap().posts
    }

    fn ledger(&self) -> Result<std::sync::MutexGuard<'_, Ledger>, ChainError> {
        let l = self.ledger.lock().unwrap();
        if l.down {
            return Err(ChainError::Unavailable("connection refused (test)".into()));
        }
        Ok(l)
    }
}

fn reject<T>(why: String) -> Result<T, ChainError> {
    Err(ChainError::Rejected(why))
}

fn verifying_key(text: &str) -> VerifyingKey {
    let bytes = bs58::decode(text.strip_prefix("ed25519:").unwrap())
        .into_vec()
        .unwrap();
    VerifyingKey::from_bytes(&bytes.try_into().unwrap()).unwrap()
}

impl RunChain for MemoryChain {
    fn terms(&self) -> Result<RunTerms, ChainError> {
        let _open = self.ledger()?;
        Ok(self.terms.clone())
    }

    fn open_round(&self) -> Result<OpenRound, ChainError> {
        let l = self.ledger()?;
        if !l.funded {
            return reject("rounds open once the funding goal is reached".into());
        }
        Ok(OpenRound {
            round: l.tip + 1,
            base: l.checkpoints[&l.tip].clone(),
        })
    }

    fn checkpoint(&self, round: u64) -> Result<Option<ChainCheckpoint>, ChainError> {
        Ok(self.ledger()?.checkpoints.get(&round).cloned())
    }

    fn providers(&self) -> Result<Vec<ProviderInfo>, ChainError> {
        Ok(self.ledger()?.providers.clone())
    }

    fn receipts(&self, round: u64) -> Result<Vec<Receipt>, ChainError> {
        Ok(self
            .ledger()?
            .receipts
            .get(&round)
            .cloned()
            .unwrap_or_default())
    }

    fn post_receipt(&self, receipt: &Receipt, signature: &[u8; 64]) -> Result<(), ChainError> {
        let mut l = self.ledger()?;
        if receipt.run != self.terms.run {
            return reject(format!("this receipt is for run {}", receipt.run));
        }
        let open = l.tip + 1;
        if receipt.round != open {
            return reject(format!(
                "receipt is for round {}, but the open round is {open}",
                receipt.round
            ));
        }
        let base = l.checkpoints[&l.tip].hash;
        if receipt.base_checkpoint != base {
            return reject(format!(
                "receipt starts from checkpoint {}, but the last finalized checkpoint is {base}",
                receipt.base_checkpoint
            ));
        }
        if receipt.inner_steps != self.terms.inner_steps {
            return reject("wrong inner steps".into());
        }
        if receipt.tokens == 0 || receipt.tokens > self.terms.max_tokens_per_round {
            return reject("tokens out of range".into());
        }
        let Some(p) = l.providers.iter().find(|p| p.account == receipt.provider) else {
            return reject(format!("{} is not a registered provider", receipt.provider));
        };
        verifying_key(&p.signing_key)
            .verify(&receipt.signing_hash().0, &Signature::from_bytes(signature))
            .map_err(|_| ChainError::Rejected("the signature does not match".into()))?;
        let posted = l.receipts.entry(open).or_default();
        if posted.iter().any(|r| r.provider == receipt.provider) {
            // The contract refuses a second receipt; the client reports that as done.
            return Ok(());
        }
        posted.push(receipt.clone());
        l.posts += 1;
        self.save(&l);
        Ok(())
    }

    fn finalize_round(
        &self,
        round: u64,
        blob_hashes: &[Hash32],
        result: Hash32,
    ) -> Result<(), ChainError> {
        let mut l = self.ledger()?;
        let open = l.tip + 1;
        if round < open {
            return Ok(()); // already finalized
        }
        if round > open {
            return reject(format!(
                "round {round} cannot be finalized: the open round is {open}"
            ));
        }
        let digest = blob_set_digest(blob_hashes);
        let receipts = l.receipts.get(&round).cloned().unwrap_or_default();
        let votes = receipts
            .iter()
            .filter(|r| r.blob_set == digest && r.result_checkpoint == result)
            .count();
        if votes < self.terms.quorum as usize {
            return reject(format!(
                "no quorum: {votes} of the {} receipts needed agree on this blob set ({} receipts posted)",
                self.terms.quorum,
                receipts.len()
            ));
        }
        l.checkpoints.insert(
            round,
            ChainCheckpoint {
                round,
                hash: result,
                uri: format!("sha256:{result}"),
                finalized_at_ms: round * 1000,
            },
        );
        l.tip = round;
        self.save(&l);
        Ok(())
    }
}
