//! A simulation can start both methods from a synchronously pretrained model (as the
//! DiLoCo paper does): the warm start is trained once, both methods begin from exactly
//! its weights, it is reproducible, and it is better than the seeded weights.

use candle_core::Device;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::simulate::{Diloco, SimConfig, Start, Synchronous};
use crowdtrain_agent::{InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;

const WARM: u32 = 12;

fn sim(warm_start_steps: u32) -> SimConfig {
    let (rounds, h) = (1u32, 2u32);
    let mut inner = InnerConfig::new(2, 32, (warm_start_steps + rounds * h) as u64);
    inner.step_offset = warm_start_steps as u64;
    SimConfig {
        run: RunConfig {
            run_id: "warm-start-test".into(),
            model: ModelConfig::tiny(),
            inner,
            outer: OuterConfig::default(),
            inner_steps: h,
            quant: QuantConfig::int8(),
            shards: 16,
        },
        workers: 2,
        rounds,
        eval_batches: 2,
        warm_start_steps,
    }
}

#[test]
fn both_methods_start_from_the_same_warm_start_which_beats_the_seeded_weights() {
    let corpus = Corpus::kjv().unwrap();
    let (cold_sim, warm_sim) = (sim(0), sim(WARM));
    let cold = Start::new(&cold_sim, &corpus, &Device::Cpu, &mut || {}).unwrap();
    let warm = Start::new(&warm_sim, &corpus, &Device::Cpu, &mut || {}).unwrap();
    assert_eq!((cold.tokens, cold.bytes_per_worker), (0, 0));
    assert!(
        warm.heldout_loss < cold.heldout_loss - 0.1,
        "warm start {} vs seeded {}",
        warm.heldout_loss,
        cold.heldout_loss
    );
    // 2 workers × 2 sequences × 32 tokens a step; f32 gradients every step.
    assert_eq!(warm.tokens, WARM as u64 * 2 * 2 * 32);
    let params = warm_sim.run.model.param_count() as u64;
    assert_eq!(warm.bytes_per_worker, WARM as u64 * 4 * params);

    let d = Diloco::new(&warm_sim, &corpus, &warm).unwrap();
    let s = Synchronous::new(&warm_sim, &corpus, &warm).unwrap();
    let (d0, s0) = (d.initial().unwrap(), s.initial().unwrap());
    assert_eq!(d0.heldout_loss, warm.heldout_loss);
    assert_eq!(s0.heldout_loss, warm.heldout_loss);

    // Reproducible: a second warm start reaches the same checkpoint, bit for bit.
    let again = Start::new(&warm_sim, &corpus, &Device::Cpu, &mut || {}).unwrap();
    let d_again = Diloco::new(&warm_sim, &corpus, &again).unwrap();
    assert_eq!(
        d.checkpoint().hash().unwrap(),
        d_again.checkpoint().hash().unwrap()
    );
    let d_cold = Diloco::new(&cold_sim, &corpus, &cold).unwrap();
    assert_ne!(
        d.checkpoint().hash().unwrap(),
        d_cold.checkpoint().hash().unwrap()
    );
}

#[test]
fn rounds_after_a_warm_start_continue_from_it() {
    let corpus = Corpus::kjv().unwrap();
    let after_one_round = |sim: &SimConfig| {
        let start = Start::new(sim, &corpus, &Device::Cpu, &mut || {}).unwrap();
        let mut d = Diloco::new(sim, &corpus, &start).unwrap();
        let mut s = Synchronous::new(sim, &corpus, &start).unwrap();
        (d.round(&mut || {}).unwrap(), s.round(&mut || {}).unwrap())
    };
    let (cold_d, cold_s) = after_one_round(&sim(0));
    let (warm_d, warm_s) = after_one_round(&sim(WARM));
    // Tokens count from round 0; the warm start's are reported on their own.
    assert_eq!(warm_d.tokens, 2 * 2 * 2 * 32);
    assert_eq!(warm_s.tokens, warm_d.tokens);
    assert!(
        warm_d.heldout_loss < cold_d.heldout_loss - 0.1,
        "DiLoCo: warm {warm_d:?} vs cold {cold_d:?}"
    );
    assert!(
        warm_s.heldout_loss < cold_s.heldout_loss - 0.1,
        "sync: warm {warm_s:?} vs cold {cold_s:?}"
    );
}
