//! Error feedback keeps the running sum of what was sent next to the running sum of the inputs.

mod common;

use common::lcg_values;
use crowdtrain_kernels::{ErrorFeedback, KernelError, QuantConfig, dequantize};

fn check_running_sums(cfg: QuantConfig, quanta: f64, gain: f64) {
    let n = 1000;
    let mut ef = ErrorFeedback::new(n);
    let mut sum_in = vec![0f64; n];
    let mut sum_sent = vec![0f64; n];
    let mut sum_plain = vec![0f64; n];
    for round in 0..200u64 {
        // Small deltas that quantization alone would mostly round away.
        let mut delta = lcg_values(n, round, 1e-3);
        delta[0] = 1.0; // a large value in block 0 makes the others tiny relative to its scale
        let blob = ef.compress(&delta, cfg, round).unwrap();
        let plain = dequantize(&crowdtrain_kernels::quantize(&delta, cfg, round).unwrap());
        let sent = dequantize(&blob);
        let scales = blob.scales();
        for i in 0..n {
            sum_in[i] += f64::from(delta[i]);
            sum_sent[i] += f64::from(sent[i]);
            sum_plain[i] += f64::from(plain[i]);
            let quantum = f64::from(scales[i / cfg.block]);
            // What was sent and what came in differ by exactly the residual (up to f32
            // rounding of the sums), and the residual is within `quanta` of a quantum.
            let gap = (sum_in[i] - sum_sent[i]).abs();
            assert!(
                gap <= quanta * quantum + 1e-5,
                "round {round} i={i} gap={gap} quantum={quantum}"
            );
        }
    }
    // Without feedback int8 loses the small values of block 0 every round (the gap grows
    // linearly); unbiased int4 drifts like a random walk. Feedback bounds both.
    let drift: f64 = (1..cfg.block)
        .map(|i| (sum_in[i] - sum_plain[i]).abs())
        .fold(0.0, f64::max);
    let kept: f64 = (1..cfg.block)
        .map(|i| (sum_in[i] - sum_sent[i]).abs())
        .fold(0.0, f64::max);
    assert!(
        drift > gain * kept,
        "feedback should beat plain quantization: drift {drift} vs {kept}"
    );
}

#[test]
fn int8_feedback_keeps_sums_within_one_quantum() {
    check_running_sums(QuantConfig::int8(), 0.5 * 1.001, 10.0);
}

#[test]
fn int4_feedback_keeps_sums_within_one_quantum() {
    check_running_sums(QuantConfig::int4(), 1.001, 1.5);
}

#[test]
fn residual_is_input_minus_what_was_sent() {
    let mut ef = ErrorFeedback::from_residual(lcg_values(300, 1, 0.01));
    let before = ef.residual().to_vec();
    let delta = lcg_values(300, 2, 1.0);
    let blob = ef.compress(&delta, QuantConfig::int8(), 0).unwrap();
    let sent = dequantize(&blob);
    for i in 0..300 {
        assert_eq!(
            ef.residual()[i].to_bits(),
            ((delta[i] + before[i]) - sent[i]).to_bits()
        );
    }
    let saved = ef.clone().into_residual();
    assert_eq!(ErrorFeedback::from_residual(saved), ef);
}

#[test]
fn errors_leave_the_residual_untouched() {
    let mut ef = ErrorFeedback::from_residual(vec![0.5; 64]);
    assert_eq!(
        ef.compress(&[0.0; 63], QuantConfig::int4(), 0),
        Err(KernelError::LengthMismatch {
            expected: 64,
            got: 63
        })
    );
    let mut delta = vec![0.0f32; 64];
    delta[9] = f32::NAN;
    assert_eq!(
        ef.compress(&delta, QuantConfig::int4(), 0),
        Err(KernelError::NonFinite { index: 9 })
    );
    delta[9] = f32::MAX; // finite, but + 0.5 residual stays finite; MAX + MAX would not
    let mut big = ErrorFeedback::from_residual(vec![f32::MAX; 64]);
    assert_eq!(
        big.compress(&delta, QuantConfig::int4(), 0),
        Err(KernelError::NonFinite { index: 9 })
    );
    assert_eq!(ef.residual(), &[0.5; 64]);
    assert_eq!(big.residual(), &[f32::MAX; 64]);
}
