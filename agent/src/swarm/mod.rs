//! [`Swarm`]: the providers' [`Peers`] over the network, with iroh — QUIC between
//! endpoints that dial each other by public key. Each provider is one iroh endpoint
//! whose id it registered on the run contract (see [`node`]); the contract's provider
//! list is how the providers find each other.
//!
//! A round, as this module moves it:
//! - **serve**: the provider's blob goes into its iroh-blobs store (on disk, verified
//!   streaming by BLAKE3), tagged with its round;
//! - **announce**: a signed [`announce::Announcement`] (round, sha256, BLAKE3, length)
//!   goes out on the run's gossip topic, and again every second while it is the newest,
//!   so a peer that joined late or restarted still hears it (gossip keeps no history);
//! - **fetch**: for every active provider whose announcement for the round arrived, the
//!   blob is downloaded from its author and kept only if its bytes have the announced
//!   sha256; an author that announces two different blobs for one round is left out of
//!   that round. Who did not deliver by the provider loop's deadline is left out.
//!
//! Checkpoints are announced and fetched the same way (by their sha256, which the chain
//! holds), so a provider that joins late or lost its state gets the last finalized
//! checkpoint from its peers. Blobs of rounds older than `keep_rounds` are dropped.

pub mod announce;
pub mod ask;
mod exchange;
mod ledger;
pub mod node;
mod tags;
#[cfg(test)]
mod tests;

use crate::provider::chain::ProviderInfo;
use crate::provider::peers::PeersError;
use announce::Announcement;
use ask::Question;
use crowdtrain_protocol::{Hash32, sha256};
use iroh::address_lookup::MemoryLookup;
use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, EndpointId, SecretKey, TransportAddr};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::api::downloader::Downloader;
use iroh_blobs::protocol::{ChunkRanges, ChunkRangesExt, GetRequest};
use iroh_blobs::store::GcConfig;
use iroh_blobs::store::fs::FsStore;
use iroh_blobs::store::fs::options::Options;
use iroh_gossip::api::{Event, GossipSender};
use iroh_gossip::{Gossip, TopicId};
use ledger::{Heard, record};
use n0_future::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tags::{OWN, restore_own, round_tag};

/// How a provider's endpoint is set up.
#[derive(Clone, Debug)]
pub struct SwarmConfig {
    /// The address to bind (`127.0.0.1:0` in tests; a fixed port for a registered node).
    pub listen: SocketAddr,
    /// Use iroh's public relays and DNS lookup (the internet, behind NATs). Off: peers
    /// are dialed only at the addresses in their registered node ids, and nothing
    /// leaves the machines involved.
    pub relays: bool,
    /// Blobs of this many rounds before the newest stay on disk; older ones are dropped.
    pub keep_rounds: u64,
    /// How long one download from one peer may take before it is tried again later.
    pub download_timeout: Duration,
    /// Largest blob a peer may announce: a bigger one is never fetched (a provider's
    /// bond does not buy it our disk). `train` sets it from the run's model size.
    pub max_blob_bytes: u64,
    /// How often the newest announcements are sent again.
    pub announce_every: Duration,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            relays: false,
            keep_rounds: 4,
            download_timeout: Duration::from_secs(120),
            max_blob_bytes: 4 << 30,
            announce_every: Duration::from_secs(1),
        }
    }
}

/// Where the download of one peer's blob stands.
#[derive(Clone, Debug)]
enum Fetch {
    /// Running in the background.
    Pending,
    /// Arrived with the announced sha256 (shared with every `round_blobs` answer).
    Done(bytes::Bytes),
    /// Arrived with other bytes than announced: never used.
    Refused,
    /// Failed (unreachable, timed out); tried again after `RETRY`.
    Failed(std::time::Instant),
}

/// Pause before a failed download is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// Why the swarm could not start.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The async runtime could not be built.
    #[error("starting the network runtime: {0}")]
    Runtime(std::io::Error),
    /// The endpoint could not bind its address.
    #[error(
        "binding {addr} for peer-to-peer traffic: {reason} (is another crowdtrain using the port? pick another with --listen)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What iroh said.
        reason: String,
    },
    /// The blob store could not be opened.
    #[error("opening the blob store {path}: {reason}")]
    Store {
        /// Its folder.
        path: PathBuf,
        /// What iroh-blobs said.
        reason: String,
    },
    /// The gossip topic could not be joined.
    #[error("joining the run's gossip topic: {0}")]
    Gossip(String),
}

