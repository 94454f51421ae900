//! Owner controls: pause switch and the auditor list.

use crate::RunExt;
use crate::config::MAX_AUDITORS;
use crate::{Run, events};
use near_sdk::serde_json::json;
use near_sdk::{AccountId, env, near, require};

impl Run {
    fn assert_owner(&self) {
        require!(
            env::predecessor_account_id() == self.config.owner,
            "only the run's owner may do this"
        );
    }
}

#[near]
impl Run {
    /// Stops deposits, provider registration, receipts, finalization and settlement.
    /// Claims, refunds, revenue payments and share transfers keep working.
    pub fn pause(&mut self) {
        self.assert_owner();
        require!(!self.paused, "the run is already paused");
        self.paused = true;
        events::emit("paused", json!({ "by": env::predecessor_account_id() }));
    }

    /// Lifts `pause`.
    pub fn unpause(&mut self) {
        self.assert_owner();
        require!(self.paused, "the run is not paused");
        self.paused = false;
        events::emit("unpaused", json!({ "by": env::predecessor_account_id() }));
    }

    /// Replaces the accounts allowed to dispute receipts.
    pub fn set_auditors(&mut self, auditors: Vec<AccountId>) {
        self.assert_owner();
        require!(
            auditors.len() <= MAX_AUDITORS,
            "at most 32 auditors may be named"
        );
        self.config.auditors = auditors.clone();
        events::emit("auditors_set", json!({ "auditors": auditors }));
    }
}
