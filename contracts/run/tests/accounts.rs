//! Providers, share-token storage and transfers, owner controls and views: the
//! happy paths and every wrong way to call them.

mod common;
use common::*;
use crowdtrain_run::ProviderStatus;
use near_contract_standards::fungible_token::core::FungibleTokenCore;
use near_contract_standards::fungible_token::metadata::FungibleTokenMetadataProvider;
use near_contract_standards::fungible_token::resolver::FungibleTokenResolver;
use near_contract_standards::storage_management::StorageManagement;
use near_sdk::json_types::U128;
use near_sdk::{NearToken, PromiseResult, PublicKey};

#[test]
fn a_provider_registers_with_its_bond_rotates_its_key_and_leaves_after_the_window() {
    let mut run = new_run();
    call("gpu.near", BOND, 2_000);
    assert_fails("attach ", || {
        run.register_provider(public_key(&signing_key(1)), "node".into())
    });
    call("gpu.near", BOND + NEAR, 2_000);
    let secp: PublicKey = "secp256k1:qMoRgcoXai4mBPsdbHi1wfyxF9TdbPCF4qSDQTRP3TfescSRoUdSx6nmeQoN3aiwGzwMyGXAb1gUjBTv5AY8DXj"
        .parse()
        .unwrap();
    assert_fails("must be an ed25519 key", || {
        run.register_provider(secp, "node".into())
    });
    assert_fails("node_id must be 1 to 256", || {
        run.register_provider(public_key(&signing_key(1)), String::new())
    });
    run.register_provider(public_key(&signing_key(1)), "node-gpu".into());
    let refund = sent();
    assert!(
        refund > 0 && refund < NEAR,
        "the excess comes back: {refund}"
    );
    assert_eq!(run.treasury().bonds_held.0, BOND);
    call("gpu.near", BOND + NEAR, 2_000);
    assert_fails("already registered as a provider", || {
        run.register_provider(public_key(&signing_key(1)), "node".into())
    });

    let list = run.providers(None, None);
    assert_eq!(
        (list.len(), list[0].account_id.as_str(), list[0].index),
        (1, "gpu.near", 0)
    );
    assert_eq!(list[0].signing_key, public_key(&signing_key(1)));
    assert!(run.providers(Some(1), Some(10)).is_empty());

    call("stranger.near", 1, 2_100);
    assert_fails("stranger.near is not a registered provider", || {
        run.rotate_key(public_key(&signing_key(2)))
    });
    call("gpu.near", 0, 2_100);
    assert_fails("exactly 1 yoctoNEAR", || {
        run.rotate_key(public_key(&signing_key(2)))
    });
    call("gpu.near", 1, 2_100);
    run.rotate_key(public_key(&signing_key(2)));
    assert_eq!(
        run.providers(None, None)[0].signing_key,
        public_key(&signing_key(2))
    );

    call("gpu.near", 0, 3_000);
    assert_fails("exactly 1 yoctoNEAR", || run.exit_provider());
    call("gpu.near", 1, 3_000);
    assert!(run.exit_provider().is_none());
    assert_eq!(
        run.providers(None, None)[0].status,
        ProviderStatus::Exiting { since_ms: 3_000 }
    );
    assert_fails("only an active provider can rotate", || {
        run.rotate_key(public_key(&signing_key(3)))
    });
    call("gpu.near", 1, 3_000 + WINDOW_MS - 1);
    assert_fails("the bond unlocks at 13000", || run.exit_provider());
    call("gpu.near", 1, 3_000 + WINDOW_MS);
    run.exit_provider().unwrap().detach();
    let back = sent();
    assert!(
        back > BOND && back < BOND + NEAR / 100,
        "bond and storage back: {back}"
    );
    assert!(run.providers(None, None).is_empty());
    assert_eq!(run.treasury().bonds_held.0, 0);
}

#[test]
fn registration_paused_is_refused() {
    let mut run = new_run();
    call("owner.near", 0, 2_000);
    run.pause();
    call("gpu.near", BOND + NEAR, 2_000);
    assert_fails("paused", || {
        run.register_provider(public_key(&signing_key(1)), "n".into())
    });
}