/// One provider's endpoint, blob store and gossip subscription (see the module doc).
pub struct Swarm {
    rt: tokio::runtime::Runtime,
    router: Option<Router>,
    store: FsStore,
    downloader: Downloader,
    lookup: MemoryLookup,
    sender: GossipSender,
    heard: Arc<Mutex<Heard>>,
    /// Blob downloads by (round, author).
    fetched: Arc<Mutex<BTreeMap<(u64, EndpointId), Fetch>>>,
    /// Peers given to gossip so far.
    joined: Mutex<BTreeSet<EndpointId>>,
    /// When each peer was last asked each question directly.
    asked: Mutex<BTreeMap<(Question, EndpointId), std::time::Instant>>,
    run: String,
    key: SecretKey,
    config: SwarmConfig,
}

fn unavailable(e: impl std::fmt::Display) -> PeersError {
    PeersError::Unavailable(e.to_string())
}

impl Swarm {
    /// Starts the endpoint on `config.listen` with node key `key`, the blob store in
    /// `dir`, and joins run `run`'s gossip topic through `providers` (those whose node ids
    /// this swarm can read). Runs its own threads; call from synchronous code.
    pub fn open(
        run: &str,
        key: SecretKey,
        dir: &Path,
        providers: &[ProviderInfo],
        config: SwarmConfig,
    ) -> Result<Self, SwarmError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("crowdtrain-swarm")
            .enable_all()
            .build()
            .map_err(SwarmError::Runtime)?;
        let lookup = MemoryLookup::new();
        let heard = Arc::new(Mutex::new(Heard::default()));
        let store_dir = dir.to_path_buf();
        let (router, store, downloader, sender) = rt.block_on(async {
            let builder = if config.relays {
                Endpoint::builder(presets::N0)
            } else {
                Endpoint::builder(presets::Minimal)
            };
            let bind_err = |e: &dyn std::fmt::Display| SwarmError::Bind {
                addr: config.listen,
                reason: e.to_string(),
            };
            let endpoint = builder
                .secret_key(key.clone())
                .clear_ip_transports()
                .bind_addr(config.listen)
                .map_err(|e| bind_err(&e))?
                .address_lookup(lookup.clone())
                .bind()
                .await
                .map_err(|e| bind_err(&e))?;
            let mut options = Options::new(&store_dir);
            options.gc = Some(GcConfig {
                interval: Duration::from_secs(10),
                add_protected: None,
            });
            let store = FsStore::load_with_opts(store_dir.join("blobs.db"), options)
                .await
                .map_err(|e| SwarmError::Store {
                    path: store_dir.clone(),
                    reason: e.to_string(),
                })?;
            {
                let own = restore_own(&store, key.public()).await;
                let mut heard = heard.lock().expect("heard lock");
                for a in &own {
                    record(&mut heard, a.clone());
                }
                heard.own = own;
            }
            let gossip = Gossip::builder().spawn(endpoint.clone());
            let downloader = Downloader::new(&store, &endpoint);
            let answerer = ask::Answerer {
                heard: heard.clone(),
                run: run.to_string(),
                key: key.clone(),
            };
            let router = Router::builder(endpoint)
                .accept(iroh_blobs::ALPN, BlobsProtocol::new(&store, None))
                .accept(iroh_gossip::ALPN, gossip.clone())
                .accept(ask::ALPN, answerer)
                .spawn();
            let topic = gossip
                .subscribe(topic_of(run), Vec::new())
                .await
                .map_err(|e| SwarmError::Gossip(e.to_string()))?;
            let (sender, mut receiver) = topic.split();
            let (heard, run) = (heard.clone(), run.to_string());
            tokio::spawn(async move {
                while let Some(event) = receiver.next().await {
                    match event {
                        Ok(Event::Received(m)) => match Announcement::verify(&m.content, &run) {
                            Ok(a) => {
                                tracing::trace!(author = %a.author, round = a.round, kind = ?a.kind, "heard");
                                record(&mut heard.lock().expect("heard lock"), a)
                            }
                            Err(e) => tracing::debug!(from = %m.delivered_from, %e, "gossip message ignored"),
                        },
                        Ok(Event::Lagged) => tracing::warn!("gossip receiver lagged; some announcements were lost (they are re-sent)"),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(%e, "gossip subscription ended");
                            break;
                        }
                    }
                }
                tracing::warn!("gossip subscription closed; no more announcements are heard");
            });
            Ok::<_, SwarmError>((router, store, downloader, sender))
        })?;
        let swarm = Self {
            rt,
            router: Some(router),
            store,
            downloader,
            lookup,
            sender,
            heard,
            fetched: Arc::new(Mutex::new(BTreeMap::new())),
            joined: Mutex::new(BTreeSet::new()),
            asked: Mutex::new(BTreeMap::new()),
            run: run.to_string(),
            key,
            config,
        };
        swarm.rt.spawn(rebroadcast(
            swarm.heard.clone(),
            swarm.sender.clone(),
            swarm.run.clone(),
            swarm.key.clone(),
            swarm.config.announce_every,
        ));
        swarm.meet(providers);
        Ok(swarm)
    }

    /// This node's endpoint id (what `crowdtrain register` puts on chain).
    pub fn id(&self) -> EndpointId {
        self.key.public()
    }

    /// The blob announcements heard for `round`: author → sha256 (what an auditor
    /// reports when a provider's blob does not come).
    pub fn announced(&self, round: u64) -> BTreeMap<EndpointId, Hash32> {
        let heard = self.heard.lock().expect("heard lock");
        heard
            .blobs
            .get(&round)
            .map(|m| m.iter().map(|(k, a)| (*k, a.sha256)).collect())
            .unwrap_or_default()
    }

    /// The addresses the endpoint is bound to.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.router
            .as_ref()
            .map(|r| r.endpoint().bound_sockets())
            .unwrap_or_default()
    }

    /// Learns the providers' node ids and addresses and joins the new ones on gossip;
    /// returns account → endpoint id of those with a readable node id.
    fn meet(&self, providers: &[ProviderInfo]) -> BTreeMap<String, EndpointId> {
        let mut ids = BTreeMap::new();
        let mut new = Vec::new();
        let mut joined = self.joined.lock().expect("joined lock");
        for p in providers {
            let Some((id, addr)) = node::parse_node_id(&p.node_id) else {
                continue;
            };
            ids.insert(p.account.clone(), id);
            if id == self.id() {
                continue;
            }
            if let Some(addr) = addr {
                self.lookup
                    .add_endpoint_info(EndpointAddr::from_parts(id, [TransportAddr::Ip(addr)]));
            }
            if joined.insert(id) {
                new.push(id);
            }
        }
        if !new.is_empty() {
            let sender = self.sender.clone();
            if let Err(e) = self.rt.block_on(sender.join_peers(new)) {
                tracing::warn!(%e, "could not ask gossip to join peers");
            }
        }
        ids
    }

    /// Asks `peer` directly (at most every `RETRY`), in the background; what it
    /// answers is recorded as if gossip had brought it.
    fn ask(&self, question: Question, peer: EndpointId) {
        {
            let mut asked = self.asked.lock().expect("asked lock");
            let now = std::time::Instant::now();
            if asked
                .get(&(question, peer))
                .is_some_and(|t| now.duration_since(*t) < RETRY)
            {
                return;
            }
            asked.insert((question, peer), now);
        }
        let Some(endpoint) = self.router.as_ref().map(|r| r.endpoint().clone()) else {
            return;
        };
        let (heard, run) = (self.heard.clone(), self.run.clone());
        self.rt.spawn(async move {
            match ask::ask(&endpoint, peer, question, &run).await {
                Ok(answers) => {
                    tracing::debug!(%peer, ?question, answers = answers.len(), "asked directly");
                    let mut heard = heard.lock().expect("heard lock");
                    for a in answers {
                        record(&mut heard, a);
                    }
                }
                Err(e) => tracing::debug!(%peer, ?question, %e, "asked directly; no answer"),
            }
        });
    }

    /// Adds `bytes` to the store (on disk) under tag `tag`; returns its BLAKE3. The
    /// store reads the caller's bytes; it does not copy them in memory.
    fn add(&self, tag: &str, bytes: bytes::Bytes) -> Result<iroh_blobs::Hash, PeersError> {
        let store = self.store.clone();
        let tag = tag.to_string();
        let added = self
            .rt
            .block_on(async move { store.add_bytes(bytes).with_named_tag(tag).await })
            .map_err(unavailable)?;
        Ok(added.hash)
    }

    /// Announces `a` now and keeps re-announcing it, with this node's blobs of the
    /// newest `keep_rounds` rounds and its newest `keep_rounds + 1` checkpoints.
    fn announce(&self, a: Announcement) {
        let bytes = {
            let mut heard = self.heard.lock().expect("heard lock");
            if let Some(old) = heard.keep_own(a.clone(), self.config.keep_rounds) {
                // A checkpoint too old to be a kept round's base leaves the store too.
                let store = self.store.clone();
                self.rt.spawn(async move {
                    let _ = store
                        .tags()
                        .delete(format!("{OWN}checkpoint/{}", old.sha256))
                        .await;
                });
            }
            heard.signed(a, &self.run, &self.key)
        };
        let sender = self.sender.clone();
        if let Err(e) = self.rt.block_on(sender.broadcast(bytes.into())) {
            tracing::warn!(%e, "announcement not sent now; it is re-sent every second");
        }
    }

    /// Drops the blobs of rounds before `round − keep_rounds` (tags go now, bytes at the
    /// store's next garbage collection).
    fn forget_before(&self, round: u64) {
        let Some(cutoff) = round.checked_sub(self.config.keep_rounds) else {
            return;
        };
        let old: Vec<u64> = {
            let mut heard = self.heard.lock().expect("heard lock");
            let old: Vec<u64> = heard.blobs.range(..cutoff).map(|(r, _)| *r).collect();
            for r in &old {
                heard.blobs.remove(r);
            }
            heard.equivocated.retain(|(r, _)| *r >= cutoff);
            old
        };
        self.fetched
            .lock()
            .expect("fetched lock")
            .retain(|(r, _), _| *r >= cutoff);
        self.asked
            .lock()
            .expect("asked lock")
            .retain(|(q, _), _| !matches!(q, Question::Blobs(r) if *r < cutoff));
        let store = self.store.clone();
        for r in old {
            let store = store.clone();
            let _ = self.rt.block_on(async move {
                let _ = store.tags().delete_prefix(round_tag(r)).await;
                store
                    .tags()
                    .delete_prefix(format!("{OWN}{}", round_tag(r)))
                    .await
            });
        }
    }

    /// Starts downloading blob `a` in the background from `from` (its author first,
    /// then the peers that may have fetched it); the result lands in `fetched` (kept
    /// only if the bytes have the announced sha256).
    fn spawn_download(&self, a: Announcement, from: Vec<EndpointId>) {
        let (store, downloader) = (self.store.clone(), self.downloader.clone());
        let (fetched, timeout) = (self.fetched.clone(), self.config.download_timeout);
        let tag = format!("{}{}", round_tag(a.round), a.sha256);
        self.rt.spawn(async move {
            let got = async {
                // Tagged first, so garbage collection keeps what arrives.
                store.tags().set(tag, a.blake3).await.map_err(unavailable)?;
                // Only the announced length is asked for (BLAKE3-verified chunk by
                // chunk): a peer whose blob is larger than it said cannot make us
                // store more than that, whatever it serves.
                let request = GetRequest::blob_ranges(a.blake3, ChunkRanges::bytes(0..a.len));
                match tokio::time::timeout(timeout, downloader.download(request, from)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(unavailable(e)),
                    Err(_) => return Err(unavailable("download timed out")),
                }
                // A blob longer than announced stays partial here: reading it fails
                // and it is tried again (at no cost: what was asked for is held).
                read_whole(&store, a.blake3).await
            }
            .await;
            let state = match got {
                Ok(b) if b.len() as u64 == a.len && sha256(&b) == a.sha256 => {
                    Fetch::Done(b)
                }
                Ok(_) => {
                    tracing::warn!(author = %a.author, round = a.round, "the bytes served do not have the announced sha256; refused");
                    Fetch::Refused
                }
                Err(e) => {
                    tracing::info!(author = %a.author, round = a.round, %e, "blob not fetched yet; trying again");
                    Fetch::Failed(std::time::Instant::now())
                }
            };
            fetched.lock().expect("fetched lock").insert((a.round, a.author), state);
        });
    }
}

