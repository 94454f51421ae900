//! The replay audit separates providers who trained on their assignment from those who
//! did not, with margin, and prints the figures it measured (`--nocapture` to see them).
//!
//! One test function on purpose: it switches candle's thread count through
//! `RAYON_NUM_THREADS`, which must not race with another test of this binary.

use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::replay::{Claim, MAX_EVIDENCE_LEN, ReplayReport, Tolerance, replay};
use crowdtrain_agent::round::{
    LocalWork, PeerBlob, RoundResult, WorkerState, aggregate, train_local,
};
use crowdtrain_agent::seeds::{Purpose, derive_seed, rng};
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::{QuantConfig, quantize};
use crowdtrain_protocol::Receipt;
use rand_distr::{Distribution, StandardNormal};

const WORKERS: u32 = 3;

fn run(quant: QuantConfig) -> RunConfig {
    RunConfig {
        run_id: "replay.near".into(),
        model: ModelConfig::tiny(),
        inner: InnerConfig::new(4, 32, 40),
        outer: OuterConfig::default(),
        inner_steps: 8,
        quant,
        shards: 4,
    }
}

fn threads(n: usize) {
    // SAFETY: this binary has a single test, so no other thread reads the environment.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
}

/// A provider's claim as it would post it: receipt fields from its own work.
fn receipt_of(round: u64, work: &LocalWork, base: &Checkpoint) -> Receipt {
    let agg_hash = base.hash().unwrap();
    RoundResult {
        round,
        base_checkpoint: work.base_checkpoint,
        result_checkpoint: agg_hash,
        blob: work.blob_hash,
        blob_set: agg_hash,
        inner_steps: work.inner_steps,
        tokens: work.tokens,
        loss_start: work.loss_start,
        loss_end: work.loss_end,
    }
    .receipt("replay.near", "p.near", 0)
}

struct Setup {
    run: RunConfig,
    corpus: Corpus,
    model: Gpt,
}

impl Setup {
    fn new(quant: QuantConfig) -> Self {
        let run = run(quant);
        let model = Gpt::new(
            run.model,
            derive_seed(Purpose::Init, &run.run_id, 0, 0),
            &Device::Cpu,
        )
        .unwrap();
        Self {
            run,
            corpus: Corpus::kjv().unwrap(),
            model,
        }
    }

    fn train(&self, run: &RunConfig, base: &Checkpoint, round: u64, k: u32) -> LocalWork {
        let mut w = WorkerState::new(base.params.len());
        train_local(run, &self.corpus, &self.model, base, round, k, &mut w).unwrap()
    }

    fn judge(
        &self,
        base: &Checkpoint,
        provider: u32,
        receipt: &Receipt,
        blob: &[u8],
    ) -> ReplayReport {
        self.judge_after(&[], base, provider, receipt, blob)
    }

    /// [`Setup::judge`] for a provider that trained `earlier` rounds before.
    fn judge_after(
        &self,
        earlier: &[(u64, &Checkpoint)],
        base: &Checkpoint,
        provider: u32,
        receipt: &Receipt,
        blob: &[u8],
    ) -> ReplayReport {
        let claim = Claim {
            provider,
            receipt,
            blob,
            earlier,
        };
        replay(
            &self.run,
            &self.corpus,
            &self.model,
            base,
            &claim,
            &Tolerance::default(),
        )
        .unwrap()
    }
}

fn show(case: &str, r: &ReplayReport) {
    eprintln!(
        "{case:<56} cosine {:>7.4}  norm ratio {:>6.3}  {}{}",
        r.cosine,
        r.norm_ratio,
        if r.passed() { "pass" } else { "FAIL" },
        if r.bit_exact { " (bit-exact)" } else { "" }
    );
}

