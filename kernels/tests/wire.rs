//! The wire format: round trips, and every malformed blob refused with a reason.

mod common;

use common::lcg_values;
use crowdtrain_kernels::{KernelError, QuantConfig, QuantizedBlob, quantize};
use sha2::{Digest, Sha256};

fn malformed(bytes: &[u8]) -> String {
    match QuantizedBlob::from_bytes(bytes) {
        Err(KernelError::Malformed(why)) => why,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn blobs_round_trip_through_bytes() {
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        for n in [0, 1, 63, 64, 257, 5000] {
            let blob = quantize(&lcg_values(n, 3, 1.0), cfg, 8).unwrap();
            let bytes = blob.to_bytes();
            assert_eq!(bytes.len(), blob.wire_len());
            let back = QuantizedBlob::from_bytes(&bytes).unwrap();
            assert_eq!(back, blob);
            assert_eq!(back.to_bytes(), bytes);
            assert_eq!(blob.hash(), <[u8; 32]>::from(Sha256::digest(&bytes)));
        }
    }
}

#[test]
fn compression_ratios() {
    let n = 1 << 16;
    let x = lcg_values(n, 1, 1.0);
    let int8 = quantize(&x, QuantConfig::int8(), 0).unwrap().wire_len();
    let int4 = quantize(&x, QuantConfig::int4(), 0).unwrap().wire_len();
    let raw = 4 * n;
    assert!(
        raw as f64 / int8 as f64 > 3.9,
        "int8 ratio {}",
        raw as f64 / int8 as f64
    );
    assert!(
        raw as f64 / int4 as f64 > 7.0,
        "int4 ratio {}",
        raw as f64 / int4 as f64
    );
}

#[test]
fn every_truncation_is_refused() {
    for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
        let bytes = quantize(&lcg_values(301, 3, 1.0), cfg, 8)
            .unwrap()
            .to_bytes();
        for cut in 0..bytes.len() {
            malformed(&bytes[..cut]);
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(malformed(&long).contains("bytes"));
    }
}

#[test]
fn inconsistent_headers_are_refused() {
    let bytes = quantize(&lcg_values(100, 3, 1.0), QuantConfig::int8(), 0)
        .unwrap()
        .to_bytes();
    let with = |at: usize, b: &[u8]| {
        let mut v = bytes.clone();
        v[at..at + b.len()].copy_from_slice(b);
        v
    };
    assert!(malformed(&with(0, b"XTQB")).contains("magic"));
    assert!(malformed(&with(4, &[2])).contains("version"));
    assert!(malformed(&with(5, &[5])).contains("bits"));
    assert!(malformed(&with(6, &[1])).contains("reserved"));
    assert!(malformed(&with(8, &0u32.to_le_bytes())).contains("block"));
    assert!(malformed(&with(8, &100u32.to_le_bytes())).contains("block"));
    // Int4 with the int8 sizes: the length no longer adds up.
    assert!(malformed(&with(5, &[4])).contains("bytes"));
    assert!(malformed(&with(12, &101u64.to_le_bytes())).contains("bytes"));
    // A hostile count must not overflow or allocate.
    assert!(malformed(&with(12, &u64::MAX.to_le_bytes())).contains("bytes"));
}

#[test]
fn values_the_encoder_never_writes_are_refused() {
    let blob = quantize(&lcg_values(600, 3, 1.0), QuantConfig::int8(), 0).unwrap();
    let bytes = blob.to_bytes();
    let data_at = bytes.len() - 600;
    for (at, bad, what) in [
        (20, f32::NAN.to_le_bytes(), "scale 0"),
        (24, f32::INFINITY.to_le_bytes(), "scale 1"),
        (20, (-1.0f32).to_le_bytes(), "scale 0"),
        (20, (-0.0f32).to_le_bytes(), "scale 0"),
    ] {
        let mut v = bytes.clone();
        v[at..at + 4].copy_from_slice(&bad);
        assert!(malformed(&v).contains(what));
    }
    let mut v = bytes.clone();
    v[data_at + 7] = 0x80;
    assert!(malformed(&v).contains("-128"));

    let blob = quantize(&lcg_values(101, 3, 1.0), QuantConfig::int4(), 0).unwrap();
    let bytes = blob.to_bytes();
    let last = bytes.len() - 1;
    let mut v = bytes.clone();
    v[last - 3] = 0x8F & v[last - 3] | 0x80;
    assert!(malformed(&v).contains("-8"));
    let mut v = bytes.clone();
    v[last] |= 0x10;
    assert!(malformed(&v).contains("pad"));
}