#[test]
fn storage_registration_follows_nep145() {
    let mut run = new_run();
    let bounds = run.storage_balance_bounds();
    let cost = bounds.min.as_yoctonear();
    assert_eq!(bounds.max, Some(bounds.min));
    call("bob.near", cost - 1, 2_000);
    assert_fails("attach at least", || run.storage_deposit(None, None));
    // Registering someone else; the excess comes back to the payer.
    call("alice.near", cost + 5, 2_000);
    let b = run.storage_deposit(Some(acc("bob.near")), None);
    assert_eq!(
        (b.total.as_yoctonear(), b.available.as_yoctonear()),
        (cost, 0)
    );
    assert_eq!(transfers(), vec![(acc("alice.near"), 5)]);
    call("alice.near", 7, 2_000);
    run.storage_deposit(Some(acc("bob.near")), Some(true));
    assert_eq!(
        transfers(),
        vec![(acc("alice.near"), 7)],
        "already registered: all back"
    );
    assert!(run.storage_balance_of(acc("carol.near")).is_none());

    call("bob.near", 1, 2_000);
    assert_fails("no storage deposit is available", || {
        run.storage_withdraw(Some(NearToken::from_yoctonear(1)))
    });
    run.storage_withdraw(None);
    call("bob.near", 0, 2_000);
    assert_fails("Requires attached deposit of exactly 1 yoctoNEAR", || {
        run.storage_unregister(None)
    });
    call("carol.near", 1, 2_000);
    assert!(!run.storage_unregister(None), "not registered");
    call("carol.near", 1, 2_000);
    assert_fails("carol.near is not registered", || {
        run.storage_withdraw(None)
    });

    // With shares: refused unless forced, and forcing burns them.
    call("alice.near", NEAR, 2_000);
    run.deposit();
    call("alice.near", 1, 2_000);
    xfer(&mut run, "bob.near", 1_000);
    call("bob.near", 1, 2_000);
    assert_fails("still holds 1000 shares", || run.storage_unregister(None));
    let before = supply(&run);
    assert!(run.storage_unregister(Some(true)));
    assert_eq!(
        sent(),
        cost + 1,
        "the storage deposit and the attached yocto"
    );
    assert_eq!(supply(&run), before - 1_000);
    assert!(run.storage_balance_of(acc("bob.near")).is_none());
}

#[test]
fn transfers_need_one_yocto_registration_and_shares() {
    let mut run = new_run();
    call("alice.near", NEAR, 2_000);
    run.deposit();
    let have = bal(&run, "alice.near");
    call("alice.near", 0, 2_000);
    assert_fails("exactly 1 yoctoNEAR", || xfer(&mut run, "bob.near", 1));
    call("alice.near", 1, 2_000);
    assert_fails("bob.near is not registered with the share token", || {
        xfer(&mut run, "bob.near", 1)
    });
    assert_fails("sender and receiver must differ", || {
        xfer(&mut run, "alice.near", 1)
    });
    call("bob.near", NEAR, 2_000);
    run.deposit();
    call("alice.near", 1, 2_000);
    assert_fails("fewer than the", || xfer(&mut run, "bob.near", have + 1));
    assert_fails("more than 0 shares", || xfer(&mut run, "bob.near", 0));
    xfer(&mut run, "bob.near", have);
    assert_eq!(bal(&run, "alice.near"), 0);
    let m = run.ft_metadata();
    assert_eq!((m.decimals, m.spec.as_str()), (24, "ft-1.0.0"));
}

#[test]
fn ft_transfer_call_returns_unused_shares_and_a_failed_receiver_gets_none() {
    let mut run = new_run();
    call("alice.near", NEAR, 2_000);
    run.deposit();
    call("pool.near", NEAR, 2_000);
    run.deposit();
    let (a, p) = (bal(&run, "alice.near"), bal(&run, "pool.near"));
    call("alice.near", 1, 2_000);
    let _ = run.ft_transfer_call(acc("pool.near"), U128(1_000), None, "stake".into());
    let used = near_sdk::serde_json::to_vec(&U128(400)).unwrap();
    call_with(RUN, 0, 2_000, vec![PromiseResult::Successful(used)]);
    assert_eq!(
        run.ft_resolve_transfer(acc("alice.near"), acc("pool.near"), U128(1_000))
            .0,
        600
    );
    assert_eq!(
        (bal(&run, "alice.near"), bal(&run, "pool.near")),
        (a - 600, p + 600)
    );
    call("alice.near", 1, 2_000);
    let _ = run.ft_transfer_call(acc("pool.near"), U128(1_000), None, String::new());
    call_with(RUN, 0, 2_000, vec![PromiseResult::Failed]);
    assert_eq!(
        run.ft_resolve_transfer(acc("alice.near"), acc("pool.near"), U128(1_000))
            .0,
        0
    );
    assert_eq!(bal(&run, "alice.near"), a - 600);
}

