//! How a node's store names what it holds: `round-<r>/<sha256>` for a round's blobs it
//! fetched, `checkpoint/<sha256>` for checkpoints it fetched, and the same under `own/`
//! for what it published itself (what it announces as its own, again after a restart).

use super::announce::{Announcement, Kind};
use crowdtrain_protocol::Hash32;
use iroh::EndpointId;
use iroh_blobs::store::fs::FsStore;
use n0_future::StreamExt;

pub(super) fn round_tag(round: u64) -> String {
    format!("round-{round}/")
}

/// Tag prefix of what this node published itself (what it announces as its own, again
/// after a restart); what it fetched from others is tagged without it.
pub(super) const OWN: &str = "own/";

/// This node's own announcements, rebuilt from the store's `own/` tags (a restarted
/// provider goes on serving and announcing what it published before).
pub(super) async fn restore_own(store: &FsStore, author: EndpointId) -> Vec<Announcement> {
    let mut own = Vec::new();
    let Ok(mut tags) = store.tags().list_prefix(OWN).await else {
        return own;
    };
    while let Some(Ok(tag)) = tags.next().await {
        let Ok(name) = std::str::from_utf8(tag.name.as_ref()) else {
            continue;
        };
        let rest = name.strip_prefix(OWN).unwrap_or_default();
        let (kind, round, sha) = match rest.split_once('/') {
            Some(("checkpoint", sha)) => (Kind::Checkpoint, 0, sha),
            Some((r, sha)) => match r.strip_prefix("round-").and_then(|n| n.parse().ok()) {
                Some(round) => (Kind::Blob, round, sha),
                None => continue,
            },
            None => continue,
        };
        let Ok(sha256) = sha.parse::<Hash32>() else {
            continue;
        };
        let Ok(iroh_blobs::api::proto::BlobStatus::Complete { size }) =
            store.status(tag.hash).await
        else {
            continue;
        };
        own.push(Announcement {
            kind,
            round,
            sha256,
            blake3: tag.hash,
            len: size,
            seq: 0,
            author,
        });
    }
    own
}
