//! One provider's side of a run: the round loop, its crash-safe state directory, and the
//! two seams it talks through — [`RunChain`] (the run contract) and [`Peers`] (the other
//! providers).
//!
//! A round, as [`Provider::step`] advances it (each arrow is a commit of
//! `DIR/provider/state.json`, so a crash anywhere resumes from the last arrow with the
//! same bits):
//!
//! ```text
//! Ready ──train H steps from checkpoint r−1, compress──▶ Trained ──gather blobs until all
//! active providers delivered or the deadline, aggregate in hash order, sign──▶ Posted
//! ──post the receipt; once `quorum` receipts agree, finalize; adopt checkpoint r──▶ Ready
//! ```

pub mod chain;
pub mod durable;
pub mod key;
pub mod peers;
mod phases;
pub mod state;

pub use chain::{ChainCheckpoint, ChainError, OpenRound, ProviderInfo, RunChain, RunTerms};
pub use key::{KEY_FILE, KeyError, ReceiptKey};
pub use peers::{Peers, PeersError, SharedDir};
pub use state::{BaseRef, Phase, ProviderState, StateDir};

use crate::checkpoint::Checkpoint;
use crate::data::Corpus;
use crate::model::Gpt;
use crate::round::WorkerState;
use crate::spec::RunSpec;
use candle_core::Device;
use crowdtrain_kernels::ErrorFeedback;
use crowdtrain_protocol::Hash32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the provider loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Training, aggregation or a local file failed.
    #[error(transparent)]
    Training(#[from] crate::Error),
    /// The chain refused a call or could not be reached.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The peers could not be reached.
    #[error(transparent)]
    Peers(#[from] PeersError),
    /// The signing key file cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The agent's run spec is not the run's.
    #[error(
        "this agent's run spec hashes to {local}, but run {run} was created with \
         model_spec_hash {chain}: train with the run's own spec file"
    )]
    SpecMismatch {
        /// The run.
        run: String,
        /// The hash of the spec this agent holds.
        local: Hash32,
        /// The chain's `model_spec_hash`.
        chain: Hash32,
    },
    /// The spec and the run contract's terms disagree on something else.
    #[error("run spec and run contract disagree: {0}")]
    Terms(String),
    /// The key's account is not a provider of the run.
    #[error("{account} is not a registered provider of {run}: run `crowdtrain register` first")]
    NotRegistered {
        /// The account in the key file.
        account: String,
        /// The run.
        run: String,
    },
    /// The key file's key is not the one registered on the run.
    #[error(
        "{account} registered signing key {registered} on the run, but {path} holds {local}: \
         use the key file `crowdtrain init` wrote, or register this key"
    )]
    KeyMismatch {
        /// The provider.
        account: String,
        /// The key on chain.
        registered: String,
        /// The key in the file.
        local: String,
        /// The key file.
        path: PathBuf,
    },
    /// The state directory was made for another run or account.
    #[error("{path} holds the state of {what}; use another --state directory for this run")]
    ForeignState {
        /// The state directory.
        path: PathBuf,
        /// Whose state it holds.
        what: String,
    },
    /// No peer served the bytes of a checkpoint this provider needs.
    #[error(
        "checkpoint {hash} (round {round}) is not held here and no peer served bytes that \
         hash to it; check that other providers are online"
    )]
    CheckpointUnavailable {
        /// The round that finalized it.
        round: u64,
        /// Its hash.
        hash: Hash32,
    },
    /// A test asked the loop to stop dead at this point (as a kill would).
    #[error("crashed on purpose at {0:?} (test hook)")]
    Crashed(CrashPoint),
}

/// Points where a test can make the loop stop dead, as `kill -9` would: nothing after
/// the point runs, nothing is cleaned up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the inner steps, before their result is committed (what a kill during
    /// training leaves on disk: the state before the round).
    BeforeTrainedCommit,
    /// After aggregating and signing, before the receipt is committed.
    BeforePostedCommit,
    /// After the receipt is committed, before it is posted.
    BeforePost,
    /// After the round is seen finalized, before the new base is committed.
    BeforeReadyCommit,
}

