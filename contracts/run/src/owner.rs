//! Owner controls: pause switch, the auditor list (changes wait a delay) and
//! handing ownership over (proposed, then accepted by the new owner).

use crate::RunExt;
use crate::config::MAX_AUDITORS;
use crate::{Run, events};
use near_sdk::json_types::U64;
use near_sdk::serde_json::json;
use near_sdk::{AccountId, assert_one_yocto, env, near, require};

impl Run {
    pub(crate) fn assert_owner(&self) {
        require!(
            env::predecessor_account_id() == self.config.owner,
            "only the run's owner may do this"
        );
    }
}

#[near]
impl Run {
    /// Stops deposits, provider registration, receipts and finalization.
    /// Settlement, disputes, claims, refunds, exits, revenue payments and share
    /// transfers keep working, so a pause never holds money owed.
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

    /// Names the accounts allowed to dispute; they take over after the config's
    /// `auditor_delay_ms`, so an owner cannot appoint itself and slash at once.
    pub fn set_auditors(&mut self, auditors: Vec<AccountId>) {
        self.assert_owner();
        require!(
            auditors.len() <= MAX_AUDITORS,
            "at most 32 auditors may be named"
        );
        let now = env::block_timestamp_ms();
        // A change that already took effect becomes the current list first.
        if let Some((list, at)) = self.pending_auditors.take()
            && now >= at
        {
            self.config.auditors = list;
        }
        let at = now + self.config.auditor_delay_ms();
        self.pending_auditors = Some((auditors.clone(), at));
        events::emit(
            "auditors_set",
            json!({ "auditors": auditors, "effective_at_ms": U64(at) }),
        );
    }

    /// The owner names its successor (1 yoctoNEAR); nothing changes until it accepts.
    #[payable]
    pub fn propose_owner(&mut self, new_owner: AccountId) {
        assert_one_yocto();
        self.assert_owner();
        self.pending_owner = Some(new_owner.clone());
        events::emit("owner_proposed", json!({ "new_owner": new_owner }));
    }

    /// The proposed successor takes ownership (1 yoctoNEAR).
    #[payable]
    pub fn accept_owner(&mut self) {
        assert_one_yocto();
        let caller = env::predecessor_account_id();
        require!(
            self.pending_owner.as_ref() == Some(&caller),
            "only the account named by propose_owner may accept ownership"
        );
        self.pending_owner = None;
        let old = std::mem::replace(&mut self.config.owner, caller.clone());
        events::emit(
            "owner_changed",
            json!({ "old_owner": old, "new_owner": caller }),
        );
    }
}
