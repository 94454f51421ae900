//! Swarms on loopback (relays off, nothing leaves the machine): blobs go round, a late
//! joiner gets a checkpoint, and peers that lie, stay silent or equivocate are left out
//! without anyone waiting on them.

use super::announce::Kind;
use super::*;
use crate::provider::peers::Peers;
use crate::round::PeerBlob;
use bytes::Bytes;
use std::time::Instant;

const RUN: &str = "swarm.test.near";

/// A swarm with node key `seed` on a free loopback port, its store in a temp folder.
fn open(seed: u8, providers: &[ProviderInfo]) -> (tempfile::TempDir, Swarm) {
    let dir = tempfile::tempdir().unwrap();
    let config = SwarmConfig {
        download_timeout: Duration::from_secs(5),
        announce_every: Duration::from_millis(300),
        ..SwarmConfig::default()
    };
    let swarm = Swarm::open(
        RUN,
        SecretKey::from_bytes(&[seed; 32]),
        dir.path(),
        providers,
        config,
    )
    .unwrap();
    (dir, swarm)
}

/// The provider list a run contract would show for these swarms.
fn registered(nodes: &[(&str, &Swarm)]) -> Vec<ProviderInfo> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, (name, s))| ProviderInfo {
            account: format!("{name}.test.near"),
            index: i as u32,
            signing_key: String::new(),
            node_id: node::node_id(s.id(), s.bound().first().copied()),
            active: true,
        })
        .collect()
}

/// Polls `f` every 100 ms until it gives a value, for at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Broadcasts `a` as its author once more (an equivocator repeating itself).
fn shout(s: &Swarm, a: &Announcement) {
    let bytes = s.heard.lock().unwrap().signed(a.clone(), RUN, &s.key);
    let sender = s.sender.clone();
    s.rt.block_on(sender.broadcast(bytes.into())).unwrap();
}

fn hashes(blobs: &[PeerBlob]) -> BTreeSet<Hash32> {
    blobs.iter().map(|b| sha256(&b.bytes)).collect()
}

#[test]
fn three_nodes_exchange_blobs_and_a_late_joiner_gets_the_checkpoint() {
    let (_a_dir, a) = open(1, &[]);
    let (_b_dir, b) = open(2, &[]);
    let (_c_dir, c) = open(3, &[]);
    let nodes = [("a", &a), ("b", &b), ("c", &c)];
    let providers = registered(&nodes);
    let payloads: Vec<Vec<u8>> = (0..3u8)
        .map(|i| (0..200_000u32).map(|j| (j as u8) ^ i).collect())
        .collect();
    let mut want = BTreeSet::new();
    for ((_, s), p) in nodes.iter().zip(&payloads) {
        want.insert(s.publish_blob(1, p.clone().into()).unwrap());
    }
    for (name, s) in nodes {
        let got = wait_for(30, &format!("{name}'s three blobs"), || {
            let blobs = s.round_blobs(1, &providers).unwrap();
            (blobs.len() == 3).then_some(blobs)
        });
        assert_eq!(hashes(&got), want, "{name} has every blob, byte for byte");
        let accounts: BTreeSet<&str> = got.iter().map(|b| b.peer.as_str()).collect();
        assert_eq!(
            accounts,
            ["a.test.near", "b.test.near", "c.test.near"].into()
        );
    }
    // No blob of another round.
    assert!(a.round_blobs(2, &providers).unwrap().is_empty());

    // A checkpoint published by one; a node that joins afterwards hears of it (the
    // announcement is repeated) and fetches it.
    let checkpoint: Vec<u8> = (0..300_000u32).map(|j| (j % 251) as u8).collect();
    let hash = sha256(&checkpoint);
    b.publish_checkpoint(hash, checkpoint.clone().into())
        .unwrap();
    let (_d_dir, d) = open(4, &providers);
    let mut with_d = nodes.to_vec();
    with_d.push(("d", &d));
    let providers = registered(&with_d);
    let fetched = wait_for(30, "the late joiner's checkpoint", || {
        d.fetch_checkpoint(hash, &providers).unwrap()
    });
    assert_eq!(fetched, checkpoint);
    assert!(
        d.fetch_checkpoint(sha256(b"never published"), &providers)
            .unwrap()
            .is_none()
    );
}

