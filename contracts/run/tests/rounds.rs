//! Rounds: signed receipts (including the protocol's pinned vector), quorum,
//! finalization, disputes, settlement, and every wrong way to call them.

mod common;
use common::*;
use crowdtrain_protocol::{Receipt, blob_set_digest, sha256};
use crowdtrain_run::{CreditStatus, Run};
use near_sdk::AccountId;
use near_sdk::json_types::Base64VecU8;

/// The protocol crate's pinned vector (contracts/protocol/tests/vectors.rs).
const VECTOR_PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const VECTOR_SIGNATURE: &str = concat!(
    "e1f2edf67b6e9423e5f1459906b760c7210f222674e508ab012faa306ebbf382",
    "1235b8be59cfee64b02ab4fcff2f8ff94b8626bff93d87b08d8c74c90cf8ec0b"
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn vector_receipt() -> Receipt {
    Receipt {
        run: "demo.factory.test.near".into(),
        round: 3,
        provider: "alice.test.near".into(),
        base_checkpoint: sha256(b"checkpoint 2"),
        result_checkpoint: sha256(b"checkpoint 3"),
        blob: sha256(b"alice blob"),
        blob_set: blob_set_digest(&[sha256(b"bob blob"), sha256(b"alice blob")]),
        inner_steps: 50,
        tokens: 409_600,
        loss_start: 3.25,
        loss_end: 2.5,
        unix_ms: 1_795_000_000_000,
    }
}

const A: &str = "alice.test.near";
const B: &str = "bob.test.near";
const C: &str = "carol.test.near";

/// A funded run with alice (the vector key, seed 7), bob (8) and carol (9) registered.
fn run_with_providers() -> Run {
    let mut run = new_run();
    fund(&mut run);
    register(&mut run, A, 7, 3_000);
    register(&mut run, B, 8, 3_000);
    register(&mut run, C, 9, 3_000);
    run
}

fn submit(run: &mut Run, r: &Receipt, seed: u8, now_ms: u64) {
    call("relayer.near", 0, now_ms);
    run.submit_receipt(r.clone(), sign(r, &signing_key(seed)));
}

/// Alice and bob agree on round `round`; it is finalized at `now_ms`.
fn agree_and_finalize(run: &mut Run, round: u64, now_ms: u64) {
    agree_and_finalize_attaching(run, round, now_ms, 0);
}

/// As `agree_and_finalize`, each call attaching `deposit` (for storage once the
/// treasury is spent).
fn agree_and_finalize_attaching(run: &mut Run, round: u64, now_ms: u64, deposit: u128) {
    let set = [A, B];
    for (who, seed) in [(A, 7), (B, 8)] {
        let r = receipt(round, who, ckpt(round - 1), ckpt(round), &set);
        call("relayer.near", deposit, now_ms);
        run.submit_receipt(r.clone(), sign(&r, &signing_key(seed)));
    }
    call("anyone.near", deposit, now_ms);
    run.finalize_round(round, vec![blob(A, round), blob(B, round)], None, None);
}

/// Settles every page of `round` at `now_ms`.
fn settle_all(run: &mut Run, round: u64, now_ms: u64, deposit: u128) {
    loop {
        call("anyone.near", deposit, now_ms);
        if run.settle_round(round, None).done {
            break;
        }
    }
}

/// What became of `who`'s credit in `round`.
fn status(run: &Run, round: u64, who: &str) -> CreditStatus {
    run.receipt(round, acc(who)).unwrap().status
}

/// The providers whose credit in `round` was settled.
fn paid(run: &Run, round: u64) -> Vec<AccountId> {
    run.receipts(round, None, None)
        .into_iter()
        .filter(|r| matches!(r.status, CreditStatus::Settled { .. }))
        .map(|r| acc(&r.receipt.provider))
        .collect()
}

#[test]
fn the_contract_verifies_the_receipt_the_agent_signs() {
    let mut run = run_with_providers();
    assert_eq!(
        signing_key(7).verifying_key().as_bytes().to_vec(),
        unhex(VECTOR_PUBLIC_KEY)
    );
    agree_and_finalize(&mut run, 1, 4_000);
    agree_and_finalize(&mut run, 2, 5_000);
    assert_eq!(run.run_info().checkpoint.hash, sha256(b"checkpoint 2"));

    // A tampered signature is refused; the pinned one is accepted.
    let mut bad = unhex(VECTOR_SIGNATURE);
    bad[0] ^= 1;
    call("relayer.near", 0, 6_000);
    assert_fails("the signature does not match", || {
        run.submit_receipt(vector_receipt(), Base64VecU8(bad))
    });
    call("relayer.near", 0, 6_000);
    run.submit_receipt(vector_receipt(), Base64VecU8(unhex(VECTOR_SIGNATURE)));

    let mut bob = vector_receipt();
    bob.provider = B.into();
    bob.blob = sha256(b"bob blob");
    submit(&mut run, &bob, 8, 6_000);
    // Anyone may finalize, but not point agents at a checkpoint URI of its choice.
    call("anyone.near", 0, 6_000);
    assert_fails("only the run's owner or a provider credited", || {
        run.finalize_round(
            3,
            vec![sha256(b"bob blob"), sha256(b"alice blob")],
            Some("https://evil.example/ckpt".into()),
            None,
        )
    });
    call(B, 0, 6_000);
    let cp = run.finalize_round(
        3,
        vec![sha256(b"bob blob"), sha256(b"alice blob")],
        Some("iroh:blob".into()),
        None,
    );
    assert_eq!(
        (cp.hash, cp.uri.as_str()),
        (sha256(b"checkpoint 3"), "iroh:blob")
    );
    assert_eq!(run.checkpoint(3).unwrap(), cp);
    assert_eq!(run.receipts(3, None, None).len(), 2);
    assert_eq!(run.receipts(3, None, None)[0].receipt, vector_receipt());
    assert_eq!(run.receipts(3, Some(1), Some(5))[0].receipt.provider, B);
}

#[test]
fn receipts_that_do_not_fit_are_refused_with_a_reason() {
    let mut run = new_run();
    register(&mut run, A, 7, 1_500);
    let set = [A, B];
    let r1 = receipt(1, A, ckpt(0), ckpt(1), &set);
    call("relayer.near", 0, 1_600);
    assert_fails("rounds open once the funding goal is reached", || {
        run.submit_receipt(r1.clone(), sign(&r1, &signing_key(7)))
    });
    fund(&mut run);
    register(&mut run, B, 8, 3_000);

    let cases: Vec<(&str, Receipt, u8)> = vec![
        ("signature does not match", r1.clone(), 8),
        (
            "is for run other.near, not for demo.factory.test.near",
            Receipt {
                run: "other.near".into(),
                ..r1.clone()
            },
            7,
        ),
        (
            "receipt is for round 2, but the open round is 1",
            Receipt {
                round: 2,
                ..r1.clone()
            },
            7,
        ),
        (
            "but the open round builds on",
            Receipt {
                base_checkpoint: ckpt(5),
                ..r1.clone()
            },
            7,
        ),
        (
            "this run trains 50 inner steps",
            Receipt {
                inner_steps: 49,
                ..r1.clone()
            },
            7,
        ),
        (
            "tokens must be 1 to 1000000",
            Receipt {
                tokens: 1_000_001,
                ..r1.clone()
            },
            7,
        ),
        (
            "losses must be finite",
            Receipt {
                loss_end: f32::INFINITY,
                ..r1.clone()
            },
            7,
        ),
        (
            "not a registered provider",
            Receipt {
                provider: "mallory.near".into(),
                ..r1.clone()
            },
            7,
        ),
        (
            "not a valid NEAR account id",
            Receipt {
                provider: "Not An Account".into(),
                ..r1.clone()
            },
            7,
        ),
    ];
    for (needle, r, seed) in cases {
        call("relayer.near", 0, 4_000);
        // Signed correctly unless the case is about the signature (NaN-free losses
        // sign fine; an infinite loss still has borsh bytes).
        let sig = if r.losses_are_finite() {
            sign(&r, &signing_key(seed))
        } else {
            Base64VecU8(vec![0; 64])
        };
        assert_fails(needle, || run.submit_receipt(r, sig));
    }
    call("relayer.near", 0, 4_000);
    assert_fails("base64 of the 64 ed25519 signature bytes", || {
        run.submit_receipt(r1.clone(), Base64VecU8(vec![1; 63]))
    });

    submit(&mut run, &r1, 7, 4_000);
    call("relayer.near", 0, 4_001);
    assert_fails(
        "alice.test.near already posted a receipt for round 1",
        || run.submit_receipt(r1.clone(), sign(&r1, &signing_key(7))),
    );

    // One receipt is no quorum; neither is a blob set nobody signed.
    call("anyone.near", 0, 4_100);
    assert_fails("no quorum: 1 agreeing receipts carry", || {
        run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None)
    });
    submit(&mut run, &receipt(1, B, ckpt(0), ckpt(1), &set), 8, 4_200);
    call("anyone.near", 0, 4_300);
    assert_fails("no quorum: 0 agreeing receipts", || {
        run.finalize_round(1, vec![blob(A, 1)], None, None)
    });
    assert_fails("round 2 cannot be finalized: the open round is 1", || {
        run.finalize_round(2, vec![blob(A, 1), blob(B, 1)], None, None)
    });
    run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None);
    // A receipt for a finalized round is now from the past.
    call("relayer.near", 0, 4_400);
    assert_fails("receipt is for round 1, but the open round is 2", || {
        run.submit_receipt(r1.clone(), sign(&r1, &signing_key(7)))
    });
}

