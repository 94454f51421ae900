//! The outer step: plain f32 loops on the CPU in a fixed order, no fused multiply-add
//! (Rust never contracts `a * b + c`), so every participant reaches the same bits. The
//! aggregation that feeds it is `round::aggregate`.

use crate::config::OuterConfig;

/// Nesterov momentum on the pseudo-gradient `g` (PyTorch's SGD `nesterov=True`):
/// `u ← μ·u + g`, `θ ← θ − lr·(g + μ·u)`.
pub fn nesterov_step(params: &mut [f32], momentum: &mut [f32], g: &[f32], cfg: OuterConfig) {
    assert!(
        params.len() == momentum.len() && params.len() == g.len(),
        "outer step on vectors of different lengths"
    );
    for ((p, u), &gi) in params.iter_mut().zip(momentum.iter_mut()).zip(g) {
        let new_u = cfg.momentum * *u + gi;
        *u = new_u;
        let step = gi + cfg.momentum * new_u;
        *p -= cfg.lr * step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesterov_matches_the_formula() {
        let cfg = OuterConfig {
            lr: 0.5,
            momentum: 0.9,
            ..OuterConfig::default()
        };
        let (mut p, mut u) = (vec![1.0f32, 2.0], vec![0.0f32, 1.0]);
        nesterov_step(&mut p, &mut u, &[0.5, -1.0], cfg);
        // u = [0.5, -0.1]; step = [0.5 + 0.45, -1.0 - 0.09]
        assert_eq!(u, vec![0.5, 0.9f32 * 1.0 - 1.0]);
        assert!(
            (p[0] - (1.0 - 0.5 * 0.95)).abs() < 1e-6 && (p[1] - (2.0 + 0.5 * 1.09)).abs() < 1e-6
        );
    }
}
