//! Property test of the run's money with rounds (the part of the money test that
//! drives providers; `money.rs` drives holders): random sequences of provider
//! registrations, honest and dishonest receipts, finalizations, disputes of
//! receipts and of results, settlements, exits, closes, transfers, revenue and
//! claims, with every payout's transfer randomly failing. After every step:
//! - no yoctoNEAR created or lost: paid in = sent out + bonds + treasury + revenue
//!   owed + compute owed + failed payouts kept + storage;
//! - a disputed result, and every round rolled back with it, never pays anyone.

mod common;
use common::*;
use crowdtrain_run::{CreditStatus, Run};
use near_contract_standards::fungible_token::core::FungibleTokenCore;
use near_sdk::PromiseResult;
use near_sdk::json_types::U128;
use proptest::prelude::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

const PROVIDERS: [&str; 4] = ["q0.near", "q1.near", "q2.near", "q3.near"];

#[derive(Debug, Clone)]
enum Op {
    /// Providers in `mask` post receipts for the open round; `wrong` ones post another result.
    Vote {
        mask: u8,
        wrong: u8,
    },
    Finalize,
    DisputeReceipt {
        who: usize,
    },
    DisputeResult,
    SlashVoters,
    Settle,
    Exit {
        who: usize,
    },
    Register {
        who: usize,
    },
    Close {
        owner: bool,
    },
    Transfer {
        who: usize,
    },
    PayRevenue {
        amount: u128,
    },
    Claim {
        who: usize,
    },
    Wait {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..PROVIDERS.len();
    prop_oneof![
        5 => (1u8..16, 0u8..16).prop_map(|(mask, wrong)| Op::Vote { mask, wrong }),
        4 => Just(Op::Finalize),
        1 => who.clone().prop_map(|who| Op::DisputeReceipt { who }),
        1 => Just(Op::DisputeResult),
        1 => Just(Op::SlashVoters),
        4 => Just(Op::Settle),
        1 => who.clone().prop_map(|who| Op::Exit { who }),
        1 => who.clone().prop_map(|who| Op::Register { who }),
        1 => any::<bool>().prop_map(|owner| Op::Close { owner }),
        1 => who.clone().prop_map(|who| Op::Transfer { who }),
        2 => (1u128..10 * NEAR).prop_map(|amount| Op::PayRevenue { amount }),
        2 => who.clone().prop_map(|who| Op::Claim { who }),
        3 => prop_oneof![Just(1_000u64), Just(WINDOW_MS)].prop_map(|ms| Op::Wait { ms }),
    ]
}

struct World {
    /// The contract, between calls (taken out while a call runs).
    run: Option<Run>,
    now: u64,
    paid_in: u128,
    sent_out: u128,
    /// Key seed of each provider's current registration.
    seeds: [u8; 4],
    /// Rounds whose result was disputed.
    disputed: Vec<u64>,
    fail_next: bool,
}

/// Sets the call context as `call` does, over the given contract storage.
fn context_with_storage(caller: &str, deposit: u128, now_ms: u64, storage: Storage) {
    let ctx = near_sdk::test_utils::VMContextBuilder::new()
        .current_account_id(acc(RUN))
        .predecessor_account_id(acc(caller))
        .signer_account_id(acc(caller))
        .attached_deposit(near_sdk::NearToken::from_yoctonear(deposit))
        .block_timestamp(now_ms * 1_000_000)
        .account_balance(near_sdk::NearToken::from_near(1_000_000_000))
        .build();
    near_sdk::env::set_blockchain_interface(near_sdk::MockedBlockchain::new(
        ctx,
        near_sdk::test_vm_config(),
        near_sdk::RuntimeFeesConfig::test(),
        vec![],
        storage,
        Default::default(),
        None,
    ));
}

type Storage = std::collections::HashMap<Vec<u8>, Vec<u8>>;

impl World {
    fn new() -> Self {
        near_sdk::mock::with_mocked_blockchain(|b| {
            b.take_storage();
        });
        let mut run = new_run();
        fund(&mut run);
        let mut w = World {
            run: Some(run),
            now: 3_000,
            paid_in: GOAL + NEAR,
            sent_out: 0,
            seeds: [20, 21, 22, 23],
            disputed: Vec::new(),
            fail_next: false,
        };
        for i in 0..PROVIDERS.len() {
            w.apply(&Op::Register { who: i });
        }
        w
    }