#[test]
fn replay_separates_honest_from_dishonest_providers() {
    let tol = Tolerance::default();
    let mut honest_min_cos = f64::INFINITY;
    let mut honest_ratio = (f64::INFINITY, 0.0f64);
    let mut dishonest_max_cos = f64::NEG_INFINITY;
    for (name, quant) in [("int8", QuantConfig::int8()), ("int4", QuantConfig::int4())] {
        let s = Setup::new(quant);
        let base = Checkpoint::from_model(&s.model).unwrap();

        // Honest, trained on 1 thread, replayed on 2 (and the other way round).
        for (train_threads, replay_threads) in [(1, 2), (2, 1)] {
            threads(train_threads);
            let work = s.train(&s.run, &base, 1, 1);
            threads(replay_threads);
            let r = s.judge(&base, 1, &receipt_of(1, &work, &base), &work.blob_bytes);
            show(
                &format!("{name} honest, {train_threads} vs {replay_threads} threads"),
                &r,
            );
            assert!(r.passed(), "{}", r.evidence());
            honest_min_cos = honest_min_cos.min(r.cosine);
            honest_ratio = (
                honest_ratio.0.min(r.norm_ratio),
                honest_ratio.1.max(r.norm_ratio),
            );
        }
        threads(2);

        // Honest in round 2: the provider kept its AdamW moments and error-feedback
        // residual from round 1; the replay cannot see them and starts from zero.
        let mut workers: Vec<WorkerState> = (0..WORKERS)
            .map(|_| WorkerState::new(base.params.len()))
            .collect();
        let mut blobs = Vec::new();
        for (k, w) in workers.iter_mut().enumerate() {
            let work = train_local(&s.run, &s.corpus, &s.model, &base, 1, k as u32, w).unwrap();
            blobs.push(PeerBlob {
                peer: format!("p{k}"),
                bytes: work.blob_bytes.into(),
            });
        }
        let base1 = aggregate(&s.run, 1, &base, &blobs).unwrap().checkpoint;
        let work1 =
            train_local(&s.run, &s.corpus, &s.model, &base1, 2, 2, &mut workers[2]).unwrap();
        let receipt1 = receipt_of(2, &work1, &base1);
        let fresh = s.judge(&base1, 2, &receipt1, &work1.blob_bytes);
        show(
            &format!("{name} honest, round 2, replayed without history"),
            &fresh,
        );
        let r = s.judge_after(&[(1, &base)], &base1, 2, &receipt1, &work1.blob_bytes);
        show(
            &format!("{name} honest, round 2, replayed after round 1"),
            &r,
        );
        assert!(r.passed(), "{}", r.evidence());
        honest_min_cos = honest_min_cos.min(r.cosine);
        honest_ratio = (
            honest_ratio.0.min(r.norm_ratio),
            honest_ratio.1.max(r.norm_ratio),
        );

        let honest = s.train(&s.run, &base, 1, 1);
        let honest_receipt = receipt_of(1, &honest, &base);

        // The auditor's own mistakes are errors, not verdicts: a blob that is not the
        // receipt's, a base that is not the receipt's.
        let err = replay(
            &s.run,
            &s.corpus,
            &s.model,
            &base,
            &Claim {
                provider: 1,
                receipt: &honest_receipt,
                blob: b"not the blob",
                earlier: &[],
            },
            &tol,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("fetch the receipt's blob"),
            "{err}"
        );
        let err = replay(
            &s.run,
            &s.corpus,
            &s.model,
            &base1,
            &Claim {
                provider: 1,
                receipt: &honest_receipt,
                blob: &honest.blob_bytes,
                earlier: &[],
            },
            &tol,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("checkpoint hash mismatch"),
            "{err}"
        );
        let mut dishonest = Vec::new();

        // Trained with another seed: same shape of work, another run's data order.
        let mut other_seed = s.run.clone();
        other_seed.run_id = "someone-else.near".into();
        let w = s.train(&other_seed, &base, 1, 1);
        dishonest.push((
            "trained with another seed",
            receipt_of(1, &w, &base),
            w.blob_bytes,
        ));

        // Trained on another provider's slot and claims its own.
        let w = s.train(&s.run, &base, 1, 3);
        dishonest.push((
            "trained on another slot's data",
            receipt_of(1, &w, &base),
            w.blob_bytes,
        ));

        // Fewer steps, claiming the full round (receipt copied from an honest one).
        let mut short = s.run.clone();
        short.inner_steps = s.run.inner_steps / 2;
        let w = s.train(&short, &base, 1, 1);
        let mut claim = receipt_of(1, &w, &base);
        claim.inner_steps = honest.inner_steps;
        claim.tokens = honest.tokens;
        claim.loss_end = honest.loss_end;
        dishonest.push(("half the steps, full claim", claim, w.blob_bytes));

        // Noise with the honest pseudo-gradient's norm; receipt copied from an honest one.
        let honest_values = crowdtrain_kernels::dequantize(
            &crowdtrain_kernels::QuantizedBlob::from_bytes(&honest.blob_bytes).unwrap(),
        );
        let norm = honest_values
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let mut prng = rng(7);
        let noise: Vec<f32> = (0..honest_values.len())
            .map(|_| StandardNormal.sample(&mut prng))
            .collect();
        let noise_norm = noise
            .iter()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        let noise: Vec<f32> = noise
            .iter()
            .map(|&x| (x as f64 * norm / noise_norm) as f32)
            .collect();
        let bytes = quantize(&noise, quant, 0).unwrap().to_bytes();
        let mut claim = honest_receipt.clone();
        claim.blob = crowdtrain_protocol::sha256(&bytes);
        dishonest.push(("noise of the honest norm", claim, bytes));

        // An honest blob under a receipt that lies about the loss or the tokens.
        let mut better_loss = honest_receipt.clone();
        better_loss.loss_end *= 0.9;
        let mut more_tokens = honest_receipt.clone();
        more_tokens.tokens *= 2;
        for (case, receipt, why) in [
            ("claims a lower loss_end", better_loss, "loss_end"),
            ("claims twice the tokens", more_tokens, "tokens"),
        ] {
            let r = s.judge(&base, 1, &receipt, &honest.blob_bytes);
            show(&format!("{name} honest blob, receipt {case}"), &r);
            assert!(
                !r.passed() && r.evidence().contains(why),
                "{}",
                r.evidence()
            );
        }

        for (case, receipt, bytes) in &dishonest {
            let r = s.judge(&base, 1, receipt, bytes);
            show(&format!("{name} {case}"), &r);
            assert!(!r.passed(), "{case} must fail: {}", r.evidence());
            assert!(r.evidence().contains("FAILED"), "{}", r.evidence());
            assert!(r.evidence().len() <= MAX_EVIDENCE_LEN);
            dishonest_max_cos = dishonest_max_cos.max(r.cosine);
            eprintln!("    {}", r.evidence());
        }
    }
    eprintln!(
        "honest: cosine >= {honest_min_cos:.4}, norm ratio in [{:.3}, {:.3}]; dishonest: cosine <= {dishonest_max_cos:.4}; threshold {}",
        honest_ratio.0, honest_ratio.1, tol.min_cosine
    );
    // Margin both ways: the threshold is far from what either side reached.
    assert!(honest_min_cos - tol.min_cosine >= 0.05, "{honest_min_cos}");
    assert!(
        tol.min_cosine - dishonest_max_cos >= 0.1,
        "{dishonest_max_cos}"
    );
    assert!(honest_ratio.0 > tol.norm_ratio.0 && honest_ratio.1 < tol.norm_ratio.1);
}
