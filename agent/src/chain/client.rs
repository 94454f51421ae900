//! `RunClient`: one account's view of one run. Views read the final state; calls
//! go through the durable outbox and come back with the chain's final outcome (a
//! contract panic as the contract's own message).

use super::outbox::{Call, Outbox};
use super::rpc::{Rpc, into_error, view_patiently, with_patience};
use super::run_contract::{self as rc, gas, method};
use super::sender::{Drained, Landed, RetryPolicy, Sender};
use super::{
    AccountKey, ChainCheckpoint, ChainError, FundingStatus, Pending, ProviderInfo, Result, RunInfo,
};
use crowdtrain_protocol::{Hash32, Receipt};
use near_primitives::types::AccountId;
use serde::de::DeserializeOwned;

/// The open round and the checkpoint it trains from.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenRound {
    /// The round being trained (last finalized + 1).
    pub round: u64,
    /// The last finalized checkpoint.
    pub base: ChainCheckpoint,
}

/// One account's client for one run contract.
pub struct RunClient {
    rpc: Rpc,
    run: AccountId,
    account: AccountId,
    policy: RetryPolicy,
    sender: Option<Sender>,
}

impl RunClient {
    /// A read-only client (views only) for `run`, as `account`.
    pub fn new(endpoint: &str, run: AccountId, account: AccountId, policy: RetryPolicy) -> Self {
        Self {
            rpc: Rpc::new(endpoint),
            run,
            account,
            policy,
            sender: None,
        }
    }

    /// Adds the account's key and the outbox its calls go through.
    pub fn with_signer(mut self, key: AccountKey, outbox: Outbox) -> Self {
        self.sender = Some(Sender::new(self.rpc.clone(), outbox, key, self.policy));
        self
    }

    /// The run contract's account.
    pub fn run(&self) -> &AccountId {
        &self.run
    }