/// What one [`Provider::step`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Nothing to do yet; the reason (waiting for funding, blobs, a quorum, ...).
    Waiting(String),
    /// Trained a round and served the blob.
    Trained {
        /// The chain round.
        round: u64,
        /// The blob's hash.
        blob: Hash32,
        /// The blob's size.
        blob_bytes: usize,
        /// Tokens trained on.
        tokens: u64,
        /// Loss of the first and last inner steps.
        loss: (f32, f32),
    },
    /// Aggregated a round and posted the signed receipt.
    Posted {
        /// The chain round.
        round: u64,
        /// The checkpoint this provider computed.
        result: Hash32,
        /// How many blobs it aggregated.
        blobs: usize,
        /// Seconds the aggregation itself took (the rest since `Trained` was spent
        /// gathering blobs and on the chain).
        aggregate_secs: f32,
    },
    /// The round is finalized on chain and its checkpoint is this provider's new base.
    Finalized {
        /// The chain round.
        round: u64,
        /// The finalized checkpoint.
        checkpoint: Hash32,
        /// Whether it is the one this provider computed.
        agreed: bool,
    },
}

/// How the loop waits.
#[derive(Clone, Debug)]
pub struct ProviderOptions {
    /// How long to wait for every active provider's blob once this provider's own is
    /// served; a peer later than this is left out of the round.
    pub gather_timeout: Duration,
    /// Pause between two looks at the chain or the peers while waiting.
    pub poll: Duration,
    /// How many times to ask the peers for a checkpoint before giving up.
    pub fetch_attempts: u32,
    /// Test hook: stop dead at this point of this round.
    pub crash_at: Option<(u64, CrashPoint)>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        Self {
            gather_timeout: Duration::from_secs(120),
            poll: Duration::from_millis(500),
            fetch_attempts: 10,
            crash_at: None,
        }
    }
}

/// One provider of one run: its spec, chain, peers, state directory and model.
pub struct Provider<C: RunChain, P: Peers> {
    spec: RunSpec,
    chain: C,
    peers: P,
    terms: RunTerms,
    key: ReceiptKey,
    key_path: PathBuf,
    dir: StateDir,
    corpus: Arc<Corpus>,
    model: Gpt,
    worker: WorkerState,
    state: ProviderState,
    /// The last checkpoint loaded as a base, by hash.
    base: Option<(Hash32, Checkpoint)>,
    /// When gathering of a round gives up waiting (not persisted: a restart waits anew).
    gather_deadline: Option<(u64, Instant)>,
    /// The round whose receipt this process has (re)posted.
    posted: Option<u64>,
    /// The round whose blob this process has served to the peers.
    served: Option<u64>,
    options: ProviderOptions,
}

impl<C: RunChain, P: Peers> Provider<C, P> {
    /// Opens the provider whose key and state live in `dir` (`--state`): checks the spec
    /// against the chain and the key against the registration, then resumes the
    /// committed state (or starts from the run's initial checkpoint).
    pub fn open(
        dir: &Path,
        spec: RunSpec,
        chain: C,
        peers: P,
        corpus: Arc<Corpus>,
        device: &Device,
        options: ProviderOptions,
    ) -> Result<Self, ProviderError> {
        let terms = chain.terms()?;
        check_terms(&spec, &terms)?;
        if corpus.hash() != terms.dataset_hash {
            return Err(ProviderError::Terms(format!(
                "the dataset given hashes to {}, the run trains on dataset_hash {}: \
                 pass the run's dataset file (--data)",
                corpus.hash(),
                terms.dataset_hash
            )));
        }
        let key_path = dir.join(KEY_FILE);
        let key = ReceiptKey::load(&key_path)?;
        let providers = chain.providers()?;
        let me = providers
            .iter()
            .find(|p| p.account == key.account())
            .ok_or_else(|| ProviderError::NotRegistered {
                account: key.account().to_string(),
                run: terms.run.clone(),
            })?;
        if me.signing_key != key.public_key() {
            return Err(ProviderError::KeyMismatch {
                account: me.account.clone(),
                registered: me.signing_key.clone(),
                local: key.public_key(),
                path: key_path,
            });
        }
        let state_dir = StateDir::open(dir)?;
        let state = match state_dir.load()? {
            Some(s) if s.spec_hash != spec.hash() || s.account != key.account() => {
                return Err(ProviderError::ForeignState {
                    path: state_dir.root().to_path_buf(),
                    what: format!("{} on a run with spec {}", s.account, s.spec_hash),
                });
            }
            Some(s) => s,
            None => {
                let initial = chain.checkpoint(0)?.ok_or_else(|| {
                    ChainError::Invalid("the run has no initial checkpoint (round 0)".into())
                })?;
                let s = ProviderState {
                    spec_hash: spec.hash(),
                    account: key.account().to_string(),
                    base: BaseRef {
                        round: 0,
                        hash: initial.hash,
                    },
                    adamw: None,
                    feedback: None,
                    phase: Phase::Ready,
                };
                state_dir.commit(&s)?;
                s
            }
        };
        let model = Gpt::new(spec.config().model, spec.init_seed(), device)?;
        let params = spec.config().model.param_count();
        let worker = load_worker(&state_dir, &state, device, params)?;
        tracing::info!(account = key.account(), base_round = state.base.round, phase = ?state.phase, "provider opened");
        Ok(Self {
            spec,
            chain,
            peers,
            terms,
            key,
            key_path,
            dir: state_dir,
            corpus,
            model,
            worker,
            state,
            base: None,
            gather_deadline: None,
            posted: None,
            served: None,
            options,
        })
    }

