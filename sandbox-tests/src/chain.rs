//! The chain: blocks that advance, transactions executed to completion receipt by
//! receipt (one block per wave of receipts, as cross-contract calls land one block
//! later on NEAR), outcomes kept for `tx` lookups, and state saved after each step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use near_crypto::PublicKey;
use near_parameters::{RuntimeConfig, RuntimeConfigStore};
use near_primitives::account::{AccessKey, Account, AccountContract};
use near_primitives::errors::InvalidTxError;
use near_primitives::hash::{CryptoHash, hash};
use near_primitives::transaction::SignedTransaction;
use near_primitives::types::{AccountId, Balance};
use near_primitives::version::PROTOCOL_VERSION;
use near_primitives::views::{
    ExecutionOutcomeWithIdView, ExecutionStatusView, FinalExecutionOutcomeView,
};
use near_vm_runner::logic::types::PromiseResult;
use serde::{Deserialize, Serialize};

use crate::actions::BlockContext;
use crate::outcome::{final_status, outcome_view};
use crate::receipt::ActionReceipt;
use crate::runtime::apply_receipt;
use crate::state::State;
use crate::tx::verify_and_charge;
use crate::vm::Vm;

/// Gas price in yocto per gas: the minimum of localnet and sandbox genesis configs.
pub const GAS_PRICE: u128 = 100_000_000;
/// Nanoseconds a block stands for when the clock is fast-forwarded.
pub const BLOCK_TIME_NS: u64 = 1_000_000_000;

/// How to start a chain.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Chain id reported by `status` and `env::chain_id`.
    pub chain_id: String,
    /// The root account (also the registrar that may create short top-level names).
    pub root: AccountId,
    /// Full-access key of the root account.
    pub root_key: PublicKey,
    /// Initial root balance in yocto.
    pub root_balance: u128,
    /// Directory to persist state in; `None` keeps everything in memory.
    pub home: Option<PathBuf>,
}

/// A block header, all this chain needs to answer `block` and check tx block hashes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Block {
    /// Height.
    pub height: u64,
    /// Hash (derived from height, parent and time).
    pub hash: CryptoHash,
    /// Parent hash.
    pub prev_hash: CryptoHash,
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
}

/// What survives a restart besides the state.
#[derive(Serialize, Deserialize)]
struct Meta {
    genesis_hash: CryptoHash,
    head: Block,
    clock_offset_ns: u64,
}

/// Outcomes are appended one JSON line per transaction, so saving stays O(1) in
/// the number of transactions.
const OUTCOMES_FILE: &str = "outcomes.jsonl";

/// A one-node chain.
pub struct Chain {
    pub(crate) vm: Vm,
    pub(crate) state: State,
    pub(crate) config: ChainConfig,
    blocks: Vec<Block>,
    by_hash: HashMap<CryptoHash, usize>,
    outcomes: HashMap<CryptoHash, FinalExecutionOutcomeView>,
    clock_offset_ns: u64,
    genesis_hash: CryptoHash,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The protocol config the chain runs: the real one for the current protocol
/// version, with `root` as the registrar (as the sandbox's root can create
/// top-level accounts).
pub fn runtime_config(root: &AccountId) -> Arc<RuntimeConfig> {
    let mut config =
        RuntimeConfig::clone(RuntimeConfigStore::new(None).get_config(PROTOCOL_VERSION));
    config.account_creation_config.registrar_account_id = root.clone();
    Arc::new(config)
}

impl Chain {
    /// Opens the chain in `config.home` if it holds one, else creates genesis.
    pub fn open(config: ChainConfig) -> std::io::Result<Chain> {
        let vm = Vm::new(runtime_config(&config.root), config.chain_id.clone());
        if let Some(home) = &config.home {
            let (state_path, meta_path) = (home.join("state.borsh"), home.join("chain.json"));
            if state_path.exists() && meta_path.exists() {
                let state = State::load(&state_path)?;
                let meta: Meta = serde_json::from_slice(&std::fs::read(&meta_path)?)?;
                let lines = std::fs::read_to_string(home.join(OUTCOMES_FILE)).unwrap_or_default();
                let mut chain =
                    Chain::empty(vm, state, config, meta.genesis_hash, meta.clock_offset_ns);
                chain.push_block(meta.head);
                // A line cut short by a crash is skipped, not fatal.
                chain.outcomes = lines
                    .lines()
                    .filter_map(|l| serde_json::from_str::<FinalExecutionOutcomeView>(l).ok())
                    .map(|o| (o.transaction_outcome.id, o))
                    .collect();
                return Ok(chain);
            }
            std::fs::create_dir_all(home)?;
        }
        let mut state = State::default();
        let usage = &vm.config().fees.storage_usage_config;
        let key = AccessKey::full_access();
        let key_bytes = config.root_key.len() as u64
            + borsh::object_length(&key).unwrap_or(0) as u64
            + usage.num_extra_bytes_record;
        let root = Account::new(
            Balance::from_yoctonear(config.root_balance),
            Balance::ZERO,
            AccountContract::None,
            usage.num_bytes_account + key_bytes,
        );
        state.set_account(config.root.clone(), root);
        state.set_access_key(&config.root, config.root_key.clone(), key);
        let genesis = Block {
            height: 1,
            hash: hash(b"crowdtrain-localnet genesis"),
            prev_hash: CryptoHash::default(),
            timestamp_ns: now_ns(),
        };
        let mut chain = Chain::empty(vm, state, config, genesis.hash, 0);
        chain.push_block(genesis);
        chain.persist()?;
        Ok(chain)
    }

