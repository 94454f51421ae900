//! One round as a provider sees it: compress a pseudo-gradient with error feedback,
//! send the bytes and their hash, and on the receiving side add every peer's blob to a
//! sum in sorted order. Run: `cargo run -p crowdtrain-kernels --example compress`.

use crowdtrain_kernels::{
    Backend, ErrorFeedback, QuantConfig, QuantizedBlob, dequantize_accumulate,
};

fn main() -> anyhow::Result<()> {
    let n = 1 << 20;
    let peers: Vec<Vec<f32>> = (0..3u32)
        .map(|p| {
            (0..n)
                .map(|i| ((i as u32 ^ p.wrapping_mul(2654435761)) % 2001) as f32 * 1e-6 - 1e-3)
                .collect()
        })
        .collect();
    println!("backend available here: {}", Backend::detect().name());

    // Each peer compresses its delta; the residual stays with it for the next round.
    let mut sent = Vec::new();
    for (p, delta) in peers.iter().enumerate() {
        for cfg in [QuantConfig::int8(), QuantConfig::int4()] {
            // A real sender keeps one ErrorFeedback across rounds (and one config).
            let mut feedback = ErrorFeedback::new(n);
            let blob = feedback.compress(delta, cfg, 1000 + p as u64)?;
            let bytes = blob.to_bytes();
            let hash: String = blob.hash().iter().map(|b| format!("{b:02x}")).collect();
            println!(
                "peer {p} {:?}: {} f32 bytes -> {} bytes ({:.1}x), sha256 {}…",
                cfg.bits,
                4 * n,
                bytes.len(),
                (4 * n) as f64 / bytes.len() as f64,
                &hash[..16]
            );
            if cfg.bits == crowdtrain_kernels::Bits::Int4 {
                sent.push((hash, bytes));
            }
        }
    }

    // The receiver: blobs in sorted (hash) order, one f32 sum.
    sent.sort();
    let mut sum = vec![0f32; n];
    for (_, bytes) in &sent {
        dequantize_accumulate(&QuantizedBlob::from_bytes(bytes)?, &mut sum)?;
    }
    let exact: Vec<f32> = (0..n).map(|i| peers.iter().map(|d| d[i]).sum()).collect();
    let err = sum
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!(
        "sum of {} peers: max |error| {err:.2e} against the uncompressed sum",
        sent.len()
    );
    Ok(())
}
