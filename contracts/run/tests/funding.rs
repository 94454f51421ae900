//! Funding: deposits, the storage cost, the goal, refunds, and the wrong calls.

mod common;
use common::*;
use crowdtrain_run::FundingPhase;
use near_sdk::test_utils::get_logs;

#[test]
fn a_deposit_mints_shares_net_of_storage_and_says_so() {
    let mut run = new_run();
    let cost = run.funding_status().storage_cost.0;
    assert!(cost > 0 && cost < NEAR / 100, "storage cost {cost}");
    call("alice.near", NEAR, 2_000);
    run.deposit();
    let logs = get_logs();
    assert!(
        logs.iter()
            .any(|l| l.contains("\"standard\":\"crowdtrain\"")
                && l.contains("\"event\":\"deposit\"")
                && l.contains(&format!("\"storage_cost\":\"{cost}\""))),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l.contains("ft_mint")), "{logs:?}");
    assert_eq!(bal(&run, "alice.near"), NEAR - cost);
    // A second deposit pays no storage.
    call("alice.near", NEAR, 2_500);
    run.deposit();
    assert_eq!(bal(&run, "alice.near"), 2 * NEAR - cost);
    let s = run.funding_status();
    assert_eq!(s.raised.0, 2 * NEAR - cost);
    assert_eq!(s.phase, FundingPhase::Open);
    assert_eq!(run.treasury().treasury.0, 2 * NEAR - cost);
    assert_eq!(run.treasury().storage_held.0, cost);
}

#[test]
fn wrong_deposits_are_refused_with_a_reason() {
    let mut run = new_run();
    call("alice.near", NEAR / 100, 2_000);
    assert_fails(
        "below the minimum of 100000000000000000000000 yoctoNEAR (0.1 NEAR)",
        || run.deposit(),
    );
    call("alice.near", 0, 2_000);
    assert_fails("below the minimum", || run.deposit());
    call("alice.near", NEAR, DEADLINE_MS);
    assert_fails("funding closed at the deadline", || run.deposit());
    call("owner.near", 0, 2_000);
    run.pause();
    call("alice.near", NEAR, 2_000);
    assert_fails("paused", || run.deposit());
}

#[test]
fn reaching_the_goal_opens_rounds_and_refunds_are_refused() {
    let mut run = new_run();
    fund(&mut run);
    assert_eq!(run.funding_status().phase, FundingPhase::Funded);
    call("funder.near", 0, DEADLINE_MS + 1);
    assert_eq!(run.funding_status().phase, FundingPhase::Funded);
    assert_fails("refunds open only if the funding goal is missed", || {
        run.refund()
    });
}

#[test]
fn a_missed_goal_refunds_every_share_and_the_storage() {
    let mut run = new_run();
    call("alice.near", 3 * NEAR, 2_000);
    run.deposit();
    call("bob.near", 2 * NEAR, 2_000);
    run.deposit();
    // Bob gives alice half his shares: whoever holds shares is refunded.
    let cost = run.funding_status().storage_cost.0;
    call("bob.near", 1, 3_000);
    xfer(&mut run, "alice.near", NEAR);
    call("alice.near", 0, 3_000);
    assert_fails("refunds open only if", || run.refund());
    call("alice.near", 0, DEADLINE_MS);
    assert_eq!(run.funding_status().phase, FundingPhase::Failed);
    run.refund().detach();
    assert_eq!(transfers(), vec![(acc("alice.near"), 4 * NEAR)]);
    call("bob.near", 0, DEADLINE_MS);
    run.refund().detach();
    assert_eq!(transfers(), vec![(acc("bob.near"), NEAR)]);
    assert_eq!(supply(&run), 0);
    let t = run.treasury();
    assert_eq!(
        (t.treasury.0, t.storage_held.0, t.refunded.0),
        (0, 0, 5 * NEAR - 2 * cost)
    );
    call("bob.near", 0, DEADLINE_MS);
    assert_fails("you hold no shares to refund", || run.refund());
}

#[test]
fn a_bad_config_is_refused_naming_the_field() {
    call("factory.test.near", 0, 1_000);
    let mut c = config();
    c.quorum = 0;
    assert_fails("quorum must be at least 1", || crowdtrain_run::Run::new(c));
    let mut c = config();
    c.funding_deadline_ms.0 = 500;
    assert_fails("funding_deadline_ms must be in the future", || {
        crowdtrain_run::Run::new(c)
    });
    let mut c = config();
    c.initial_checkpoint_uri.clear();
    assert_fails("checkpoint URI must not be empty", || {
        crowdtrain_run::Run::new(c)
    });
    // A credit that could mint past the supply's range would block its round forever.
    let mut c = config();
    c.shares_per_token.0 = 10u128.pow(33);
    assert_fails(
        "shares_per_token × max_tokens_per_round must be at most 2^96",
        || crowdtrain_run::Run::new(c),
    );
}

#[test]
fn shares_burned_without_a_refund_leave_their_near_to_the_other_funders() {
    use near_contract_standards::storage_management::StorageManagement;
    let mut run = new_run();
    let cost = run.funding_status().storage_cost.0;
    call("alice.near", 10 * NEAR, 2_000);
    run.deposit();
    call("bob.near", 30 * NEAR, 2_000);
    run.deposit();
    // Bob closes his account with force: his shares are burned, his NEAR stays.
    call("bob.near", 1, 3_000);
    assert!(run.storage_unregister(Some(true)));
    call("alice.near", 0, DEADLINE_MS);
    let _ = run.refund();
    // Alice is the last funder: the whole treasury is hers, nothing stays stuck.
    assert_eq!(sent(), 40 * NEAR - 2 * cost + cost);
    assert_eq!(run.treasury().treasury.0, 0);
}