    /// Counts the transfers of the call just made and runs their callbacks,
    /// failing every other one: a failed payout's NEAR comes back to the run.
    fn settle_transfers(&mut self, deposit: u128) {
        self.paid_in += deposit;
        for (to, amount) in transfers() {
            self.sent_out += amount;
            self.fail_next = !self.fail_next;
            let result = if self.fail_next {
                self.paid_in += amount;
                PromiseResult::Failed
            } else {
                PromiseResult::Successful(vec![])
            };
            call_with(RUN, 0, self.now, vec![result]);
            self.run_mut().on_payout(to, U128(amount));
        }
    }

    fn run(&self) -> &Run {
        self.run.as_ref().expect("between calls")
    }

    fn run_mut(&mut self) -> &mut Run {
        self.run.as_mut().expect("between calls")
    }

    /// Makes a call with `deposit` attached from `caller`, as the chain does: from
    /// the stored state, and a refused call (a panic) leaves no trace. Returns
    /// whether it went through (its transfers are then in `transfers()`).
    fn attempt<R>(&mut self, caller: &str, deposit: u128, f: impl FnOnce(&mut Run) -> R) -> bool {
        let old = self.run.take().expect("between calls");
        near_sdk::env::state_write(&old);
        drop(old); // writes its collections' caches
        let snapshot: Storage = near_sdk::mock::with_mocked_blockchain(|b| b.take_storage());
        context_with_storage(caller, deposit, self.now, snapshot.clone());
        let mut run: Run = near_sdk::env::state_read().expect("state");
        if catch_unwind(AssertUnwindSafe(|| f(&mut run))).is_ok() {
            self.run = Some(run);
            return true;
        }
        // The chain discards a failed call's writes: so do we, caches included.
        std::mem::forget(run);
        context_with_storage(caller, 0, self.now, snapshot);
        self.run = Some(near_sdk::env::state_read().expect("state"));
        false
    }

    /// As `attempt`, then counts the call's deposit and payouts.
    fn act<R>(&mut self, caller: &str, deposit: u128, f: impl FnOnce(&mut Run) -> R) {
        if self.attempt(caller, deposit, f) {
            self.settle_transfers(deposit);
        }
    }

    /// As `act` for a call that needs 1 yoctoNEAR attached: that security deposit
    /// stays with the contract outside every bucket, so it is counted apart.
    fn act_one_yocto<R>(&mut self, caller: &str, f: impl FnOnce(&mut Run) -> R) {
        if self.attempt(caller, 1, f) {
            self.settle_transfers(0);
        }
    }

