//! The trust model, one test per rule (contracts/README.md, "Trust model"). Each
//! of these failed on the contract before the rule was written (noted per test).

mod common;
use common::*;
use crowdtrain_protocol::Hash32;
use crowdtrain_run::{CreditStatus, ProviderStatus, RoundStatus, Run};
use near_sdk::PromiseResult;

const P: [&str; 5] = [
    "p0.test.near",
    "p1.test.near",
    "p2.test.near",
    "p3.test.near",
    "p4.test.near",
];

/// A funded run with `n` providers p0.. (key seeds 10..).
fn run_with(n: usize) -> Run {
    let mut run = new_run();
    fund(&mut run);
    for (i, p) in P.iter().take(n).enumerate() {
        register(&mut run, p, 10 + i as u8, 3_000);
    }
    run
}

fn seed(who: &str) -> u8 {
    10 + P.iter().position(|p| *p == who).unwrap() as u8
}

/// A checkpoint hash by name.
fn h(name: &str) -> Hash32 {
    crowdtrain_protocol::sha256(name.as_bytes())
}

/// `voters` post receipts for `round` on `base` agreeing on `result`; the blob set is the voters'.
fn vote(run: &mut Run, round: u64, base: Hash32, result: Hash32, voters: &[&str], now: u64) {
    vote_on(run, round, base, result, voters, voters, now);
}

/// As `vote`, over the blob set of `set`.
fn vote_on(
    run: &mut Run,
    round: u64,
    base: Hash32,
    result: Hash32,
    set: &[&str],
    voters: &[&str],
    now: u64,
) {
    for who in voters {
        let r = receipt(round, who, base, result, set);
        call("relayer.near", 0, now);
        run.submit_receipt(r.clone(), sign(&r, &signing_key(seed(who))));
    }
}

fn finalize(run: &mut Run, round: u64, voters: &[&str], now: u64) {
    call("anyone.near", 0, now);
    let blobs = voters.iter().map(|p| blob(p, round)).collect();
    run.finalize_round(round, blobs, None, None);
}

fn settle_all(run: &mut Run, round: u64, now: u64) {
    loop {
        call("anyone.near", 0, now);
        if run.settle_round(round, None).done {
            break;
        }
    }
}

