//! The one message providers gossip: "my blob of round R (or: checkpoint S) is the
//! bytes with sha256 S and BLAKE3 B, N bytes long", signed by the author's node key —
//! the key whose id the author registered on the run contract, so nobody can announce
//! for another. The payload itself moves with iroh-blobs, addressed by B; the sha256 is
//! what the chain and the aggregation speak.
//!
//! Wire format (fixed size, 218 bytes — far below gossip's 4 KiB cap):
//!
//! | bytes | what |
//! |---|---|
//! | 0 | version, 1 |
//! | 1 | kind: 0 = round blob, 1 = checkpoint |
//! | 2..34 | sha256 of the run id (an announcement is valid for one run only) |
//! | 34..42 | round, u64 little-endian (0 for a checkpoint) |
//! | 42..74 | sha256 of the payload |
//! | 74..106 | BLAKE3 of the payload (its iroh-blobs hash) |
//! | 106..114 | payload length, u64 LE |
//! | 114..122 | sequence number, u64 LE (rebroadcasts differ, so gossip does not drop them as repeats) |
//! | 122..154 | author's node id (ed25519 public key) |
//! | 154..218 | ed25519 signature of `TAG ‖ bytes 0..154` |

use crowdtrain_protocol::{Hash32, sha256};
use iroh::{EndpointId, SecretKey, Signature};

/// Domain tag of the signature: these bytes can never be mistaken for another message.
pub const TAG: &[u8] = b"crowdtrain:announce:v1\0";
/// Bytes covered by the signature (after the tag).
const SIGNED: usize = 154;
/// The whole message.
pub const LEN: usize = SIGNED + 64;

/// What is announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A provider's compressed pseudo-gradient of one round.
    Blob,
    /// A canonical checkpoint file.
    Checkpoint,
}

/// A verified announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// Blob or checkpoint.
    pub kind: Kind,
    /// The chain round of a blob (0 for a checkpoint).
    pub round: u64,
    /// sha256 of the payload.
    pub sha256: Hash32,
    /// BLAKE3 of the payload: what iroh-blobs fetches.
    pub blake3: iroh_blobs::Hash,
    /// Payload length in bytes.
    pub len: u64,
    /// Sequence number (ignored but signed).
    pub seq: u64,
    /// Who announced it.
    pub author: EndpointId,
}

/// Why a gossip message was not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// Not the size or version of an announcement.
    #[error("not a crowdtrain announcement ({0} bytes)")]
    Malformed(usize),
    /// For another run.
    #[error("announcement for another run")]
    OtherRun,
    /// The signature does not verify under the author's key.
    #[error("announcement signature does not verify")]
    BadSignature,
}

/// The run binding of every announcement.
pub fn run_tag(run: &str) -> Hash32 {
    sha256(run.as_bytes())
}

impl Announcement {
    /// Encodes and signs with `key` (whose public key becomes the author).
    pub fn sign(&self, run: &str, key: &SecretKey) -> Vec<u8> {
        let mut b = Vec::with_capacity(LEN);
        b.push(1);
        b.push(match self.kind {
            Kind::Blob => 0,
            Kind::Checkpoint => 1,
        });
        b.extend_from_slice(&run_tag(run).0);
        b.extend_from_slice(&self.round.to_le_bytes());
        b.extend_from_slice(&self.sha256.0);
        b.extend_from_slice(self.blake3.as_bytes());
        b.extend_from_slice(&self.len.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(key.public().as_bytes());
        debug_assert_eq!(b.len(), SIGNED);
        let sig = key.sign(&signed_message(&b));
        b.extend_from_slice(&sig.to_bytes());
        b
    }

    /// Decodes a message of run `run` and checks its signature.
    pub fn verify(bytes: &[u8], run: &str) -> Result<Self, AnnounceError> {
        if bytes.len() != LEN || bytes[0] != 1 {
            return Err(AnnounceError::Malformed(bytes.len()));
        }
        let kind = match bytes[1] {
            0 => Kind::Blob,
            1 => Kind::Checkpoint,
            _ => return Err(AnnounceError::Malformed(bytes.len())),
        };
        if bytes[2..34] != run_tag(run).0 {
            return Err(AnnounceError::OtherRun);
        }
        let arr32 = |at: usize| -> [u8; 32] { bytes[at..at + 32].try_into().expect("32 bytes") };
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let author =
            EndpointId::from_bytes(&arr32(122)).map_err(|_| AnnounceError::BadSignature)?;
        let sig = Signature::from_bytes(bytes[SIGNED..].try_into().expect("64 bytes"));
        author
            .verify(&signed_message(&bytes[..SIGNED]), &sig)
            .map_err(|_| AnnounceError::BadSignature)?;
        Ok(Self {
            kind,
            round: u64_at(34),
            sha256: Hash32(arr32(42)),
            blake3: iroh_blobs::Hash::from_bytes(arr32(74)),
            len: u64_at(106),
            seq: u64_at(114),
            author,
        })
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    [TAG, body].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(author: &SecretKey) -> Announcement {
        Announcement {
            kind: Kind::Blob,
            round: 7,
            sha256: sha256(b"blob"),
            blake3: iroh_blobs::Hash::new(b"blob"),
            len: 4,
            seq: 3,
            author: author.public(),
        }
    }

    #[test]
    fn an_announcement_verifies_only_as_signed_and_only_for_its_run() {
        let key = SecretKey::from_bytes(&[5; 32]);
        let a = sample(&key);
        let bytes = a.sign("gpt.factory.near", &key);
        assert_eq!(bytes.len(), LEN);
        assert_eq!(Announcement::verify(&bytes, "gpt.factory.near").unwrap(), a);
        assert_eq!(
            Announcement::verify(&bytes, "other.factory.near"),
            Err(AnnounceError::OtherRun)
        );
        // Any changed byte (round, hash, author) breaks the signature.
        for at in [1usize, 40, 50, 80, 110, 130, 200] {
            let mut evil = bytes.clone();
            evil[at] ^= 1;
            assert!(
                Announcement::verify(&evil, "gpt.factory.near").is_err(),
                "byte {at} changed"
            );
        }
        // Someone else's key cannot announce for this author.
        let mallory = SecretKey::from_bytes(&[6; 32]);
        let mut forged = a.sign("gpt.factory.near", &mallory);
        forged[122..154].copy_from_slice(key.public().as_bytes());
        assert_eq!(
            Announcement::verify(&forged, "gpt.factory.near"),
            Err(AnnounceError::BadSignature)
        );
        assert_eq!(
            Announcement::verify(&bytes[..100], "gpt.factory.near"),
            Err(AnnounceError::Malformed(100))
        );
    }
}
