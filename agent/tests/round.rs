//! A DiLoCo round end to end on the tiny model: arrival order does not matter, bad
//! blobs are left out without stopping the round, the receipt fields line up, and a
//! hostile blob cannot move the model beyond the robust rule's clip.

use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::round::{PeerBlob, RoundResult, WorkerState, aggregate, train_local};
use crowdtrain_agent::seeds::{Purpose, derive_seed};
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::{QuantConfig, QuantizedBlob};
use crowdtrain_protocol::{blob_set_digest, sha256};

fn tiny_run() -> RunConfig {
    RunConfig {
        run_id: "test-run".into(),
        model: ModelConfig::tiny(),
        inner: InnerConfig::new(4, 32, 20),
        outer: OuterConfig::default(),
        inner_steps: 3,
        quant: QuantConfig::int8(),
        shards: 16,
    }
}

/// Three workers' blobs for round 1 (the first trained round) from a fresh tiny model.
fn first_round() -> (
    RunConfig,
    Checkpoint,
    Vec<PeerBlob>,
    Vec<crowdtrain_agent::round::LocalWork>,
) {
    let run = tiny_run();
    let corpus = Corpus::kjv().unwrap();
    let model = Gpt::new(
        run.model,
        derive_seed(Purpose::Init, &run.run_id, 0, 0),
        &Device::Cpu,
    )
    .unwrap();
    let base = Checkpoint::from_model(&model).unwrap();
    let mut blobs = Vec::new();
    let mut works = Vec::new();
    for k in 0..3u32 {
        let mut w = WorkerState::new(base.params.len());
        let work = train_local(&run, &corpus, &model, &base, 1, k, &mut w).unwrap();
        assert!(
            work.loss_end < work.loss_start,
            "inner steps lower the loss: {work:?}"
        );
        blobs.push(PeerBlob {
            peer: format!("peer-{k}"),
            bytes: work.blob_bytes.clone().into(),
        });
        works.push(work);
    }
    (run, base, blobs, works)
}

#[test]
fn arrival_order_does_not_change_the_checkpoint() {
    let (run, base, blobs, works) = first_round();
    let a = aggregate(&run, 1, &base, &blobs).unwrap();
    let mut reversed = blobs.clone();
    reversed.reverse();
    let b = aggregate(&run, 1, &base, &reversed).unwrap();
    let rotated: Vec<PeerBlob> = blobs[1..].iter().chain(&blobs[..1]).cloned().collect();
    let c = aggregate(&run, 1, &base, &rotated).unwrap();
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hash, c.hash);
    assert_ne!(
        a.hash,
        base.hash().unwrap(),
        "the outer step moved the weights"
    );
    assert!(
        a.blobs.windows(2).all(|w| w[0] < w[1]),
        "aggregated in ascending hash order"
    );

    let result = RoundResult::new(1, &works[1], &a);
    let receipt = result.receipt("test-run", "peer-1.near", 1);
    assert_eq!(receipt.base_checkpoint, base.hash().unwrap());
    assert_eq!(receipt.result_checkpoint, a.hash);
    assert_eq!(receipt.blob, crowdtrain_protocol::sha256(&blobs[1].bytes));
    assert_eq!(receipt.blob_set, blob_set_digest(&a.blobs));
    assert_eq!((receipt.inner_steps, receipt.tokens), (3, 3 * 4 * 32));
    assert!(receipt.losses_are_finite());
}

#[test]
fn bad_blobs_are_left_out_and_the_round_goes_on() {
    let (run, base, blobs, _) = first_round();
    let good = aggregate(&run, 1, &base, &blobs).unwrap();

    let short = crowdtrain_kernels::quantize(&[0.1; 100], QuantConfig::int8(), 0)
        .unwrap()
        .to_bytes();
    let mut non_finite = blobs[0].bytes.to_vec();
    // The first block's f32 scale sits right after the 20-byte header: make it infinite.
    non_finite[20..24].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let garbage = b"not a blob".to_vec();
    let mut all = blobs.clone();
    all.push(PeerBlob {
        peer: "mallory".into(),
        bytes: short.into(),
    });
    all.push(PeerBlob {
        peer: "trudy".into(),
        bytes: non_finite.into(),
    });
    all.push(PeerBlob {
        peer: "eve".into(),
        bytes: garbage.into(),
    });
    all.push(PeerBlob {
        peer: "copycat".into(),
        bytes: blobs[2].bytes.clone(),
    });
    let agg = aggregate(&run, 1, &base, &all).unwrap();
    assert_eq!(agg.hash, good.hash, "only the three good blobs count");
    let peers: Vec<&str> = agg.rejected.iter().map(|r| r.peer.as_str()).collect();
    assert_eq!(peers, ["mallory", "trudy", "eve", "copycat"]);
    assert!(
        agg.rejected[0].reason.contains("100 values"),
        "{:?}",
        agg.rejected[0]
    );

    let err = aggregate(&run, 1, &base, &all[3..6]).unwrap_err();
    assert!(
        err.to_string().contains("no valid pseudo-gradient"),
        "{err}"
    );
}