#[test]
fn claims_pay_royalties_and_a_failed_transfer_restores_them() {
    let mut run = new_run();
    call("alice.near", 3 * NEAR, 2_000);
    run.deposit();
    call("bob.near", NEAR, 2_000);
    run.deposit();
    call("alice.near", 0, 2_000);
    assert_fails("nothing to claim yet", || run.claim());
    call("stranger.near", 0, 2_000);
    assert_fails("not registered", || run.claim());
    call("api.near", 0, 2_000);
    assert_fails("attach the revenue", || run.pay_revenue());
    call("api.near", 4 * NEAR, 2_000);
    run.pay_revenue();
    let (a, b) = (
        run.pending(acc("alice.near")).royalties.0,
        run.pending(acc("bob.near")).royalties.0,
    );
    assert!(a + b <= 4 * NEAR && a + b >= 4 * NEAR - 2);
    let (ba, bb, s) = (bal(&run, "alice.near"), bal(&run, "bob.near"), supply(&run));
    let share = |x: u128| x as f64 / (4 * NEAR) as f64;
    assert!(
        (share(a) - ba as f64 / s as f64).abs() < 1e-12,
        "pro rata: {a}"
    );
    assert!(
        (share(b) - bb as f64 / s as f64).abs() < 1e-12,
        "pro rata: {b}"
    );
    call("alice.near", 0, 2_000);
    run.claim().detach();
    assert_eq!(transfers(), vec![(acc("alice.near"), a)]);
    assert_eq!(run.pending(acc("alice.near")).royalties.0, 0);
    call_with(RUN, 0, 2_000, vec![PromiseResult::Failed]);
    assert!(!run.on_claim(acc("alice.near"), U128(a), U128(0)));
    assert_eq!(run.pending(acc("alice.near")).royalties.0, a);
    assert_eq!(run.treasury().royalties_claimed.0, 0);
    assert_eq!(run.pending(acc("nobody.near")).royalties.0, 0);
}

#[test]
fn the_owner_names_the_auditors() {
    let mut run = new_run();
    call("auditor.near", 0, 2_000);
    assert_fails("only the run's owner", || {
        run.set_auditors(vec![acc("mallory.near")])
    });
    call("owner.near", 0, 2_000);
    run.set_auditors(vec![acc("a2.near")]);
    // The change waits the auditor delay (default: the challenge window).
    assert_eq!(run.run_info().config.auditors, vec![acc("auditor.near")]);
    call("anyone.near", 0, 2_000 + WINDOW_MS);
    assert_eq!(run.run_info().config.auditors, vec![acc("a2.near")]);
    call("owner.near", 0, 2_000);
    assert_fails("at most 32 auditors", || {
        run.set_auditors((0..33).map(|i| acc(&format!("a{i}.near"))).collect())
    });
}

#[test]
fn views_describe_a_fresh_run() {
    let run = new_run();
    let info = run.run_info();
    assert_eq!(
        (
            info.last_finalized_round,
            info.providers,
            info.total_supply.0
        ),
        (0, 0, 0)
    );
    assert_eq!(info.checkpoint.hash, ckpt(0));
    assert_eq!(run.checkpoint(0).unwrap().uri, "sha256:initial");
    assert!(
        run.checkpoint(1).is_none()
            && run.round_view(1).is_none()
            && run.receipts(1, None, None).is_empty()
    );
    assert_eq!(run.treasury().treasury.0, 0);
}

#[test]
fn a_receiver_that_leaves_mid_call_keeps_nothing_and_the_books_still_balance() {
    let mut run = new_run();
    call("alice.near", NEAR, 2_000);
    run.deposit();
    call("pool.near", NEAR, 2_000);
    run.deposit();
    let a = bal(&run, "alice.near");
    let supply_before = supply(&run);
    call("alice.near", 1, 2_000);
    let _ = run.ft_transfer_call(acc("pool.near"), U128(1_000), None, "stake".into());
    // Revenue arrives while the shares sit with the pool, then the pool leaves with force.
    call("api.near", NEAR, 2_000);
    run.pay_revenue();
    let pool_royalties = run.pending(acc("pool.near")).royalties.0;
    call("pool.near", 1, 2_000);
    assert!(run.storage_unregister(Some(true)));
    let paid = sent();
    // (with the 1 yoctoNEAR attached, as near-contract-standards returns it)
    assert_eq!(
        paid,
        run.funding_status().storage_cost.0 + pool_royalties + 1
    );
    // The pool wanted 600 back for alice: it holds nothing now, so nothing comes back.
    let unused = near_sdk::serde_json::to_vec(&U128(600)).unwrap();
    call_with(RUN, 0, 2_000, vec![PromiseResult::Successful(unused)]);
    assert_eq!(
        run.ft_resolve_transfer(acc("alice.near"), acc("pool.near"), U128(1_000))
            .0,
        1_000
    );
    assert_eq!(bal(&run, "alice.near"), a - 1_000);
    assert_eq!(
        supply(&run),
        supply_before - (NEAR - run.funding_status().storage_cost.0) - 1_000
    );
    // Alice alone holds shares now: the next payment is all hers (less dust).
    let before = run.pending(acc("alice.near")).royalties.0;
    call("api.near", NEAR, 2_000);
    run.pay_revenue();
    let gained = run.pending(acc("alice.near")).royalties.0 - before;
    assert!(gained + 2 >= NEAR && gained <= NEAR, "{gained}");
    // A second claim before the first one's callback finds nothing to pay twice.
    call("alice.near", 0, 2_000);
    run.claim().detach();
    call("alice.near", 0, 2_000);
    assert_fails("nothing to claim yet", || run.claim());
}