    fn empty(
        vm: Vm,
        state: State,
        config: ChainConfig,
        genesis_hash: CryptoHash,
        clock_offset_ns: u64,
    ) -> Chain {
        Chain {
            vm,
            state,
            config,
            blocks: Vec::new(),
            by_hash: HashMap::new(),
            outcomes: HashMap::new(),
            clock_offset_ns,
            genesis_hash,
        }
    }

    fn push_block(&mut self, block: Block) {
        self.by_hash.insert(block.hash, self.blocks.len());
        self.blocks.push(block);
    }

    /// The latest block.
    pub fn head(&self) -> &Block {
        self.blocks.last().expect("genesis exists")
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> CryptoHash {
        self.genesis_hash
    }

    /// A block by height (only blocks produced since this process started, plus the head).
    pub fn block_at(&self, height: u64) -> Option<&Block> {
        self.blocks.iter().rev().find(|b| b.height == height)
    }

    /// A block by hash.
    pub fn block_by_hash(&self, hash: &CryptoHash) -> Option<&Block> {
        self.by_hash.get(hash).map(|i| &self.blocks[*i])
    }

    /// The chain's configuration.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// Produces the next block `delta` heights above the head.
    pub(crate) fn produce_block(&mut self, delta: u64) -> BlockContext {
        let head = self.head().clone();
        let timestamp_ns = (now_ns() + self.clock_offset_ns).max(head.timestamp_ns + 1);
        let height = head.height + delta;
        let mut seed = head.hash.as_ref().to_vec();
        seed.extend_from_slice(&height.to_le_bytes());
        seed.extend_from_slice(&timestamp_ns.to_le_bytes());
        let hash = hash(&seed);
        self.push_block(Block {
            height,
            hash,
            prev_hash: head.hash,
            timestamp_ns,
        });
        BlockContext {
            height,
            timestamp_ns,
            random_seed: hash.as_ref().to_vec(),
        }
    }

    /// Moves height by `delta` and the clock by `delta` block times (`sandbox_fast_forward`).
    pub fn fast_forward(&mut self, delta: u64) -> std::io::Result<()> {
        self.clock_offset_ns += delta.saturating_mul(BLOCK_TIME_NS);
        self.produce_block(delta.max(1));
        self.persist()
    }

    /// The stored outcome of a transaction.
    pub fn outcome(&self, tx_hash: &CryptoHash) -> Option<&FinalExecutionOutcomeView> {
        self.outcomes.get(tx_hash)
    }

    /// Validates and executes `tx` and every receipt it causes. `Err` means the
    /// transaction was rejected and nothing changed.
    pub fn process_transaction(
        &mut self,
        tx: SignedTransaction,
    ) -> Result<FinalExecutionOutcomeView, InvalidTxError> {
        let tx_hash = tx.get_hash();
        if let Some(done) = self.outcomes.get(&tx_hash) {
            return Ok(done.clone());
        }
        if !self.by_hash.contains_key(tx.transaction.block_hash()) {
            return Err(InvalidTxError::Expired);
        }
        let height = self.head().height + 1;
        let mut state = self.state.clone();
        let converted = verify_and_charge(&self.vm, &mut state, &tx, height, GAS_PRICE)?;
        self.state = state;
        let block = self.produce_block(1);
        let block_hash = self.head().hash;
        let tx_gas = converted.gas_burnt;
        let first_id = converted.receipt.id;
        let transaction_outcome = outcome_view(
            tx_hash,
            block_hash,
            tx.transaction.signer_id().clone(),
            Vec::new(),
            vec![first_id],
            tx_gas,
            ExecutionStatusView::SuccessReceiptId(first_id),
        );
        let receipts_outcome = self.run_receipts(converted.receipt, block);
        let status = final_status(first_id, &receipts_outcome);
        let view = FinalExecutionOutcomeView {
            status,
            transaction: tx.into(),
            transaction_outcome,
            receipts_outcome,
        };
        self.outcomes.insert(tx_hash, view.clone());
        if let Err(e) = self.append_outcome(&view).and_then(|()| self.persist()) {
            tracing::error!("could not persist chain state: {e}");
        }
        Ok(view)
    }

    fn run_receipts(
        &mut self,
        first: ActionReceipt,
        mut block: BlockContext,
    ) -> Vec<ExecutionOutcomeWithIdView> {
        let mut views = Vec::new();
        let mut ready = vec![first];
        let mut waiting: Vec<ActionReceipt> = Vec::new();
        let mut data: HashMap<CryptoHash, Option<Vec<u8>>> = HashMap::new();
        while !ready.is_empty() {
            let block_hash = self.head().hash;
            let mut created = Vec::new();
            for r in ready {
                let results = r
                    .input_data_ids
                    .iter()
                    .map(|id| match data.remove(id).flatten() {
                        Some(v) => PromiseResult::Successful(v.into()),
                        None => PromiseResult::Failed,
                    })
                    .collect();
                let out = apply_receipt(&self.vm, &mut self.state, &r, results, &block, GAS_PRICE);
                views.push(outcome_view(
                    r.id,
                    block_hash,
                    r.receiver_id.clone(),
                    out.logs,
                    out.new_receipts.iter().map(|n| n.id).collect(),
                    out.gas_burnt,
                    out.status,
                ));
                for (receiver, value) in out.outgoing_data {
                    data.insert(receiver.data_id, value);
                }
                created.extend(out.new_receipts);
            }
            waiting.extend(created);
            let (now, later): (Vec<_>, Vec<_>) = waiting
                .into_iter()
                .partition(|r| r.input_data_ids.iter().all(|id| data.contains_key(id)));
            ready = now;
            waiting = later;
            if !ready.is_empty() {
                block = self.produce_block(1);
            }
        }
        if !waiting.is_empty() {
            tracing::warn!("{} receipts wait for data that never came", waiting.len());
        }
        views
    }

    fn append_outcome(&self, outcome: &FinalExecutionOutcomeView) -> std::io::Result<()> {
        use std::io::Write;
        let Some(home) = &self.config.home else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(outcome)?;
        line.push(b'\n');
        let path = home.join(OUTCOMES_FILE);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?
            .write_all(&line)
    }

    /// Saves state and chain metadata to the home directory, if there is one.
    pub fn persist(&self) -> std::io::Result<()> {
        let Some(home) = &self.config.home else {
            return Ok(());
        };
        self.state.save(&home.join("state.borsh"))?;
        let meta = Meta {
            genesis_hash: self.genesis_hash,
            head: self.head().clone(),
            clock_offset_ns: self.clock_offset_ns,
        };
        let tmp = home.join("chain.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&meta)?)?;
        std::fs::rename(tmp, home.join("chain.json"))
    }
}
