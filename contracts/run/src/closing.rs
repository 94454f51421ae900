//! The end of a run. The owner may close it at any time; anyone may once
//! `stall_timeout_ms` passed without a finalized round (counted from the funding
//! deadline or the last finalization). A closed run takes no deposits,
//! registrations, receipts or finalizations; rounds already finalized still settle
//! after their windows, and once the live chain is settled the unspent treasury is
//! handed to the share holders pro rata (claimable with `claim`). A run closed
//! before its goal is reached refunds its funders as a missed goal does. Providers
//! take their bonds back with `exit_provider` as soon as their last vote's
//! challenge window has closed.

use crate::RunExt;
use crate::funding::FundingPhase;
use crate::{Run, events};
use near_sdk::json_types::U128;
use near_sdk::serde_json::json;
use near_sdk::{env, near, require};

#[near]
impl Run {
    /// Closes the run (owner, or anyone after the stall timeout), and hands the
    /// unspent treasury to the share holders once every finalized round on the
    /// live chain is settled; call again after settling if it was not yet.
    pub fn close_run(&mut self) {
        let now = env::block_timestamp_ms();
        let was_closed = self.closed;
        if !was_closed {
            let stalled_at = self.last_progress_ms + self.config.stall_timeout_ms();
            require!(
                env::predecessor_account_id() == self.config.owner || now >= stalled_at,
                format!(
                    "only the owner may close the run before {stalled_at} (unix ms), when it counts as stalled"
                )
            );
            self.closed = true;
            events::emit(
                "run_closed",
                json!({ "by": env::predecessor_account_id(), "head": self.head,
                        "treasury": U128(self.treasury) }),
            );
        }
        let funded = self.internal_funding_phase() == FundingPhase::Funded;
        if !was_closed && !funded {
            return; // Funders refund as after a missed goal.
        }
        require!(
            funded,
            "the goal was not reached: funders take their deposits back with refund"
        );
        require!(
            !self.treasury_released,
            "the run is closed and its treasury already went to the holders"
        );
        let head_settled = self
            .rounds
            .get(&self.head)
            .and_then(|s| s.finalization.as_ref().map(|f| f.settled))
            .unwrap_or(true);
        if !head_settled {
            require!(
                !was_closed,
                format!(
                    "settle round {} (and the rounds before it) first; the treasury goes to the holders after",
                    self.head
                )
            );
            return;
        }
        let unspent = std::mem::take(&mut self.treasury);
        self.treasury_released = true;
        self.internal_distribute_rounding_down(unspent);
        events::emit(
            "treasury_released",
            json!({ "amount": U128(unspent), "total_supply": U128(self.total_supply) }),
        );
    }
}