#[test]
fn disagreeing_receipts_and_blobs_outside_the_set_earn_nothing() {
    let mut run = run_with_providers();
    let set = [A, B];
    submit(&mut run, &receipt(1, A, ckpt(0), ckpt(1), &set), 7, 4_000);
    submit(&mut run, &receipt(1, B, ckpt(0), ckpt(1), &set), 8, 4_000);
    // carol computed a different checkpoint.
    submit(
        &mut run,
        &receipt(1, C, ckpt(0), sha256(b"wrong"), &set),
        9,
        4_000,
    );
    call("anyone.near", 0, 4_000);
    run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None);
    let fin = run.round_view(1).unwrap().state.finalization.unwrap();
    assert_eq!(fin.result_checkpoint, ckpt(1));
    settle_all(&mut run, 1, 4_000 + WINDOW_MS, 0);
    assert_eq!(paid(&run, 1), vec![acc(A), acc(B)]);
    assert_eq!(status(&run, 1, C), CreditStatus::Excluded);
}

#[test]
fn credits_settle_after_the_window_into_payments_and_shares() {
    let mut run = run_with_providers();
    agree_and_finalize(&mut run, 1, 4_000);
    let before = run.treasury();
    call("anyone.near", 0, 4_000 + WINDOW_MS - 1);
    assert_fails("round 1 settles at 14000 (unix ms)", || {
        run.settle_round(1, None)
    });
    call("anyone.near", 0, 4_000 + WINDOW_MS);
    assert!(run.settle_round(1, None).done);
    assert_fails("round 1 is already settled", || run.settle_round(1, None));
    assert_fails("round 2 is not finalized", || run.settle_round(2, None));
    let pay = PRICE * 1_000;
    assert_eq!(run.pending(acc(A)).compute_payments.0, pay);
    assert_eq!(bal(&run, A), SHARES_PER_TOKEN * 1_000);
    let storage = run.treasury().round_storage.0 - before.round_storage.0;
    assert_eq!(
        run.treasury().treasury.0,
        before.treasury.0 - 2 * pay - storage
    );
    call(A, 0, 20_000);
    run.claim().detach();
    assert_eq!(transfers(), vec![(acc(A), pay)]);
    call(A, 0, 20_001);
    assert_fails("nothing to claim yet", || run.claim());
}

