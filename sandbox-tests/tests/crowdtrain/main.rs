//! The crowdtrain scenarios on the real contract wasm (`make contracts`); each
//! skips with a printed reason when the wasm is missing. One test binary.

#[path = "../common/mod.rs"]
mod common;

mod claim_restore;
mod funding;
mod gas;
mod lifecycle;
mod rejections;
mod rollback;
mod scale;
mod shares;
mod smoke;