#[test]
fn liars_silent_peers_and_equivocators_are_left_out_without_waiting() {
    let (_h_dir, honest) = open(11, &[]);
    let (_l_dir, liar) = open(12, &[]);
    let (_s_dir, silent) = open(13, &[]);
    let (_e_dir, twofaced) = open(14, &[]);
    let (_o_dir, observer) = open(15, &[]);
    let nodes = [
        ("honest", &honest),
        ("liar", &liar),
        ("silent", &silent),
        ("twofaced", &twofaced),
        ("observer", &observer),
    ];
    let providers = registered(&nodes);
    for (_, s) in &nodes {
        s.meet(&providers);
    }
    let good = honest
        .publish_blob(1, Bytes::from_static(b"an honest pseudo-gradient"))
        .unwrap();
    // The liar serves bytes whose sha256 is not the one it announces.
    let served = liar
        .add("round-1/x", Bytes::from_static(b"what the liar serves"))
        .unwrap();
    liar.announce(Announcement {
        kind: Kind::Blob,
        round: 1,
        sha256: sha256(b"what the liar claims"),
        blake3: served,
        len: b"what the liar serves".len() as u64,
        seq: 0,
        author: liar.id(),
    });
    // The silent one announces a blob it does not have.
    silent.announce(Announcement {
        kind: Kind::Blob,
        round: 1,
        sha256: sha256(b"never served"),
        blake3: iroh_blobs::Hash::new(b"never served"),
        len: 12,
        seq: 0,
        author: silent.id(),
    });
    // The two-faced one serves and announces two different blobs for the same round.
    let versions: Vec<Announcement> = [&b"version one"[..], &b"version two"[..]]
        .iter()
        .map(|v| Announcement {
            kind: Kind::Blob,
            round: 1,
            sha256: sha256(v),
            blake3: twofaced
                .add(&format!("round-1/{}", sha256(v)), Bytes::copy_from_slice(v))
                .unwrap(),
            len: v.len() as u64,
            seq: 0,
            author: twofaced.id(),
        })
        .collect();
    // Once the observer has heard both, the author is out of the round.
    wait_for(20, "the observer to hear both versions", || {
        for v in &versions {
            shout(&twofaced, v);
        }
        let heard = observer.heard.lock().unwrap();
        heard
            .equivocated
            .contains(&(1, twofaced.id()))
            .then_some(())
    });

    // The observer gets the honest blob; every call returns at once, whatever the
    // others do, and none of them is ever in the set.
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(8) {
        let t = Instant::now();
        let blobs = observer.round_blobs(1, &providers).unwrap();
        slowest = slowest.max(t.elapsed());
        let got = hashes(&blobs);
        assert!(
            got.is_subset(&[good].into()),
            "only the honest blob may be used: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        hashes(&observer.round_blobs(1, &providers).unwrap()),
        [good].into(),
        "the honest blob arrived"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "round_blobs waited {slowest:?} on a peer"
    );
    // A provider the chain lists as inactive (exited, slashed) is not gathered either.
    let mut inactive = providers.clone();
    inactive[0].active = false;
    assert!(observer.round_blobs(1, &inactive).unwrap().is_empty());
}

#[test]
fn a_node_that_joins_after_many_rounds_hears_every_kept_blob() {
    let nodes: Vec<(tempfile::TempDir, Swarm)> =
        (21..24u8).map(|seed| open_keeping(seed, 8)).collect();
    let named: Vec<(&str, &Swarm)> = ["a", "b", "c"]
        .into_iter()
        .zip(nodes.iter().map(|(_, s)| s))
        .collect();
    let providers = registered(&named);
    for (_, s) in &named {
        s.meet(&providers);
    }
    for round in 1..=8u64 {
        for (name, s) in &named {
            s.publish_blob(round, format!("{name} round {round}").into_bytes().into())
                .unwrap();
            let ck = format!("checkpoint {round}");
            s.publish_checkpoint(sha256(ck.as_bytes()), ck.into_bytes().into())
                .unwrap();
        }
    }
    let (_late_dir, late) = open(29, &providers);
    for round in [1u64, 5, 8] {
        let got = wait_for(30, &format!("round {round}'s three blobs"), || {
            let blobs = late.round_blobs(round, &providers).unwrap();
            (blobs.len() == 3).then_some(blobs)
        });
        assert_eq!(got.len(), 3);
    }
}

/// [`open`] with blobs of `keep` rounds kept.
fn open_keeping(seed: u8, keep: u64) -> (tempfile::TempDir, Swarm) {
    let dir = tempfile::tempdir().unwrap();
    let config = SwarmConfig {
        download_timeout: Duration::from_secs(5),
        announce_every: Duration::from_millis(300),
        keep_rounds: keep,
        ..SwarmConfig::default()
    };
    let swarm = Swarm::open(
        RUN,
        SecretKey::from_bytes(&[seed; 32]),
        dir.path(),
        &[],
        config,
    )
    .unwrap();
    (dir, swarm)
}

#[test]
fn a_provider_answers_directly_for_its_own_announcements_only() {
    let (_a_dir, a) = open(31, &[]);
    let (_b_dir, b) = open(32, &[]);
    let providers = registered(&[("a", &a), ("b", &b)]);
    b.meet(&providers);
    let sha = a
        .publish_blob(3, Bytes::from_static(b"a's blob of round 3"))
        .unwrap();
    let checkpoint = sha256(b"a checkpoint");
    a.publish_checkpoint(checkpoint, Bytes::from_static(b"a checkpoint"))
        .unwrap();
    let endpoint = b.router.as_ref().unwrap().endpoint().clone();
    let ask = |q| b.rt.block_on(ask::ask(&endpoint, a.id(), q, RUN)).unwrap();
    let blobs = ask(Question::Blobs(3));
    assert_eq!(blobs.len(), 1);
    assert_eq!((blobs[0].sha256, blobs[0].author), (sha, a.id()));
    assert!(
        ask(Question::Blobs(4)).is_empty(),
        "nothing for another round"
    );
    let cps = ask(Question::Checkpoint(checkpoint));
    assert_eq!(cps.len(), 1);
    assert!(ask(Question::Checkpoint(sha256(b"other"))).is_empty());
}

#[test]
fn a_restarted_node_still_announces_what_it_published() {
    let dir = tempfile::tempdir().unwrap();
    let reopen = || {
        let config = SwarmConfig {
            announce_every: Duration::from_millis(300),
            ..SwarmConfig::default()
        };
        Swarm::open(
            RUN,
            SecretKey::from_bytes(&[41; 32]),
            dir.path(),
            &[],
            config,
        )
        .unwrap()
    };
    let first = reopen();
    let sha = first
        .publish_blob(2, Bytes::from_static(b"published before the restart"))
        .unwrap();
    let checkpoint = sha256(b"a checkpoint before the restart");
    first
        .publish_checkpoint(
            checkpoint,
            Bytes::from_static(b"a checkpoint before the restart"),
        )
        .unwrap();
    drop(first);
    let again = reopen();
    let restored: Vec<(Kind, u64)> = again
        .heard
        .lock()
        .unwrap()
        .own
        .iter()
        .map(|a| (a.kind, a.round))
        .collect();
    assert_eq!(restored.len(), 2, "restored {restored:?}");
    let (_b_dir, b) = open(42, &[]);
    let providers = registered(&[("a", &again), ("b", &b)]);
    b.meet(&providers);
    let got = wait_for(20, "the blob published before the restart", || {
        let blobs = b.round_blobs(2, &providers).unwrap();
        (!blobs.is_empty()).then_some(blobs)
    });
    assert_eq!(hashes(&got), [sha].into());
    let bytes = wait_for(20, "the checkpoint published before the restart", || {
        b.fetch_checkpoint(checkpoint, &providers).unwrap()
    });
    assert_eq!(bytes, b"a checkpoint before the restart");
}

#[test]
fn a_blob_announced_larger_than_the_run_allows_is_never_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let config = SwarmConfig {
        max_blob_bytes: 1_000,
        ..SwarmConfig::default()
    };
    let observer = Swarm::open(
        RUN,
        SecretKey::from_bytes(&[51; 32]),
        dir.path(),
        &[],
        config,
    )
    .unwrap();
    let (_f_dir, flooder) = open(52, &[]);
    let (_h_dir, honest) = open(53, &[]);
    let providers = registered(&[
        ("observer", &observer),
        ("flooder", &flooder),
        ("honest", &honest),
    ]);
    observer.meet(&providers);
    flooder.publish_blob(1, vec![7u8; 2_000].into()).unwrap();
    let small = honest.publish_blob(1, vec![9u8; 500].into()).unwrap();
    let got = wait_for(20, "the honest blob", || {
        let blobs = observer.round_blobs(1, &providers).unwrap();
        (!blobs.is_empty()).then_some(blobs)
    });
    std::thread::sleep(Duration::from_secs(2));
    let got_later = observer.round_blobs(1, &providers).unwrap();
    assert_eq!(hashes(&got), [small].into());
    assert_eq!(
        hashes(&got_later),
        [small].into(),
        "the oversized blob stays out"
    );
    assert!(
        observer
            .fetched
            .lock()
            .unwrap()
            .keys()
            .all(|(_, a)| *a != flooder.id()),
        "not even a download was started"
    );
}