#[test]
fn an_auditor_dispute_voids_the_credit_and_slashes_the_bond_to_holders() {
    let mut run = run_with_providers();
    agree_and_finalize(&mut run, 1, 4_000);
    let before = run.treasury();
    call("bob.test.near", 0, 5_000);
    assert_fails("only the run's auditors may dispute", || {
        run.dispute(1, acc(B), "bad".into())
    });
    call("auditor.near", 0, 5_000);
    assert_fails("carol.test.near has no receipt in round 1", || {
        run.dispute(1, acc(C), "x".into())
    });
    assert_fails("round 2 is not finalized", || {
        run.dispute(2, acc(B), "x".into())
    });
    run.dispute(1, acc(B), "replayed shard 3: loss differs".into());
    assert_fails("already disputed", || {
        run.dispute(1, acc(B), "again".into())
    });
    call("auditor.near", 0, 4_000 + WINDOW_MS);
    assert_fails("the challenge window of round 1 closed at 14000", || {
        run.dispute(1, acc(A), "late".into())
    });
    // The slashed bond, less the dispute's storage, is revenue: the funder (the only
    // holder) gets it all; the treasury paid nothing.
    let storage = run.treasury().round_storage.0 - before.round_storage.0;
    assert!(storage > 0 && storage < NEAR / 100, "{storage}");
    assert_eq!(run.treasury().treasury.0, before.treasury.0);
    assert_eq!(run.treasury().revenue_in.0, BOND - storage);
    // (less at most one yocto of rounding dust, carried to the next payment).
    let royalties = run.pending(acc("funder.near")).royalties.0;
    assert!(
        royalties + 1 >= BOND - storage && royalties <= BOND - storage,
        "{royalties}"
    );
    assert_eq!(run.treasury().bonds_held.0, 2 * BOND);
    settle_all(&mut run, 1, 4_000 + WINDOW_MS, 0);
    assert!(matches!(status(&run, 1, B), CreditStatus::Disputed { .. }));
    assert!(matches!(status(&run, 1, A), CreditStatus::Settled { .. }));
    assert_eq!(bal(&run, B), 0);
    assert_eq!(run.pending(acc(B)).compute_payments.0, 0);
    // A slashed provider can no longer post receipts, and leaves with its storage only.
    let r = receipt(2, B, ckpt(1), ckpt(2), &[A, B]);
    call("relayer.near", 0, 20_000);
    assert_fails("is not an active provider", || {
        run.submit_receipt(r.clone(), sign(&r, &signing_key(8)))
    });
    call(B, 1, 20_000);
    run.exit_provider().unwrap().detach();
    let back = sent();
    assert!(back > 0 && back < NEAR, "storage only: {back}");
}

