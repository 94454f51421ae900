//! A DiLoCo round end to end on the tiny model: arrival order does not matter, bad
//! blobs are left out without stopping the round, and the receipt fields line up.

use candle_core::Device;
use crowdtrain_agent::checkpoint::Checkpoint;
use crowdtrain_agent::data::Corpus;
use crowdtrain_agent::round::{PeerBlob, RoundResult, WorkerState, aggregate, train_local};
use crowdtrain_agent::seeds::{Purpose, derive_seed};
use crowdtrain_agent::{Gpt, InnerConfig, ModelConfig, OuterConfig, RunConfig};
use crowdtrain_kernels::QuantConfig;
use crowdtrain_protocol::blob_set_digest;

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

/// Three workers' blobs for chain round 1 (the first trained) from a fresh tiny model.
fn round_zero() -> (
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
            bytes: work.blob_bytes.clone(),
        });
        works.push(work);
    }
    (run, base, blobs, works)
}

#[test]
fn arrival_order_does_not_change_the_checkpoint() {
    let (run, base, blobs, works) = round_zero();
    let a = aggregate(&run, 0, &base, &blobs).unwrap();
    let mut reversed = blobs.clone();
    reversed.reverse();
    let b = aggregate(&run, 0, &base, &reversed).unwrap();
    let rotated: Vec<PeerBlob> = blobs[1..].iter().chain(&blobs[..1]).cloned().collect();
    let c = aggregate(&run, 0, &base, &rotated).unwrap();
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

    let result = RoundResult::new(0, &works[1], &a);
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
    let (run, base, blobs, _) = round_zero();
    let good = aggregate(&run, 0, &base, &blobs).unwrap();

    let short = crowdtrain_kernels::quantize(&[0.1; 100], QuantConfig::int8(), 0)
        .unwrap()
        .to_bytes();
    let mut non_finite = blobs[0].bytes.clone();
    // The first block's f32 scale sits right after the 20-byte header: make it infinite.
    non_finite[20..24].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let garbage = b"not a blob".to_vec();
    let mut all = blobs.clone();
    all.push(PeerBlob {
        peer: "mallory".into(),
        bytes: short,
    });
    all.push(PeerBlob {
        peer: "trudy".into(),
        bytes: non_finite,
    });
    all.push(PeerBlob {
        peer: "eve".into(),
        bytes: garbage,
    });
    all.push(PeerBlob {
        peer: "copycat".into(),
        bytes: blobs[2].bytes.clone(),
    });
    let agg = aggregate(&run, 0, &base, &all).unwrap();
    assert_eq!(agg.hash, good.hash, "only the three good blobs count");
    let peers: Vec<&str> = agg.rejected.iter().map(|r| r.peer.as_str()).collect();
    assert_eq!(peers, ["mallory", "trudy", "eve", "copycat"]);
    assert!(
        agg.rejected[0].reason.contains("100 values"),
        "{:?}",
        agg.rejected[0]
    );

    let err = aggregate(&run, 0, &base, &all[3..6]).unwrap_err();
    assert!(
        err.to_string().contains("no valid pseudo-gradient"),
        "{err}"
    );
}