#[test]
fn a_peer_that_serves_a_longer_blob_than_it_announced_cannot_fill_the_disk() {
    let (_o_dir, observer) = open(61, &[]);
    let (_f_dir, flooder) = open(62, &[]);
    let providers = registered(&[("observer", &observer), ("flooder", &flooder)]);
    observer.meet(&providers);
    flooder.meet(&providers);
    // 1 MiB behind an announcement of 500 bytes (under any cap).
    let big = vec![3u8; 1 << 20];
    let served = flooder.add("round-1/big", big.clone().into()).unwrap();
    flooder.announce(Announcement {
        kind: Kind::Blob,
        round: 1,
        sha256: sha256(&big[..500]),
        blake3: served,
        len: 500,
        seq: 0,
        author: flooder.id(),
    });
    // Downloads are tried (every 2 s) for 6 s; the blob is never used, and never
    // stored whole.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        assert!(observer.round_blobs(1, &providers).unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        observer
            .fetched
            .lock()
            .unwrap()
            .contains_key(&(1, flooder.id())),
        "a download was tried"
    );
    let status = observer
        .rt
        .block_on(observer.store.blobs().status(served))
        .unwrap();
    assert!(
        matches!(status, iroh_blobs::api::proto::BlobStatus::Partial { .. }),
        "only part of the blob may be stored, not {status:?}"
    );
}