#[test]
fn a_paused_run_takes_no_receipts_or_finalization() {
    let mut run = run_with_providers();
    let r = receipt(1, A, ckpt(0), ckpt(1), &[A, B]);
    call("alice.test.near", 0, 4_000);
    assert_fails("only the run's owner", || run.pause());
    call("owner.near", 0, 4_000);
    run.pause();
    assert_fails("already paused", || run.pause());
    call("relayer.near", 0, 4_000);
    assert_fails("paused", || {
        run.submit_receipt(r.clone(), sign(&r, &signing_key(7)))
    });
    assert_fails("paused", || run.finalize_round(1, vec![], None, None));
    assert_fails("only the run's owner", || run.unpause());
    call("owner.near", 0, 4_000);
    run.unpause();
    submit(&mut run, &r, 7, 4_000);
}

#[test]
fn the_treasury_pays_until_it_runs_dry_and_shares_keep_coming() {
    let mut run = run_with_providers();
    let mut now = 4_000;
    let mut round = 1;
    // ~101 NEAR treasury, 2 NEAR per round (2 × 1000 tokens × 1e-3 NEAR): ~51 rounds.
    while run.treasury().treasury.0 > 0 {
        agree_and_finalize_attaching(&mut run, round, now, NEAR);
        now += WINDOW_MS;
        call("anyone.near", NEAR, now);
        run.settle_round(round, None);
        round += 1;
    }
    let paid = run.pending(acc(A)).compute_payments.0 + run.pending(acc(B)).compute_payments.0;
    let t = run.treasury();
    // The treasury went to compute and round storage (the caller attached the
    // storage of the settlement that emptied it), nothing else.
    assert!(paid < t.raised.0 && t.raised.0 - paid <= t.round_storage.0);
    // Spent: the storage of the next round's receipts is the caller's to attach.
    // (Carol's: the mocked chain keeps what a failed call wrote, the real one not.)
    let r = receipt(round, C, ckpt(round - 1), ckpt(round), &[A, B]);
    call("relayer.near", 0, now);
    assert_fails("the run's treasury is spent: attach", || {
        run.submit_receipt(r.clone(), sign(&r, &signing_key(9)))
    });
    agree_and_finalize_attaching(&mut run, round, now, NEAR);
    let held = run.treasury().storage_held.0;
    call("anyone.near", NEAR, now + WINDOW_MS);
    run.settle_round(round, None);
    // The caller paid the storage settling added; the rest of its deposit came back.
    let cost = run.treasury().storage_held.0 - held;
    assert!(cost > 0);
    assert_eq!(transfers(), vec![(acc("anyone.near"), NEAR - cost)]);
    assert_eq!(run.treasury().treasury.0, 0);
    assert_eq!(bal(&run, A), round as u128 * SHARES_PER_TOKEN * 1_000);
    assert!(
        matches!(status(&run, round, A), CreditStatus::Settled { payment, .. } if payment.0 == 0)
    );
}