    fn apply(&mut self, op: &Op) {
        let open = self.run().run_info().open_round;
        let base = self.run().run_info().checkpoint.hash;
        match *op {
            Op::Vote { mask, wrong } => {
                for (i, who) in PROVIDERS.iter().enumerate() {
                    if mask & (1 << i) == 0 {
                        continue;
                    }
                    let result = if wrong & (1 << i) != 0 {
                        ckpt(999)
                    } else {
                        ckpt(open)
                    };
                    let r = receipt(open, who, base, result, &PROVIDERS);
                    let sig = sign(&r, &signing_key(self.seeds[i]));
                    self.act("relayer.near", NEAR, |run| run.submit_receipt(r, sig));
                }
            }
            Op::Finalize => {
                let blobs = PROVIDERS.iter().map(|p| blob(p, open)).collect();
                self.act("anyone.near", NEAR, |run| {
                    run.finalize_round(open, blobs, None, None)
                });
            }
            Op::DisputeReceipt { who } => {
                let head = self.run().run_info().last_finalized_round;
                self.act("auditor.near", 0, |run| {
                    run.dispute(head, acc(PROVIDERS[who]), "bad".into())
                });
            }
            Op::DisputeResult => {
                let head = self.run().run_info().last_finalized_round;
                let before = self
                    .run()
                    .round_view(head)
                    .and_then(|v| v.state.finalization);
                self.act("auditor.near", 0, |run| {
                    run.dispute_result(head, "bad".into())
                });
                let after = self
                    .run()
                    .round_view(head)
                    .and_then(|v| v.state.finalization);
                if before.is_some_and(|f| f.disputed.is_none())
                    && after.is_some_and(|f| f.disputed.is_some())
                {
                    self.disputed.push(head);
                }
            }
            Op::SlashVoters => {
                for r in self.disputed.clone() {
                    self.act("anyone.near", 0, |run| run.slash_voters(r, None));
                }
            }
            Op::Settle => {
                for r in 1..open {
                    self.act("anyone.near", NEAR, |run| run.settle_round(r, None));
                }
            }
            Op::Exit { who } => self.act_one_yocto(PROVIDERS[who], |run| run.exit_provider()),
            Op::Register { who } => {
                self.seeds[who] = self.seeds[who].wrapping_add(4).max(20);
                let key = public_key(&signing_key(self.seeds[who]));
                self.act(PROVIDERS[who], BOND + NEAR, |run| {
                    run.register_provider(key, "node".into())
                });
            }
            Op::Close { owner } => {
                let caller = if owner { "owner.near" } else { "anyone.near" };
                self.act(caller, 0, |run| run.close_run());
            }
            Op::Transfer { who } => {
                let amount = self.run().ft_balance_of(acc(PROVIDERS[who])).0 / 2;
                self.act_one_yocto(PROVIDERS[who], |run| xfer(run, "funder.near", amount));
            }
            Op::PayRevenue { amount } => self.act("customer.near", amount, |run| run.pay_revenue()),
            Op::Claim { who } => {
                let who = PROVIDERS[who];
                let p = self.run().pending(acc(who));
                if !self.attempt(who, 0, |run| run.claim()) {
                    return;
                }
                let total = p.royalties.0 + p.compute_payments.0;
                self.sent_out += total;
                self.fail_next = !self.fail_next;
                let result = if self.fail_next {
                    self.paid_in += total;
                    PromiseResult::Failed
                } else {
                    PromiseResult::Successful(vec![])
                };
                call_with(RUN, 0, self.now, vec![result]);
                self.run_mut()
                    .on_claim(acc(who), p.royalties, p.compute_payments);
            }
            Op::Wait { ms } => self.now += ms,
        }
    }

    fn check(&self) {
        let t = self.run().treasury();
        let held = t.treasury.0
            + t.bonds_held.0
            + (t.revenue_in.0 - t.royalties_claimed.0)
            + (t.compute_paid.0 - t.compute_sent.0)
            + t.payouts_owed.0
            + t.storage_held.0;
        assert_eq!(t.payouts_in_flight.0, 0, "every callback ran");
        assert_eq!(
            self.paid_in,
            self.sent_out + held,
            "every yoctoNEAR is accounted for"
        );
        let open = self.run().run_info().open_round;
        for r in 1..open {
            let Some(view) = self.run().round_view(r) else {
                continue;
            };
            let never_paid = self.disputed.contains(&r)
                || view.status == crowdtrain_run::RoundStatus::RolledBack;
            if never_paid {
                for rec in self.run().receipts(r, None, None) {
                    assert!(
                        !matches!(rec.status, CreditStatus::Settled { .. }),
                        "round {r} was disputed or rolled back but paid {}",
                        rec.receipt.provider
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn rounds_create_or_lose_no_yocto_and_a_disputed_result_never_pays(
        ops in prop::collection::vec(op(), 1..50),
    ) {
        let mut world = World::new();
        world.check();
        for op in &ops {
            world.apply(op);
            world.check();
        }
    }
}
