//! [`Peers`] over the swarm: what the provider loop calls each round. Publishing adds to
//! the store and announces; gathering starts background downloads of what active
//! providers announced (asking directly those not heard from) and returns what has
//! arrived and checked out, never waiting on a peer.

use super::ask::Question;
use super::tags::{OWN, round_tag};
use super::{Fetch, RETRY, Swarm, read_whole, unavailable};
use crate::provider::chain::ProviderInfo;
use crate::provider::peers::{Peers, PeersError};
use crate::round::PeerBlob;
use crate::swarm::announce::{Announcement, Kind};
use bytes::Bytes;
use crowdtrain_protocol::{Hash32, sha256};
use iroh::EndpointId;
use std::collections::{BTreeMap, BTreeSet};

impl Peers for Swarm {
    fn publish_blob(&self, round: u64, bytes: Bytes) -> Result<Hash32, PeersError> {
        let sha = sha256(&bytes);
        let blake3 = self.add(&format!("{OWN}{}{sha}", round_tag(round)), bytes.clone())?;
        self.announce(Announcement {
            kind: Kind::Blob,
            round,
            sha256: sha,
            blake3,
            len: bytes.len() as u64,
            seq: 0,
            author: self.id(),
        });
        self.fetched
            .lock()
            .expect("fetched lock")
            .insert((round, self.id()), Fetch::Done(bytes));
        self.forget_before(round);
        Ok(sha)
    }

    fn round_blobs(
        &self,
        round: u64,
        providers: &[ProviderInfo],
    ) -> Result<Vec<PeerBlob>, PeersError> {
        let ids = self.meet(providers);
        let active: BTreeMap<EndpointId, String> = providers
            .iter()
            .filter(|p| p.active)
            .filter_map(|p| ids.get(&p.account).map(|id| (*id, p.account.clone())))
            .collect();
        let (announced, equivocated) = {
            let heard = self.heard.lock().expect("heard lock");
            let announced: Vec<Announcement> = heard
                .blobs
                .get(&round)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            let eq: BTreeSet<EndpointId> = heard
                .equivocated
                .iter()
                .filter(|(r, _)| *r == round)
                .map(|(_, a)| *a)
                .collect();
            (announced, eq)
        };
        // Whoever we have not heard from for this round is asked directly.
        let heard_from: BTreeSet<EndpointId> = announced.iter().map(|a| a.author).collect();
        for id in active.keys() {
            if *id != self.id() && !heard_from.contains(id) {
                self.ask(Question::Blobs(round), *id);
            }
        }
        let mut out = Vec::new();
        let mut fetched = self.fetched.lock().expect("fetched lock");
        for a in announced {
            let Some(account) = active.get(&a.author) else {
                continue;
            };
            if equivocated.contains(&a.author) {
                continue;
            }
            if a.len > self.config.max_blob_bytes {
                tracing::warn!(peer = %account, round, len = a.len, "announced a blob larger than the run's can be; not fetched");
                continue;
            }
            match fetched.get(&(round, a.author)) {
                Some(Fetch::Done(bytes)) => out.push(PeerBlob {
                    peer: account.clone(),
                    bytes: bytes.clone(),
                }),
                Some(Fetch::Pending | Fetch::Refused) => {}
                Some(Fetch::Failed(at)) if at.elapsed() < RETRY => {}
                Some(Fetch::Failed(_)) | None => {
                    fetched.insert((round, a.author), Fetch::Pending);
                    let mut from = vec![a.author];
                    from.extend(
                        ids.values()
                            .filter(|id| **id != a.author && **id != self.id()),
                    );
                    self.spawn_download(a, from);
                }
            }
        }
        Ok(out)
    }

    fn publish_checkpoint(&self, hash: Hash32, bytes: Bytes) -> Result<(), PeersError> {
        let len = bytes.len() as u64;
        let blake3 = self.add(&format!("{OWN}checkpoint/{hash}"), bytes)?;
        self.announce(Announcement {
            kind: Kind::Checkpoint,
            round: 0,
            sha256: hash,
            blake3,
            len,
            seq: 0,
            author: self.id(),
        });
        Ok(())
    }

    fn fetch_checkpoint(
        &self,
        hash: Hash32,
        providers: &[ProviderInfo],
    ) -> Result<Option<Vec<u8>>, PeersError> {
        let ids = self.meet(providers);
        let known: BTreeSet<EndpointId> = ids.values().copied().collect();
        let Some((blake3, holders)) = self
            .heard
            .lock()
            .expect("heard lock")
            .checkpoints
            .get(&hash)
            .cloned()
        else {
            // Nobody announced it (or not to us yet): ask every provider directly.
            for id in &known {
                if *id != self.id() {
                    self.ask(Question::Checkpoint(hash), *id);
                }
            }
            return Ok(None);
        };
        // Only registered providers are asked; this node first if it has the bytes.
        let mut from: Vec<EndpointId> = holders.into_iter().filter(|h| known.contains(h)).collect();
        if from.is_empty() {
            return Ok(None);
        }
        from.sort_by_key(|h| *h != self.id());
        let (downloader, store, timeout) = (
            self.downloader.clone(),
            self.store.clone(),
            self.config.download_timeout,
        );
        let bytes = self.rt.block_on(async move {
            // Tagged first, so garbage collection keeps what arrives.
            store
                .tags()
                .set(format!("checkpoint/{hash}"), blake3)
                .await
                .map_err(unavailable)?;
            match tokio::time::timeout(timeout, downloader.download(blake3, from)).await {
                Ok(Ok(())) => read_whole(&store, blake3).await.map(Some),
                Ok(Err(e)) => {
                    tracing::info!(%e, "checkpoint not fetched yet");
                    Ok(None)
                }
                Err(_) => Ok(None),
            }
        })?;
        // The caller checks the sha256; unverified bytes are never used. (The buffer is
        // not shared, so it becomes a Vec without a copy.)
        Ok(bytes.map(Vec::from))
    }
}
