//! [`RunChain`] over JSON-RPC: the provider loop's blocking view of the run,
//! answered by [`RunClient`] on a runtime of its own. Receipts and finalizations
//! go through the durable outbox, so "queued" is already a success for the loop.

use super::client::RunClient;
use super::run_contract::{self as rc, ProviderStatus};
use crate::provider::chain::{
    ChainCheckpoint as SeamCheckpoint, ChainError as SeamError, OpenRound, ProviderInfo, RunChain,
    RunTerms,
};
use crowdtrain_protocol::{Hash32, Receipt};

/// A [`RunClient`] usable from the provider's (synchronous) loop.
pub struct BlockingRunChain {
    client: RunClient,
    rt: tokio::runtime::Runtime,
}

impl BlockingRunChain {
    /// Wraps a client that has a signer (see [`RunClient::with_signer`]).
    pub fn new(client: RunClient) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Self { client, rt })
    }

    /// The client inside.
    pub fn client(&self) -> &RunClient {
        &self.client
    }

    fn block<T>(
        &self,
        f: impl std::future::Future<Output = super::Result<T>>,
    ) -> Result<T, SeamError> {
        self.rt.block_on(f).map_err(seam_error)
    }
}

/// The seam's three kinds of failure.
fn seam_error(e: super::ChainError) -> SeamError {
    use super::ChainError as E;
    match e {
        E::Unreachable { .. } | E::Queued { .. } => SeamError::Unavailable(e.to_string()),
        E::ContractPanic { message, .. } => SeamError::Rejected(message),
        E::Rejected { .. } => SeamError::Rejected(e.to_string()),
        E::BadView { .. } => SeamError::Invalid(e.to_string()),
        other => SeamError::Invalid(other.to_string()),
    }
}

fn checkpoint(c: rc::ChainCheckpoint) -> SeamCheckpoint {
    SeamCheckpoint {
        round: c.round,
        hash: c.hash,
        uri: c.uri,
        finalized_at_ms: c.finalized_at_ms,
    }
}

impl RunChain for BlockingRunChain {
    fn terms(&self) -> Result<RunTerms, SeamError> {
        let info = self.block(self.client.run_info())?;
        Ok(RunTerms {
            run: self.client.run().to_string(),
            spec_hash: info.config.model_spec_hash,
            quorum: info.config.quorum,
            inner_steps: info.config.inner_steps,
            max_tokens_per_round: info.config.max_tokens_per_round.0,
            dataset_hash: info.config.dataset_hash,
        })
    }

    fn open_round(&self) -> Result<OpenRound, SeamError> {
        let info = self.block(self.client.run_info())?;
        if info.paused {
            return Err(SeamError::Rejected(
                "the run is paused by its owner; try again later".into(),
            ));
        }
        if info.phase != "Funded" {
            return Err(SeamError::Rejected(format!(
                "rounds open once the funding goal is reached (funding is {})",
                info.phase
            )));
        }
        Ok(OpenRound {
            round: info.open_round(),
            base: checkpoint(info.checkpoint),
        })
    }

    fn checkpoint(&self, round: u64) -> Result<Option<SeamCheckpoint>, SeamError> {
        Ok(self.block(self.client.checkpoint(round))?.map(checkpoint))
    }

    fn providers(&self) -> Result<Vec<ProviderInfo>, SeamError> {
        Ok(self
            .block(self.client.providers())?
            .into_iter()
            .map(ProviderInfo::from)
            .collect())
    }

    fn receipts(&self, round: u64) -> Result<Vec<Receipt>, SeamError> {
        Ok(self
            .block(self.client.receipts(round))?
            .into_iter()
            .map(|r| r.receipt)
            .collect())
    }

    fn post_receipt(&self, receipt: &Receipt, signature: &[u8; 64]) -> Result<(), SeamError> {
        match self
            .rt
            .block_on(self.client.post_receipt(receipt, signature))
        {
            Ok(_) => Ok(()),
            // Durably queued: the next drain sends it, once.
            Err(super::ChainError::Queued { .. }) => Ok(()),
            Err(super::ChainError::ContractPanic { message, .. })
                if rc::is_duplicate_receipt(&message) =>
            {
                Ok(())
            }
            Err(e) => Err(seam_error(e)),
        }
    }

    fn finalize_round(
        &self,
        round: u64,
        blob_hashes: &[Hash32],
        result: Hash32,
    ) -> Result<(), SeamError> {
        match self
            .rt
            .block_on(self.client.finalize_round(round, blob_hashes, result))
        {
            Ok(_) => Ok(()),
            Err(super::ChainError::Queued { .. }) => Ok(()),
            Err(super::ChainError::ContractPanic { message, .. }) if rc::is_not_open(&message) => {
                // Someone finalized it first: success, if it is finalized.
                match self.block(self.client.checkpoint(round))? {
                    Some(_) => Ok(()),
                    None => Err(SeamError::Rejected(message)),
                }
            }
            Err(e) => Err(seam_error(e)),
        }
    }
}

/// The contract's provider record as the provider loop and the swarm see it.
impl From<rc::ProviderInfo> for ProviderInfo {
    fn from(p: rc::ProviderInfo) -> Self {
        ProviderInfo {
            active: p.status == ProviderStatus::Active,
            account: p.account_id,
            index: p.index,
            signing_key: p.signing_key,
            node_id: p.node_id,
        }
    }
}