#[test]
fn a_provider_that_starts_exiting_no_longer_votes_or_earns() {
    // Fails on the old code: an exiting provider's receipt still counted toward
    // the quorum although its bond could leave before the window closed.
    let mut run = run_with_providers();
    let set = [A, B];
    submit(&mut run, &receipt(1, A, ckpt(0), ckpt(1), &set), 7, 4_000);
    submit(&mut run, &receipt(1, B, ckpt(0), ckpt(1), &set), 8, 4_000);
    call(B, 1, 4_500);
    assert!(run.exit_provider().is_none());
    assert_eq!(run.receipt(1, acc(B)).unwrap().stake.0, 0);
    call("anyone.near", 0, 5_000);
    assert_fails("no quorum: 1 agreeing receipts", || {
        run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None)
    });
    submit(&mut run, &receipt(1, C, ckpt(0), ckpt(1), &set), 9, 5_000);
    call("anyone.near", 0, 5_000);
    run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None);
    settle_all(&mut run, 1, 5_000 + WINDOW_MS, 0);
    assert_eq!(paid(&run, 1), vec![acc(A)]);
    assert_eq!(status(&run, 1, B), CreditStatus::Excluded);
}

#[test]
fn receipts_and_rounds_pay_their_storage_from_the_treasury_not_from_money_owed() {
    let mut run = run_with_providers();
    let byte_cost = near_sdk::env::storage_byte_cost().as_yoctonear();
    let r = receipt(1, A, ckpt(0), ckpt(1), &[A, B]);
    let before = run.treasury();
    call("relayer.near", 0, 4_000);
    run.submit_receipt(r.clone(), sign(&r, &signing_key(7)));
    let after = run.treasury();
    // A stored receipt takes a few hundred bytes; the treasury pays them into the
    // storage bucket, so every bucket of money owed stays fully backed.
    let cost = before.treasury.0 - after.treasury.0;
    assert!(cost >= 200 * byte_cost, "receipt storage cost {cost}");
    assert_eq!(after.storage_held.0, before.storage_held.0 + cost);
    assert_eq!(after.round_storage.0, cost);
    // Finalizing stores the finalization and the checkpoint: paid the same way.
    let r = receipt(1, B, ckpt(0), ckpt(1), &[A, B]);
    call("relayer.near", 0, 4_000);
    run.submit_receipt(r.clone(), sign(&r, &signing_key(8)));
    let before = run.treasury();
    call("anyone.near", NEAR, 4_000);
    run.finalize_round(1, vec![blob(A, 1), blob(B, 1)], None, None);
    let after = run.treasury();
    let cost = before.treasury.0 - after.treasury.0;
    assert!(cost >= 100 * byte_cost, "finalization storage cost {cost}");
    assert_eq!(after.storage_held.0, before.storage_held.0 + cost);
    // The treasury paid, so the attached deposit comes back whole.
    assert_eq!(transfers(), vec![(acc("anyone.near"), NEAR)]);
}

