//! The pull path beside gossip: a peer that has not heard a registered provider's
//! announcement (gossip reaches a newcomer only once the overlay has taken it in) asks
//! that provider directly, over its own ALPN, and gets the same signed announcements
//! back. Request: `0 ‖ round u64 LE` (its blobs of that round) or `1 ‖ sha256` (that
//! checkpoint); answer: zero or more announcements back to back. Answers are verified
//! like gossip: signed by the key the chain lists for that peer.

use super::announce::{self, Announcement, Kind};
use super::ledger::Heard;
use crowdtrain_protocol::Hash32;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use iroh::{Endpoint, EndpointId, SecretKey};
use std::sync::{Arc, Mutex};

/// The protocol's ALPN.
pub const ALPN: &[u8] = b"crowdtrain/announce/1";
/// How long connecting to a peer to ask may take.
const ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Most announcements one answer carries.
const MAX_ANSWERS: usize = 64;

/// What to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Question {
    /// The peer's blobs of a round.
    Blobs(u64),
    /// A checkpoint, if the peer serves it.
    Checkpoint(Hash32),
}

impl Question {
    fn encode(self) -> Vec<u8> {
        match self {
            Question::Blobs(round) => [&[0u8][..], &round.to_le_bytes()].concat(),
            Question::Checkpoint(h) => [&[1u8][..], &h.0].concat(),
        }
    }

    fn decode(b: &[u8]) -> Option<Self> {
        match (b.first()?, b.len()) {
            (0, 9) => Some(Question::Blobs(u64::from_le_bytes(
                b[1..9].try_into().ok()?,
            ))),
            (1, 33) => Some(Question::Checkpoint(Hash32(b[1..33].try_into().ok()?))),
            _ => None,
        }
    }

    fn matches(self, a: &Announcement) -> bool {
        match self {
            Question::Blobs(round) => a.kind == Kind::Blob && a.round == round,
            Question::Checkpoint(h) => a.kind == Kind::Checkpoint && a.sha256 == h,
        }
    }
}

/// Answers questions with this node's own announcements.
#[derive(Clone)]
pub struct Answerer {
    pub(super) heard: Arc<Mutex<Heard>>,
    pub(super) run: String,
    pub(super) key: SecretKey,
}

impl std::fmt::Debug for Answerer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answerer").field("run", &self.run).finish()
    }
}

impl ProtocolHandler for Answerer {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(AcceptError::from_err)?;
        let request = recv.read_to_end(64).await.map_err(AcceptError::from_err)?;
        let Some(question) = Question::decode(&request) else {
            conn.close(1u32.into(), b"not a question");
            return Ok(());
        };
        let answers: Vec<u8> = {
            let mut heard = self.heard.lock().expect("heard lock");
            let mine: Vec<Announcement> = heard
                .own
                .iter()
                .filter(|a| question.matches(a))
                .take(MAX_ANSWERS)
                .cloned()
                .collect();
            tracing::debug!(?question, answers = mine.len(), "asked");
            mine.into_iter()
                .flat_map(|a| heard.signed(a, &self.run, &self.key))
                .collect()
        };
        send.write_all(&answers)
            .await
            .map_err(AcceptError::from_err)?;
        send.finish()?;
        // Wait for the asker to read and close (bounded by the connection's idle timeout).
        conn.closed().await;
        Ok(())
    }
}

/// Asks `peer` and returns the announcements it answered that verify as its own.
pub async fn ask(
    endpoint: &Endpoint,
    peer: EndpointId,
    question: Question,
    run: &str,
) -> Result<Vec<Announcement>, String> {
    let conn = tokio::time::timeout(ASK_TIMEOUT, endpoint.connect(peer, ALPN))
        .await
        .map_err(|_| "connecting timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&question.encode())
        .await
        .map_err(|e| e.to_string())?;
    send.finish().map_err(|e| e.to_string())?;
    let bytes = tokio::time::timeout(ASK_TIMEOUT, recv.read_to_end(announce::LEN * MAX_ANSWERS))
        .await
        .map_err(|_| "the answer timed out".to_string())?
        .map_err(|e| e.to_string())?;
    conn.close(0u32.into(), b"thanks");
    Ok(bytes
        .chunks(announce::LEN)
        .filter_map(|c| Announcement::verify(c, run).ok())
        .filter(|a| a.author == peer && question.matches(a))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_read_back_and_nothing_else_does() {
        for q in [Question::Blobs(7), Question::Checkpoint(Hash32([3; 32]))] {
            assert_eq!(Question::decode(&q.encode()), Some(q));
        }
        assert_eq!(Question::decode(&[0, 1, 2]), None);
        assert_eq!(Question::decode(&[9; 9]), None);
        assert_eq!(Question::decode(&[]), None);
    }
}
