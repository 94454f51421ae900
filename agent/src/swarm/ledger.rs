//! What one node knows of the run's announcements, and what it announces itself: the
//! first blob each author announced for each round (a second, different one marks the
//! author as equivocating), who holds which checkpoint, and this node's own newest
//! announcements with the sequence numbers that keep them distinct on gossip.

use super::announce::{Announcement, Kind};
use crowdtrain_protocol::Hash32;
use iroh::{EndpointId, SecretKey};
use std::collections::{BTreeMap, BTreeSet};

/// What the gossip receiver learned, and what this node keeps announcing.
#[derive(Default)]
pub(super) struct Heard {
    /// Blob announcements: round → author → the first one heard.
    pub(super) blobs: BTreeMap<u64, BTreeMap<EndpointId, Announcement>>,
    /// Authors caught announcing two different blobs for one round.
    pub(super) equivocated: BTreeSet<(u64, EndpointId)>,
    /// Checkpoint announcements: sha256 → (BLAKE3, who has it).
    pub(super) checkpoints: BTreeMap<Hash32, (iroh_blobs::Hash, BTreeSet<EndpointId>)>,
    /// This node's newest blob and checkpoints, re-sent every `announce_every`.
    pub(super) own: Vec<Announcement>,
    /// The next sequence number.
    pub(super) seq: u64,
}

impl Heard {
    /// Adds `a` to this node's own announcements: the blobs of the newest `keep_rounds`
    /// rounds (one per round) and the newest `keep_rounds + 1` checkpoints (the bases and
    /// results of those rounds). Returns the checkpoint that fell out, if one did.
    pub(super) fn keep_own(&mut self, a: Announcement, keep_rounds: u64) -> Option<Announcement> {
        let keep = keep_rounds.max(1);
        let mut evicted = None;
        match a.kind {
            Kind::Blob => self.own.retain(|o| {
                o.kind != Kind::Blob || (o.round != a.round && o.round + keep > a.round)
            }),
            Kind::Checkpoint => {
                self.own.retain(|o| o.sha256 != a.sha256);
                let held = self
                    .own
                    .iter()
                    .filter(|o| o.kind == Kind::Checkpoint)
                    .count();
                if held as u64 > keep
                    && let Some(i) = self.own.iter().position(|o| o.kind == Kind::Checkpoint)
                {
                    evicted = Some(self.own.remove(i));
                }
            }
        }
        self.own.push(a.clone());
        record(self, a);
        evicted
    }

    /// `a` signed with the next sequence number (gossip drops a message it has seen in
    /// the last 90 seconds, so every send differs).
    pub(super) fn signed(&mut self, a: Announcement, run: &str, key: &SecretKey) -> Vec<u8> {
        self.seq += 1;
        Announcement { seq: self.seq, ..a }.sign(run, key)
    }
}

/// Records a verified announcement (the first blob per author and round wins; a second,
/// different one marks the author as equivocating for that round).
pub(super) fn record(heard: &mut Heard, a: Announcement) {
    match a.kind {
        Kind::Blob => {
            let round = heard.blobs.entry(a.round).or_default();
            match round.get(&a.author) {
                Some(first) if first.sha256 != a.sha256 || first.blake3 != a.blake3 => {
                    tracing::warn!(author = %a.author, round = a.round, "two different blobs announced for one round; the author is left out of it");
                    heard.equivocated.insert((a.round, a.author));
                }
                Some(_) => {}
                None => {
                    round.insert(a.author, a);
                }
            }
        }
        Kind::Checkpoint => {
            heard
                .checkpoints
                .entry(a.sha256)
                .or_insert_with(|| (a.blake3, BTreeSet::new()))
                .1
                .insert(a.author);
        }
    }
}