/// The whole blob `hash` from the store, read into one buffer as it streams off disk
/// (iroh-blobs' `get_bytes` gathers every chunk before it joins them: twice the blob in
/// memory). Fails unless the store holds all of it.
async fn read_whole(store: &FsStore, hash: iroh_blobs::Hash) -> Result<bytes::Bytes, PeersError> {
    let bytes = store
        .blobs()
        .export_bao(hash, ChunkRanges::all())
        .data_to_vec()
        .await
        .map_err(unavailable)?;
    Ok(bytes.into())
}

/// Sends this node's newest announcements again, every `every`, with fresh sequence
/// numbers (gossip drops a message it has seen in the last 90 seconds).
async fn rebroadcast(
    heard: Arc<Mutex<Heard>>,
    sender: GossipSender,
    run: String,
    key: SecretKey,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let messages: Vec<Vec<u8>> = {
            let mut heard = heard.lock().expect("heard lock");
            let own = heard.own.clone();
            own.into_iter()
                .map(|a| heard.signed(a, &run, &key))
                .collect()
        };
        for m in messages {
            if let Err(e) = sender.broadcast(m.into()).await {
                tracing::warn!(%e, "gossip closed; announcements stop");
                return;
            }
        }
    }
}

/// The run's gossip topic.
fn topic_of(run: &str) -> TopicId {
    TopicId::from_bytes(
        sha256(
            [b"crowdtrain:gossip:v1\0".as_slice(), run.as_bytes()]
                .concat()
                .as_slice(),
        )
        .0,
    )
}

impl Drop for Swarm {
    fn drop(&mut self) {
        if let Some(router) = self.router.take() {
            // Leaves the topic, shuts the blob store and closes the endpoint (≤ 3 s).
            let _ = self.rt.block_on(router.shutdown());
        }
    }
}
