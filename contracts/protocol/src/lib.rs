//! The types and hashes the crowdtrain run contract and the agent must agree on
//! byte for byte: the progress [`Receipt`], the message a provider signs, and the
//! digest of a round's blob set.
//!
//! Plain Rust, borsh and sha2 only, so it builds for wasm32 (inside the contract)
//! and natively (inside the agent) from the same source. `tests/vectors.rs` pins
//! the bytes: if either side changes an encoding, that test fails first.
#![no_std]
extern crate alloc;

mod hash;
mod receipt;

pub use hash::{Hash32, HashParseError, sha256};
pub use receipt::{BLOB_SET_TAG, RECEIPT_TAG, Receipt, blob_set_digest};
