//! Fixed test vectors: input → bytes → sha256. These pin the wire format and the
//! arithmetic forever; the agent and any other implementation may rely on them.
//! If one of these changes, the format changed: bump `blob::VERSION` instead.

use crowdtrain_kernels::{Bits, QuantConfig, QuantizedBlob, quantize};

/// Exact f32 inputs from integer arithmetic: (i·37 mod 101)/8 − 6, times 10^(i mod 3 − 1).
fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 8.0 - 6.0) * [0.1, 1.0, 10.0][i % 3])
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check(input: &[f32], cfg: QuantConfig, seed: u64, want_hash: &str) -> QuantizedBlob {
    let blob = quantize(input, cfg, seed).unwrap();
    let bytes = blob.to_bytes();
    assert_eq!(
        hex(&blob.hash()),
        want_hash,
        "{cfg:?} n={} seed={seed} bytes={}",
        input.len(),
        hex(&bytes)
    );
    assert_eq!(QuantizedBlob::from_bytes(&bytes).unwrap(), blob);
    blob
}

#[test]
fn small_int8_vector_bytes() {
    let x = ramp(40);
    let blob = check(
        &x,
        QuantConfig {
            bits: Bits::Int8,
            block: 32,
        },
        0,
        "69b9a171aa037aade2f8754a1ccdce8d5374dd3a9d8e5d23898eef50fde11e4d",
    );
    assert_eq!(
        hex(&blob.to_bytes()),
        "43545142010800002000000028000000000000009fcfe73e8bc5e23efffd48ff0063ff027f00058400089f000bbb000ed701f4f201f70e01fa2901fd47ffff63ff027fff"
    );
}

#[test]
fn small_int4_vector_bytes() {
    let x = ramp(37);
    let blob = check(
        &x,
        QuantConfig {
            bits: Bits::Int4,
            block: 32,
        },
        0x0123_4567_89AB_CDEF,
        "df89f2862a1655b3de61844b7d1a41225279542b759dba3d47560faf4373398d",
    );
    assert_eq!(
        hex(&blob.to_bytes()),
        "4354514201040000200000002500000000000000b76d03410000c840000450000790100bc1000df000012000057000"
    );
}

#[test]
fn default_config_vectors() {
    let x = ramp(10_000);
    let cases: [(&[f32], QuantConfig, u64, &str); 5] = [
        (
            &x,
            QuantConfig::int8(),
            0,
            "89f5bcb4bc4e020ee47e0182fb64a81e8eb4fb779b10180ab5203820136a2304",
        ),
        (
            &x,
            QuantConfig::int4(),
            0,
            "fda15f616e70023848155788d571517ad8560600a86193e634dbea2574bec16f",
        ),
        (
            &x,
            QuantConfig::int4(),
            1,
            "46d853258728255fe897542f359a0ddc01576d622516e690abb18a312f337928",
        ),
        (
            &[],
            QuantConfig::int8(),
            0,
            "6c0bd29fd52a1e70afee31f52851ff93176c2fd4babe3ea1eee5634cb483db3e",
        ),
        (
            &[],
            QuantConfig::int4(),
            0,
            "2ea7fc87c33702a598f78d7b81a785d60b611f093bb1efb4c1a9c717c0afbc3a",
        ),
    ];
    for (input, cfg, seed, want) in cases {
        check(input, cfg, seed, want);
    }
}

#[test]
fn empty_blobs_are_the_header_alone() {
    let int8 = quantize(&[], QuantConfig::int8(), 0).unwrap().to_bytes();
    assert_eq!(hex(&int8), "4354514201080000000100000000000000000000");
    let int4 = quantize(&[], QuantConfig::int4(), 0).unwrap().to_bytes();
    assert_eq!(hex(&int4), "4354514201040000400000000000000000000000");
}
