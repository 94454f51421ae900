//! The `crowdtrain` binary as separate processes against the `crowdtrain-localnet`
//! binary on a loopback port: what a person with a NEAR account does from a
//! terminal. near-workspaces plays only the parties the agent does not (the factory
//! and the run's creator, a revenue payer). Needs `target/contracts/*.wasm` (`make
//! contracts`; skipped with a printed reason otherwise) and the `crowdtrain`
//! binary (`cargo test --workspace --all-targets` builds it first).

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod join;
mod journey;
mod outbox;
mod replay;
mod support;
mod swarm;