#[test]
fn the_quorum_is_a_majority_of_bonded_stake_not_a_count() {
    // Old code: 2 receipts met `quorum: 2` out of 5 providers.
    let mut run = run_with(5);
    vote_on(&mut run, 1, ckpt(0), h("r1"), &P[..3], &P[..2], 4_000);
    call("anyone.near", 0, 4_000);
    assert_fails(
        "no quorum: 2 agreeing receipts carry 10000000000000000000000000 of the 12502500000000000000000000",
        || run.finalize_round(1, (0..3).map(|i| blob(P[i], 1)).collect(), None, None),
    );
    vote_on(&mut run, 1, ckpt(0), h("r1"), &P[..3], &P[2..3], 4_000);
    assert_eq!(run.run_info().quorum_stake.0, 125_025 * NEAR / 10_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    assert_eq!(run.run_info().last_finalized_round, 1);
}

#[test]
fn one_signing_key_cannot_vote_for_two_providers() {
    // Old code: a second account registered with the same key.
    let mut run = run_with(1);
    call("twin.near", BOND + NEAR, 3_000);
    assert_fails("already registered by p0.test.near", || {
        run.register_provider(public_key(&signing_key(10)), "n".into())
    });
    // (the mocked chain keeps what the refused call wrote, so another account)
    register(&mut run, "twin2.near", 99, 3_000);
    call("twin2.near", 1, 3_000);
    assert_fails("already registered by p0.test.near", || {
        run.rotate_key(public_key(&signing_key(10)))
    });
}

#[test]
fn a_disputed_result_is_rolled_back_its_voters_slashed_and_nothing_paid() {
    // Old code: no way to dispute a result; the checkpoint stayed final.
    let mut run = run_with(5);
    // A dishonest majority of the *voters* (3 of 5 stake) finalizes a wrong result;
    // round 2 is built on it before the auditor finishes recomputing.
    vote(&mut run, 1, ckpt(0), h("wrong"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    vote(&mut run, 2, h("wrong"), h("r2"), &P[1..4], 5_000);
    finalize(&mut run, 2, &P[1..4], 5_000);
    let revenue = run.treasury().revenue_in.0;
    call("p0.test.near", 0, 6_000);
    assert_fails("only the run's auditors", || {
        run.dispute_result(1, "x".into())
    });
    call("auditor.near", 0, 6_000);
    run.dispute_result(1, "recomputed checkpoint differs".into());
    assert_fails("already disputed", || run.dispute_result(1, "x".into()));
    assert_fails("already rolled back", || run.dispute_result(2, "x".into()));
    // The next open round builds on round 0 again, with a fresh id.
    let info = run.run_info();
    assert_eq!((info.last_finalized_round, info.open_round), (0, 4));
    assert_eq!(info.checkpoint.hash, ckpt(0));
    assert_eq!(run.round_view(1).unwrap().status, RoundStatus::Disputed);
    assert_eq!(run.round_view(2).unwrap().status, RoundStatus::RolledBack);
    // Every voter of round 1 lost its bond to the holders; p3, p4 kept theirs.
    for p in &P[..3] {
        let v = run
            .providers(None, None)
            .into_iter()
            .find(|v| v.account_id.as_str() == *p);
        assert_eq!(v.unwrap().status, ProviderStatus::Slashed);
    }
    assert_eq!(run.treasury().bonds_held.0, 2 * BOND);
    assert!(run.treasury().revenue_in.0 - revenue > 3 * BOND - NEAR / 10);
    // Neither round ever pays.
    call("anyone.near", 0, 30_000);
    assert_fails("never paid", || run.settle_round(1, None));
    assert_fails("rolled back", || run.settle_round(2, None));
    // Honest providers continue from checkpoint 0 in round 4.
    vote(&mut run, 4, ckpt(0), h("r4"), &P[3..5], 30_000);
    finalize(&mut run, 4, &P[3..5], 30_000);
    settle_all(&mut run, 4, 30_000 + WINDOW_MS);
    assert!(matches!(
        run.receipt(4, acc(P[3])).unwrap().status,
        CreditStatus::Settled { .. }
    ));
    assert_eq!(run.pending(acc(P[1])).compute_payments.0, 0);
}

#[test]
fn a_result_dispute_with_many_voters_pages_and_catches_voters_on_the_spot() {
    // 60 voters: the dispute slashes 50 at once; the rest cannot vote before
    // slash_voters reaches them.
    let mut run = new_run();
    fund(&mut run);
    let names: Vec<String> = (0..60).map(|i| format!("v{i}.test.near")).collect();
    for (i, n) in names.iter().enumerate() {
        register(&mut run, n, 100 + i as u8, 3_000);
    }
    let voters: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    for (i, who) in voters.iter().enumerate() {
        let r = receipt(1, who, ckpt(0), ckpt(1), &voters);
        call("relayer.near", 0, 4_000);
        run.submit_receipt(r.clone(), sign(&r, &signing_key(100 + i as u8)));
    }
    call("anyone.near", 0, 4_000);
    run.finalize_round(1, voters.iter().map(|p| blob(p, 1)).collect(), None, None);
    call("auditor.near", 0, 5_000);
    run.dispute_result(1, "bad".into());
    assert_eq!(run.treasury().bonds_held.0, 10 * BOND);
    let r = receipt(3, voters[55], ckpt(0), ckpt(3), &voters);
    call("relayer.near", 0, 5_000);
    assert_fails("voted for a disputed result", || {
        run.submit_receipt(r.clone(), sign(&r, &signing_key(155)))
    });
    call(voters[55], 1, 5_000);
    run.exit_provider().unwrap().detach();
    assert!(sent() < NEAR, "storage only, no bond");
    call("anyone.near", 0, 5_000);
    assert_eq!(run.slash_voters(1, None), 0);
    assert_eq!(run.treasury().bonds_held.0, 0);
}

#[test]
fn a_provider_proven_dishonest_is_not_paid_its_other_credits() {
    // Old code: p1's round-1 credit was paid although its round-2 receipt was disputed.
    let mut run = run_with(3);
    vote(&mut run, 1, ckpt(0), h("r1"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    vote(&mut run, 2, h("r1"), h("r2"), &P[..3], 5_000);
    finalize(&mut run, 2, &P[..3], 5_000);
    call("auditor.near", 0, 6_000);
    run.dispute(2, acc(P[1]), "blob does not reproduce".into());
    settle_all(&mut run, 1, 4_000 + WINDOW_MS);
    assert_eq!(
        run.receipt(1, acc(P[1])).unwrap().status,
        CreditStatus::Withheld
    );
    assert!(matches!(
        run.receipt(1, acc(P[0])).unwrap().status,
        CreditStatus::Settled { .. }
    ));
}

#[test]
fn disputing_an_old_receipt_never_slashes_a_bond_posted_later() {
    // Old code: the second dispute took the bond p0 posted after re-registering.
    let mut run = run_with(3);
    vote(&mut run, 1, ckpt(0), h("r1"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    vote(&mut run, 2, h("r1"), h("r2"), &P[..3], 4_100);
    finalize(&mut run, 2, &P[..3], 4_100);
    call("auditor.near", 0, 4_200);
    run.dispute(1, acc(P[0]), "bad".into());
    call(P[0], 1, 4_300);
    run.exit_provider().unwrap().detach();
    register(&mut run, P[0], 50, 4_400);
    let bonds = run.treasury().bonds_held.0;
    call("auditor.near", 0, 4_500);
    run.dispute(2, acc(P[0]), "also bad".into());
    assert_eq!(run.treasury().bonds_held.0, bonds);
    let p0 = run
        .providers(None, None)
        .into_iter()
        .find(|v| v.account_id.as_str() == P[0])
        .unwrap();
    assert_eq!((p0.status, p0.bond.0), (ProviderStatus::Active, BOND));
}

#[test]
fn auditor_changes_wait_the_delay_and_ownership_can_be_handed_over() {
    // Old code: set_auditors took effect at once, and the owner could not change.
    let mut run = run_with(3);
    vote(&mut run, 1, ckpt(0), h("r1"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    call("owner.near", 0, 4_000);
    run.set_auditors(vec![acc("owner.near")]);
    call("owner.near", 0, 4_001);
    assert_fails("only the run's auditors", || {
        run.dispute(1, acc(P[0]), "x".into())
    });
    call("owner.near", 1, 4_002);
    run.propose_owner(acc("heir.near"));
    call("owner.near", 1, 4_003);
    assert_fails("only the account named by propose_owner", || {
        run.accept_owner()
    });
    call("heir.near", 1, 4_003);
    run.accept_owner();
    assert_eq!(run.run_info().config.owner, acc("heir.near"));
    call("owner.near", 0, 4_004);
    assert_fails("only the run's owner", || run.pause());
}

#[test]
fn pause_never_holds_settlement() {
    // Old code: settle_round refused while paused.
    let mut run = run_with(3);
    vote(&mut run, 1, ckpt(0), h("r1"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    call("owner.near", 0, 4_100);
    run.pause();
    settle_all(&mut run, 1, 4_000 + WINDOW_MS);
    assert!(run.pending(acc(P[0])).compute_payments.0 > 0);
}

#[test]
fn a_config_that_cannot_work_is_refused_naming_the_field() {
    // Old code accepted all three.
    call("factory.test.near", 0, 1_000);
    let mut c = config();
    c.provider_bond.0 = 0;
    assert_fails("provider_bond must be more than 0", || Run::new(c));
    let mut c = config();
    c.challenge_window_ms.0 = u64::MAX;
    assert_fails("challenge_window_ms must be 1 to", || Run::new(c));
    let mut c = config();
    c.challenge_window_ms.0 = 0;
    assert_fails("challenge_window_ms must be 1 to", || Run::new(c));
    let mut c = config();
    c.funding_deadline_ms.0 = u64::MAX - 1;
    assert_fails("funding_deadline_ms must be at most", || Run::new(c));
    let mut c = config();
    c.quorum_bps = Some(5_000);
    assert_fails("quorum_bps must be 5001 to 10000", || Run::new(c));
}

#[test]
fn a_run_closes_its_treasury_goes_to_the_holders_and_bonds_come_back() {
    // Old code: no way to end a funded run.
    let mut run = run_with(3);
    vote(&mut run, 1, ckpt(0), h("r1"), &P[..3], 4_000);
    finalize(&mut run, 1, &P[..3], 4_000);
    call("stranger.near", 0, 5_000);
    assert_fails("only the owner may close the run before", || {
        run.close_run()
    });
    call("owner.near", 0, 5_000);
    run.close_run();
    assert!(run.run_info().closed);
    call("relayer.near", 0, 5_000);
    let r = receipt(2, P[0], h("r1"), ckpt(2), &P[..3]);
    assert_fails("the run is closed", || {
        run.submit_receipt(r.clone(), sign(&r, &signing_key(10)))
    });
    // The treasury waits for round 1 to settle.
    call("owner.near", 0, 5_000);
    assert_fails("settle round 1", || run.close_run());
    settle_all(&mut run, 1, 4_000 + WINDOW_MS);
    let left = run.treasury().treasury.0;
    call("anyone.near", 0, 4_000 + WINDOW_MS);
    run.close_run();
    assert_eq!(run.treasury().treasury.0, 0);
    let funder = run.pending(acc("funder.near")).royalties.0;
    assert!(
        funder > left * 9 / 10,
        "the funder holds most shares: {funder} of {left}"
    );
    // Bonds: exit in two calls, no extra window once the last vote's window closed.
    call(P[0], 1, 4_000 + WINDOW_MS);
    assert!(run.exit_provider().is_none());
    call(P[0], 1, 4_000 + WINDOW_MS);
    run.exit_provider().unwrap().detach();
    assert!(sent() > BOND);
}

#[test]
fn anyone_closes_a_stalled_run() {
    let mut run = run_with(1);
    let stall = DEADLINE_MS + 30 * 24 * 3_600_000;
    call("stranger.near", 0, stall - 1);
    assert_fails("only the owner may close", || run.close_run());
    call("stranger.near", 0, stall);
    run.close_run();
    assert_eq!(run.treasury().treasury.0, 0);
}

#[test]
fn a_failed_bond_return_is_kept_for_a_retry() {
    // Old code: the bond left with a plain transfer; a failure lost it.
    let mut run = run_with(1);
    call(P[0], 1, 4_000);
    assert!(run.exit_provider().is_none());
    call(P[0], 1, 4_000 + WINDOW_MS);
    run.exit_provider().unwrap().detach();
    let amount = sent();
    call_with(RUN, 0, 20_000, vec![PromiseResult::Failed]);
    assert!(!run.on_payout(acc(P[0]), near_sdk::json_types::U128(amount)));
    assert_eq!(run.payout_owed(acc(P[0])).0, amount);
    assert_eq!(run.treasury().payouts_owed.0, amount);
    call(P[0], 0, 20_001);
    run.retry_payout().detach();
    assert_eq!(transfers(), vec![(acc(P[0]), amount)]);
    assert_eq!(run.treasury().payouts_owed.0, 0);
    call(P[0], 0, 20_002);
    assert_fails("no failed payout", || run.retry_payout());
}
