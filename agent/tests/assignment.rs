//! Data really divided: within a round providers never share a sample, over an epoch no
//! sample is dealt twice and (with every slot filled) all but the tail are dealt, a new
//! epoch reshuffles, and the tokens a receipt claims are the tokens assigned.

use crowdtrain_agent::assignment::DataPlan;
use crowdtrain_agent::data::Corpus;
use std::collections::BTreeSet;

const RUN: &str = "assign.near";

#[test]
fn providers_of_a_round_train_on_disjoint_samples() {
    let corpus = Corpus::kjv().unwrap();
    let plan = DataPlan::new(&corpus, 64, 8, 10, 8).unwrap();
    for round in [0, 1, 57] {
        let mut seen = BTreeSet::new();
        let mut slots = BTreeSet::new();
        for provider in 0..8 {
            let a = plan.assignment(RUN, round, provider).unwrap();
            slots.insert(a.slot);
            let samples = corpus.assigned_samples(RUN, &a);
            assert_eq!(samples.len() as u64, plan.lot());
            for s in samples {
                assert!(
                    seen.insert(s),
                    "round {round}: sample {s} dealt twice (provider {provider})"
                );
            }
            // The batches are those samples' bytes: whole windows of the training text.
            let batches = corpus.batches(RUN, &a);
            assert_eq!(batches.len(), 10);
            assert_eq!(batches.iter().map(|b| b.tokens()).sum::<u64>(), a.tokens());
        }
        assert_eq!(slots.len(), 8, "every provider has its own slot");
    }
    // Who gets which slot changes from round to round.
    let first: Vec<u32> = (0..30)
        .map(|r| plan.assignment(RUN, r, 0).unwrap().slot)
        .collect();
    assert!(first.iter().collect::<BTreeSet<_>>().len() > 3, "{first:?}");
}

#[test]
fn an_epoch_deals_every_sample_once_then_reshuffles() {
    let corpus = Corpus::kjv().unwrap();
    let (slots, steps, batch) = (4u32, 25u32, 8usize);
    let plan = DataPlan::new(&corpus, 64, batch, steps, slots).unwrap();
    let per_round = plan.lot() * slots as u64;
    assert_eq!(plan.rounds_per_epoch, plan.samples / per_round);
    assert!(plan.rounds_per_epoch > 10, "{plan:?}");

    // Positions in the epoch's order: the lots of an epoch tile 0..rounds·S·lot exactly.
    let mut positions = BTreeSet::new();
    for round in 0..plan.rounds_per_epoch {
        for p in 0..slots {
            let a = plan.assignment(RUN, round, p).unwrap();
            assert_eq!(a.epoch, 0);
            for i in a.first..a.first + a.samples() {
                assert!(positions.insert(i), "position {i} dealt twice");
            }
        }
    }
    let covered = positions.len() as u64;
    assert_eq!(covered, plan.rounds_per_epoch * per_round);
    assert_eq!(*positions.last().unwrap(), covered - 1, "no gaps");
    assert!(
        plan.samples - covered < per_round,
        "only the tail is left: {covered} of {}",
        plan.samples
    );
    // The epoch's order is a permutation of all samples, so those positions are distinct
    // samples; the next epoch starts over in another order.
    let order0 = corpus.epoch_order(RUN, 0, 64);
    let order1 = corpus.epoch_order(RUN, 1, 64);
    assert_eq!(
        order0.iter().collect::<BTreeSet<_>>().len() as u64,
        plan.samples
    );
    assert_ne!(order0, order1);
    let next = plan.assignment(RUN, plan.rounds_per_epoch, 0).unwrap();
    assert_eq!(next.epoch, 1);
    assert!(next.first < per_round, "epoch 1 starts at its beginning");
}

#[test]
fn plans_that_cannot_divide_the_data_are_refused() {
    let corpus = Corpus::kjv().unwrap();
    let plan = DataPlan::new(&corpus, 64, 8, 10, 4).unwrap();
    let err = plan.assignment(RUN, 0, 4).unwrap_err().to_string();
    assert!(err.contains("no slot") && err.contains("4 slots"), "{err}");
    let err = DataPlan::new(&corpus, 1024, 64, 1000, 16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the corpus has"), "{err}");
}