    /// The committed state.
    pub fn state(&self) -> &ProviderState {
        &self.state
    }

    /// The run spec.
    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    /// The provider's state directory (`DIR/provider`).
    pub fn state_dir(&self) -> &Path {
        self.dir.root()
    }

    /// The signing key's file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Steps until the chain has finalized round `last_round` and this provider holds
    /// its checkpoint, or `stop` says so. Waits (`poll`) while there is nothing to do and
    /// while the chain or the peers are unreachable; `on_progress` sees every step that
    /// did something.
    pub fn run_until(
        &mut self,
        last_round: u64,
        stop: &dyn Fn() -> bool,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), ProviderError> {
        while self.state.base.round < last_round && !stop() {
            match self.step() {
                Ok(Progress::Waiting(why)) => {
                    tracing::debug!(%why, "waiting");
                    std::thread::sleep(self.options.poll);
                }
                Ok(p) => on_progress(&p),
                Err(ProviderError::Chain(ChainError::Unavailable(e))) => {
                    tracing::warn!(%e, "chain unreachable; retrying");
                    std::thread::sleep(self.options.poll);
                }
                Err(ProviderError::Peers(PeersError::Unavailable(e))) => {
                    tracing::warn!(%e, "peers unreachable; retrying");
                    std::thread::sleep(self.options.poll);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stops dead if a test asked for it here.
    fn crash_point(&self, round: u64, point: CrashPoint) -> Result<(), ProviderError> {
        match self.options.crash_at {
            Some((r, p)) if r == round && p == point => Err(ProviderError::Crashed(point)),
            _ => Ok(()),
        }
    }
}

/// Refuses to train unless the spec is the run's.
fn check_terms(spec: &RunSpec, terms: &RunTerms) -> Result<(), ProviderError> {
    if spec.hash() != terms.spec_hash {
        return Err(ProviderError::SpecMismatch {
            run: terms.run.clone(),
            local: spec.hash(),
            chain: terms.spec_hash,
        });
    }
    let fields = spec.fields();
    if fields.run_id != terms.run {
        return Err(ProviderError::Terms(format!(
            "the spec is for run {}, the chain's run is {}",
            fields.run_id, terms.run
        )));
    }
    if fields.inner_steps != terms.inner_steps {
        return Err(ProviderError::Terms(format!(
            "the spec trains {} inner steps a round, the contract requires {}",
            fields.inner_steps, terms.inner_steps
        )));
    }
    if spec.tokens_per_round() > terms.max_tokens_per_round {
        return Err(ProviderError::Terms(format!(
            "a round trains {} tokens, the contract accepts at most {}",
            spec.tokens_per_round(),
            terms.max_tokens_per_round
        )));
    }
    Ok(())
}

/// The worker state (inner AdamW moments, error-feedback residual) `state` names.
fn load_worker(
    dir: &StateDir,
    state: &ProviderState,
    device: &Device,
    params: usize,
) -> Result<WorkerState, ProviderError> {
    Ok(WorkerState {
        adamw: match &state.adamw {
            Some(name) => Some(dir.load_adamw(name, device)?),
            None => None,
        },
        feedback: match &state.feedback {
            Some(name) => ErrorFeedback::from_residual(dir.load_feedback(name)?),
            None => ErrorFeedback::new(params),
        },
    })
}