    /// The account calls are signed as.
    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        self.rpc.endpoint()
    }

    async fn view<T: DeserializeOwned>(&self, name: &str, args: Vec<u8>) -> Result<T> {
        self.view_of(&self.run, name, args).await
    }

    /// View `name` of another contract (the factory, say) on the final state.
    pub async fn view_of<T: DeserializeOwned>(
        &self,
        contract: &AccountId,
        name: &str,
        args: Vec<u8>,
    ) -> Result<T> {
        let bytes = view_patiently(&self.rpc, self.policy.patience, contract, name, args).await?;
        serde_json::from_slice(&bytes).map_err(|e| ChainError::BadView {
            contract: contract.to_string(),
            method: name.to_string(),
            reason: e.to_string(),
        })
    }

    /// The run at a glance.
    pub async fn run_info(&self) -> Result<RunInfo> {
        self.view(method::RUN_INFO, rc::args(serde_json::json!({})))
            .await
    }

    /// Funding phase and amounts.
    pub async fn funding_status(&self) -> Result<FundingStatus> {
        self.view(method::FUNDING_STATUS, rc::args(serde_json::json!({})))
            .await
    }

    /// Every registered provider, in registration order.
    pub async fn providers(&self) -> Result<Vec<ProviderInfo>> {
        const PAGE: u32 = 100;
        let mut all = Vec::new();
        loop {
            let page: Vec<ProviderInfo> = self
                .view(
                    method::PROVIDERS,
                    rc::providers_args(all.len() as u32, PAGE),
                )
                .await?;
            let done = page.len() < PAGE as usize;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// `account`'s provider record, if it has one.
    pub async fn provider(&self, account: &AccountId) -> Result<Option<ProviderInfo>> {
        Ok(self
            .providers()
            .await?
            .into_iter()
            .find(|p| p.account_id == account.as_str()))
    }

    /// The open round and its base checkpoint.
    pub async fn open_round(&self) -> Result<OpenRound> {
        let info = self.run_info().await?;
        Ok(OpenRound {
            round: info.open_round(),
            base: info.checkpoint,
        })
    }

    /// The checkpoint finalized by `round` (0 = initial), if any.
    pub async fn checkpoint(&self, round: u64) -> Result<Option<ChainCheckpoint>> {
        self.view(method::CHECKPOINT, rc::round_args(round)).await
    }

    /// The receipts posted for `round`.
    pub async fn receipts(&self, round: u64) -> Result<Vec<rc::StoredReceipt>> {
        self.view(method::RECEIPTS, rc::round_args(round)).await
    }

    /// The `round(round)` view as JSON (null if nothing was posted); read it with
    /// [`rc::round_is_finalized`] and [`rc::credit_of`].
    pub async fn round_view(&self, round: u64) -> Result<serde_json::Value> {
        self.view(method::ROUND, rc::round_args(round)).await
    }

    /// What `account` can claim now.
    pub async fn pending(&self, account: &AccountId) -> Result<Pending> {
        self.view(method::PENDING, rc::account_args(account.as_str()))
            .await
    }

    /// `account`'s shares of the run.
    pub async fn shares(&self, account: &AccountId) -> Result<u128> {
        let s: rc::Yocto = self
            .view(method::FT_BALANCE_OF, rc::account_args(account.as_str()))
            .await?;
        Ok(s.0)
    }

    /// `account`'s NEAR balance (yocto).
    pub async fn balance(&self, account: &AccountId) -> Result<u128> {
        with_patience(self.policy.patience, || self.rpc.balance(account))
            .await
            .map_err(|(f, _)| into_error(&self.rpc, f))
    }

    fn sender(&self) -> &Sender {
        self.sender
            .as_ref()
            .expect("RunClient::with_signer before any call")
    }

    /// The calls still queued in the outbox.
    pub fn queued(&self) -> Result<Vec<super::OutboxEntry>> {
        self.sender().outbox().entries()
    }

    /// The outbox folder.
    pub fn queued_dir(&self) -> std::path::PathBuf {
        self.sender().outbox().dir().to_path_buf()
    }

    /// Sends whatever earlier runs left in the outbox.
    pub async fn drain(&self) -> Result<Drained> {
        self.sender().drain().await
    }

    fn call(&self, name: &str, args: Vec<u8>, deposit: u128, gas: u64, label: String) -> Call {
        Call {
            signer: self.account.clone(),
            receiver: self.run.clone(),
            method: name.to_string(),
            args,
            deposit,
            gas,
            label,
        }
    }

    /// Queues `call` and sends the queue until it lands: its final outcome, or the
    /// contract's refusal as [`ChainError::ContractPanic`], or
    /// [`ChainError::Queued`] when the endpoint is down (it stays queued).
    pub async fn submit(&self, call: Call) -> Result<Landed> {
        let sender = self.sender();
        let entry = sender.queue(call)?;
        let drained = sender.drain().await?;
        if let Some(landed) = drained.landed.into_iter().find(|l| l.seq == entry.seq) {
            return match &landed.outcome.result {
                Ok(_) => Ok(landed),
                Err(message) => Err(ChainError::ContractPanic {
                    contract: landed.call.receiver.to_string(),
                    method: landed.call.method.clone(),
                    message: message.clone(),
                }),
            };
        }
        if let Some((_, label, reason)) = drained.rejected.into_iter().find(|r| r.0 == entry.seq) {
            return Err(ChainError::Rejected { label, reason });
        }
        Err(ChainError::Queued {
            label: entry.call.label,
            endpoint: self.rpc.endpoint().to_string(),
            outbox: sender.outbox().dir().to_path_buf(),
            reason: drained
                .stalled
                .unwrap_or_else(|| "an earlier call is still queued".into()),
        })
    }

    /// Queues `call` without sending it (used when the endpoint is known to be down).
    pub fn enqueue(&self, call: Call) -> Result<super::OutboxEntry> {
        self.sender().queue(call)
    }

    /// `deposit`: funds the run with `amount` yoctoNEAR.
    pub fn deposit_call(&self, amount: u128) -> Call {
        let label = format!("fund {}", super::near_amount::format_near(amount));
        self.call(
            method::DEPOSIT,
            rc::args(serde_json::json!({})),
            amount,
            gas::DEPOSIT,
            label,
        )
    }

    /// `register_provider` with `attach` yoctoNEAR (bond + storage; the excess comes back).
    pub fn register_call(&self, signing_key: &str, node_id: &str, attach: u128) -> Call {
        self.call(
            method::REGISTER_PROVIDER,
            rc::register_args(signing_key, node_id),
            attach,
            gas::REGISTER,
            format!("register as provider (node {node_id})"),
        )
    }

    /// `exit_provider`.
    pub fn exit_call(&self) -> Call {
        self.call(
            method::EXIT_PROVIDER,
            rc::args(serde_json::json!({})),
            gas::EXIT_DEPOSIT,
            gas::EXIT,
            "exit as provider".into(),
        )
    }

    /// `settle_round`: pays a finalized round's credits once its challenge window has
    /// passed (anyone may call it; `limit` receipts a call).
    pub fn settle_call(&self, round: u64, limit: Option<u32>) -> Call {
        self.call(
            method::SETTLE_ROUND,
            rc::args(serde_json::json!({"round": round, "limit": limit})),
            0,
            gas::SETTLE,
            format!("settle round {round}"),
        )
    }

    /// `pay_revenue`: `amount` yoctoNEAR of revenue, split over every share.
    pub fn pay_revenue_call(&self, amount: u128) -> Call {
        self.call(
            method::PAY_REVENUE,
            rc::args(serde_json::json!({})),
            amount,
            gas::PAY_REVENUE,
            format!("pay revenue {}", super::near_amount::format_near(amount)),
        )
    }

    /// `create_run` on `factory`: creates `<name>.<factory>` with `config`, attaching
    /// the factory's `create_run_cost` (the excess comes back).
    pub fn create_run_call(
        &self,
        factory: &AccountId,
        name: &str,
        config: serde_json::Value,
        deposit: u128,
    ) -> Call {
        Call {
            signer: self.account.clone(),
            receiver: factory.clone(),
            method: method::CREATE_RUN.to_string(),
            args: rc::args(serde_json::json!({"name": name, "config": config})),
            deposit,
            gas: gas::CREATE_RUN,
            label: format!("create run {name}.{factory}"),
        }
    }

    /// `dispute`: as one of the run's auditors, void `provider`'s receipt of finalized
    /// `round` inside its challenge window, `reason` (at most 512 bytes) saying why.
    pub fn dispute_call(&self, round: u64, provider: &str, reason: &str) -> Call {
        self.call(
            method::DISPUTE,
            rc::args(serde_json::json!({"round": round, "provider": provider, "reason": reason})),
            0,
            gas::DISPUTE,
            format!("dispute {provider}'s receipt of round {round}"),
        )
    }

    /// `claim`.
    pub fn claim_call(&self) -> Call {
        self.call(
            method::CLAIM,
            rc::args(serde_json::json!({})),
            0,
            gas::CLAIM,
            "claim".into(),
        )
    }

    /// `submit_receipt`: the signed receipt, relayed by this account.
    pub async fn post_receipt(&self, receipt: &Receipt, signature: &[u8; 64]) -> Result<Landed> {
        let call = self.call(
            method::SUBMIT_RECEIPT,
            rc::receipt_args(receipt, signature),
            0,
            gas::RECEIPT,
            format!("receipt round {}", receipt.round),
        );
        self.submit(call).await
    }

    /// `finalize_round` on `result` with these blob hashes.
    pub async fn finalize_round(
        &self,
        round: u64,
        blob_hashes: &[Hash32],
        result: Hash32,
    ) -> Result<Landed> {
        let call = self.call(
            method::FINALIZE_ROUND,
            rc::finalize_args(round, blob_hashes, result),
            0,
            gas::FINALIZE,
            format!("finalize round {round}"),
        );
        self.submit(call).await
    }
}