#[test]
fn a_slashed_provider_no_longer_counts_toward_the_quorum() {
    let mut run = run_with_providers();
    agree_and_finalize(&mut run, 1, 4_000);
    let set = [A, B];
    submit(&mut run, &receipt(2, A, ckpt(1), ckpt(2), &set), 7, 5_000);
    submit(&mut run, &receipt(2, B, ckpt(1), ckpt(2), &set), 8, 5_000);
    // Bob's round-1 work is disputed before round 2 is finalized: his bond is gone,
    // so his round-2 receipt may not help finalize it.
    call("auditor.near", 0, 6_000);
    run.dispute(1, acc(B), "replayed shard 3: loss differs".into());
    call("anyone.near", 0, 6_000);
    assert_fails("no quorum: 1 agreeing receipts", || {
        run.finalize_round(2, vec![blob(A, 2), blob(B, 2)], None, None)
    });
    // Carol, bonded, agreeing on the same set and result, brings the quorum back
    // (her blob is outside the set, so she is counted but not credited).
    submit(&mut run, &receipt(2, C, ckpt(1), ckpt(2), &set), 9, 6_000);
    call("anyone.near", 0, 6_000);
    run.finalize_round(2, vec![blob(A, 2), blob(B, 2)], None, None);
    settle_all(&mut run, 1, 4_000 + WINDOW_MS, 0);
    settle_all(&mut run, 2, 6_000 + WINDOW_MS, 0);
    assert_eq!(paid(&run, 2), vec![acc(A)]);
    assert_eq!(status(&run, 2, C), CreditStatus::Excluded);
}

#[test]
fn an_auditor_disputes_without_paying_even_once_the_treasury_is_spent() {
    call("factory.test.near", 0, 1_000);
    let mut c = config();
    c.funding_goal.0 = NEAR / 4;
    let mut run = Run::new(c);
    call("funder.near", NEAR / 2, 2_000);
    run.deposit();
    register(&mut run, A, 7, 3_000);
    register(&mut run, B, 8, 3_000);
    // Round 1 pays 1 NEAR per credit: the treasury is spent.
    agree_and_finalize(&mut run, 1, 4_000);
    call("anyone.near", NEAR, 4_000 + WINDOW_MS);
    run.settle_round(1, None);
    assert_eq!(run.treasury().treasury.0, 0);
    agree_and_finalize_attaching(&mut run, 2, 20_000, NEAR);
    let revenue = run.treasury().revenue_in.0;
    call("auditor.near", 0, 21_000);
    run.dispute(2, acc(B), "blob does not reproduce".into());
    let gained = run.treasury().revenue_in.0 - revenue;
    assert!(gained < BOND && gained > BOND - NEAR / 100, "{gained}");
}
