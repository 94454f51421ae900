//! Fixed test vectors: a receipt → its borsh bytes → its signing hash → an ed25519
//! signature from a fixed key. The agent signs and the contract verifies these exact
//! bytes; if an encoding ever changes, this test fails before a chain does.

use crowdtrain_protocol::{Receipt, blob_set_digest, sha256};
use ed25519_dalek::{Signer, SigningKey, Verifier};

/// The secret seed of the fixed test key (never used outside tests).
const SEED: [u8; 32] = [7u8; 32];

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

const BYTES_HEX: &str = concat!(
    "1600000064656d6f2e666163746f72792e746573742e6e65617203000000000000000f000000616c6963652e746573742e6e656172",
    "fbddd9cb323e4849bad1ac0b512e35fab508b3c4581e7bee6967b8ceff9c812e17a06c5e502509e0ee226f531e4477fce4fab1cbd810779bd6664943f4f5acf3",
    "10818b70bae6ef524565c5a954335aa06e474a9d101545876ad0d35fbc85713d0dcb61197c5d73b121cf7384bb68ae24d18c00f0c2acb6f5c6483f456bb1fbf3",
    "3200000000400600000000000000504000002040005e56eea1010000"
);
const SIGNING_HASH: &str = "b90758027b01f3b9c4df4ef28b8f91f49a68f8e356a7a8c59f93c861f51bb8e6";
const BLOB_SET: &str = "0dcb61197c5d73b121cf7384bb68ae24d18c00f0c2acb6f5c6483f456bb1fbf3";
const PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
const SIGNATURE: &str = concat!(
    "e1f2edf67b6e9423e5f1459906b760c7210f222674e508ab012faa306ebbf382",
    "1235b8be59cfee64b02ab4fcff2f8ff94b8626bff93d87b08d8c74c90cf8ec0b"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn receipt_bytes_hash_and_signature_are_pinned() {
    let r = vector_receipt();
    let key = SigningKey::from_bytes(&SEED);
    let sig = key.sign(&r.signing_hash().0);
    assert_eq!(hex(&r.to_bytes()), BYTES_HEX);
    assert_eq!(r.signing_hash().to_hex(), SIGNING_HASH);
    assert_eq!(r.blob_set.to_hex(), BLOB_SET);
    assert_eq!(hex(key.verifying_key().as_bytes()), PUBLIC_KEY);
    assert_eq!(hex(&sig.to_bytes()), SIGNATURE);
}

#[test]
fn the_pinned_signature_verifies_and_a_changed_receipt_does_not() {
    let r = vector_receipt();
    let key = SigningKey::from_bytes(&SEED);
    let sig = key.sign(&r.signing_hash().0);
    let pk = key.verifying_key();
    assert!(pk.verify(&r.signing_hash().0, &sig).is_ok());

    // The same receipt presented to another run, or for another round, fails.
    let mut other_run = r.clone();
    other_run.run = "other.factory.test.near".into();
    assert!(pk.verify(&other_run.signing_hash().0, &sig).is_err());
    let mut other_round = r.clone();
    other_round.round += 1;
    assert!(pk.verify(&other_round.signing_hash().0, &sig).is_err());
}

#[test]
fn borsh_round_trips_and_refuses_truncation() {
    let r = vector_receipt();
    let bytes = r.to_bytes();
    assert_eq!(borsh::from_slice::<Receipt>(&bytes).unwrap(), r);
    assert!(borsh::from_slice::<Receipt>(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn blob_set_digest_ignores_order_and_duplicates_but_not_membership() {
    let (a, b, c) = (sha256(b"a"), sha256(b"b"), sha256(b"c"));
    assert_eq!(blob_set_digest(&[a, b, c]), blob_set_digest(&[c, a, b]));
    assert_eq!(blob_set_digest(&[a, b]), blob_set_digest(&[b, a, a]));
    assert_ne!(blob_set_digest(&[a, b]), blob_set_digest(&[a, b, c]));
    assert_ne!(blob_set_digest(&[]), blob_set_digest(&[a]));
}

#[test]
fn non_finite_losses_are_detected() {
    let mut r = vector_receipt();
    assert!(r.losses_are_finite());
    r.loss_end = f32::NAN;
    assert!(!r.losses_are_finite());
    r.loss_end = f32::INFINITY;
    assert!(!r.losses_are_finite());
}

#[test]
fn json_form_uses_hex_hashes() {
    let r = vector_receipt();
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["blob_set"], BLOB_SET);
    let back: Receipt = serde_json::from_value(json).unwrap();
    assert_eq!(back, r);
    let mut bad = serde_json::to_value(&r).unwrap();
    bad["blob"] = "not-a-hash".into();
    let err = serde_json::from_value::<Receipt>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("64 hex characters"), "{err}");
}