/// `bytes` with every scale multiplied by `factor` (a provider scaling its blob up).
fn scaled_by(bytes: &[u8], factor: f32) -> Vec<u8> {
    let blob = QuantizedBlob::from_bytes(bytes).unwrap();
    crowdtrain_agent::clip::scaled(bytes, &blob, factor)
        .unwrap()
        .to_bytes()
}

/// ‖a − b‖₂ in f64.
fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The most the outer step can move θ from a zero momentum when every pseudo-gradient's
/// norm is at most `c × median`: lr · (1 + μ) · c · median (the mean's norm is at most
/// the largest norm averaged), with room for f32 rounding.
fn clip_bound(run: &RunConfig, median: f64) -> f64 {
    let o = run.outer;
    o.lr as f64 * (1.0 + o.momentum as f64) * o.clip_multiple as f64 * median * (1.0 + 1e-4)
}

#[test]
fn a_blob_scaled_by_1e30_moves_the_model_no_further_than_the_clip() {
    let (run, base, blobs, _) = first_round();
    let honest = aggregate(&run, 1, &base, &blobs).unwrap();
    assert!(
        honest.clipped.is_empty(),
        "honest blobs are within 2× the median"
    );
    let norms: Vec<f64> = blobs
        .iter()
        .map(|b| crowdtrain_agent::clip::blob_norm(&QuantizedBlob::from_bytes(&b.bytes).unwrap()))
        .collect();
    eprintln!("honest norms {norms:?}, median {}", honest.median_norm);

    let mut all = blobs.clone();
    let hostile = scaled_by(&blobs[0].bytes, 1e30);
    all.push(PeerBlob {
        peer: "mallory".into(),
        bytes: hostile.clone().into(),
    });
    let agg = aggregate(&run, 1, &base, &all).unwrap();
    assert_eq!(agg.blobs.len(), 4, "a finite blob is clipped, not left out");
    assert_eq!(agg.clipped.len(), 1);
    assert_eq!(agg.clipped[0].blob, sha256(&hostile));
    assert!(agg.clipped[0].factor < 1e-29, "{:?}", agg.clipped);
    let moved = distance(&agg.checkpoint.params, &base.params);
    assert!(
        moved <= clip_bound(&run, agg.median_norm),
        "moved {moved}, bound {}",
        clip_bound(&run, agg.median_norm)
    );
    assert!(agg.checkpoint.params.iter().all(|v| v.is_finite()));
    // Against the honest round, mallory's blob counts as one honest-sized blob at most.
    let shift = distance(&agg.checkpoint.params, &honest.checkpoint.params);
    assert!(shift <= clip_bound(&run, agg.median_norm), "{shift}");

    // The rule reads only the set of blobs: arrival order changes nothing.
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(aggregate(&run, 1, &base, &reversed).unwrap().hash, agg.hash);
}

#[test]
fn one_honest_and_one_hostile_blob_make_a_bounded_step() {
    let (run, base, blobs, _) = first_round();
    let honest = QuantizedBlob::from_bytes(&blobs[1].bytes).unwrap();
    let honest_norm = crowdtrain_agent::clip::blob_norm(&honest);
    let pair = vec![
        blobs[1].clone(),
        PeerBlob {
            peer: "mallory".into(),
            bytes: scaled_by(&blobs[2].bytes, 1e30).into(),
        },
    ];
    let agg = aggregate(&run, 1, &base, &pair).unwrap();
    assert_eq!(
        agg.median_norm, honest_norm,
        "the lower median is the honest norm"
    );
    let moved = distance(&agg.checkpoint.params, &base.params);
    assert!(moved <= clip_bound(&run, honest_norm), "{moved}");
    assert!(agg.checkpoint.params.iter().all(|v| v.is_finite()));
}

#[test]
fn blobs_that_sum_past_f32_are_refused_not_saved() {
    let (run, base, _, _) = first_round();
    let n = base.params.len();
    // Each blob is finite (3e38 < f32::MAX ≈ 3.4e38) and of the same norm, so nothing is
    // clipped; their sum overflows.
    let big: Vec<PeerBlob> = (0..2)
        .map(|k| {
            let mut v = vec![3e38f32; n];
            v[k] = 2.9e38;
            PeerBlob {
                peer: format!("big-{k}"),
                bytes: crowdtrain_kernels::quantize(&v, QuantConfig::int8(), 0)
                    .unwrap()
                    .to_bytes()
                    .into(),
            }
        })
        .collect();
    let err = aggregate(&run, 1, &base, &big).unwrap_err();
    assert!(
        matches!(err, crowdtrain_agent::Error::NonFinite { round: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("refused"), "{err}");

    // A blob whose largest value would dequantize to infinity is left out at the door.
    let mut overflow = big[0].bytes.to_vec();
    overflow[20..24].copy_from_slice(&3e38f32.to_le_bytes());
    let err = aggregate(
        &run,
        1,
        &base,
        &[PeerBlob {
            peer: "trudy".into(),
            bytes: overflow.into(),
        }],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no valid pseudo-gradient"),
        "{err}"
    );
}
