//! A provider's identity on the network: an ed25519 node key kept in the state
//! directory (separate from the receipt-signing key and from the NEAR account key), and
//! the node id string it registers on the run contract, which is how the other
//! providers find and authenticate it.
//!
//! Node id on chain: `<endpoint id, 64 hex>` (found through relays and DNS lookup on the
//! internet) or `<endpoint id>@<ip:port>` (dialed directly: local runs, or a machine with
//! an open port).

use crate::provider::durable::write_atomic;
use iroh::{EndpointId, SecretKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The node key's file name in the state directory.
pub const NODE_KEY_FILE: &str = "node_key";

/// Why the node key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    /// The file could not be read or written.
    #[error("node key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not 64 hex characters.
    #[error(
        "node key {0} is damaged (expected 64 hex characters); delete it to make a new one, then register the new node id"
    )]
    Damaged(PathBuf),
}

/// The node key in `dir`, made (from the OS's randomness) and saved if there is none.
pub fn load_or_create(dir: &Path) -> Result<SecretKey, NodeKeyError> {
    let path = dir.join(NODE_KEY_FILE);
    let io = |source| NodeKeyError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes =
                decode_hex32(text.trim()).ok_or_else(|| NodeKeyError::Damaged(path.clone()))?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::fill(&mut seed);
            let key = SecretKey::from_bytes(&seed);
            std::fs::create_dir_all(dir).map_err(io)?;
            let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
            write_atomic(&path, format!("{hex}\n").as_bytes()).map_err(io)?;
            restrict(&path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The node id string to register: the endpoint id, and the address others dial if
/// there is one.
pub fn node_id(id: EndpointId, addr: Option<SocketAddr>) -> String {
    match addr {
        Some(a) => format!("{id}@{a}"),
        None => id.to_string(),
    }
}

/// Reads a registered node id; `None` if it is not one (a provider registered without
/// the swarm, e.g. with a free-form `--node-id`).
pub fn parse_node_id(s: &str) -> Option<(EndpointId, Option<SocketAddr>)> {
    let (id, addr) = match s.split_once('@') {
        Some((id, addr)) => (id, Some(addr.parse().ok()?)),
        None => (s, None),
    };
    Some((id.parse().ok()?, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_node_ids_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public(), b.public(), "the same key on every start");
        let addr: SocketAddr = "127.0.0.1:4041".parse().unwrap();
        let s = node_id(a.public(), Some(addr));
        assert_eq!(parse_node_id(&s), Some((a.public(), Some(addr))));
        assert_eq!(
            parse_node_id(&node_id(a.public(), None)),
            Some((a.public(), None))
        );
        assert_eq!(parse_node_id("alice-node"), None);
        assert_eq!(parse_node_id(&format!("{}@nowhere", a.public())), None);
        std::fs::write(dir.path().join(NODE_KEY_FILE), "zz").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains("delete it to make a new one"), "{err}");
    }
}
