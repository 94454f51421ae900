//! One provider's side of a run. The round loop lands next to this seam:
//! [`chain::RunChain`] is what a provider's round needs from the run contract.

pub mod chain;

pub use chain::{ChainCheckpoint, ChainError, OpenRound, ProviderInfo, RunChain, RunTerms};
