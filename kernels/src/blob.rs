//! `QuantizedBlob` and its versioned wire format: the bytes a peer sends and hashes.
//!
//! Layout (all integers and floats little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"CTQB"` |
//! | 4 | 1 | version, `1` |
//! | 5 | 1 | bits, `8` or `4` |
//! | 6 | 2 | reserved, `0` |
//! | 8 | 4 | block (values per scale) |
//! | 12 | 8 | element count `n` |
//! | 20 | 4·⌈n/block⌉ | scales, f32 |
//! | … | n (int8) or ⌈n/2⌉ (int4) | values: int8 two's complement; int4 two's-complement nibbles, element 2k in the low nibble of byte k, a zero high nibble after an odd last element |
//!
//! Every blob has exactly one encoding: decoding refuses anything the encoder cannot
//! produce (a negative or non-finite scale, -128 or a -8 nibble, a nonzero pad nibble,
//! trailing bytes), so equal values always mean equal hashes.

use sha2::{Digest, Sha256};

use crate::{Bits, KernelError, QuantConfig};

/// First bytes of every blob.
pub const MAGIC: [u8; 4] = *b"CTQB";

/// The wire version this crate writes and reads.
pub const VERSION: u8 = 1;

/// Bytes before the scales.
pub const HEADER_LEN: usize = 20;

/// Quantized values with their per-block scales: what a provider sends each round.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedBlob {
    cfg: QuantConfig,
    len: usize,
    scales: Vec<f32>,
    data: Vec<u8>,
}

impl QuantizedBlob {
    /// Assembles a blob from parts the kernels produced (sizes already consistent).
    pub(crate) fn from_parts(
        cfg: QuantConfig,
        len: usize,
        scales: Vec<f32>,
        data: Vec<u8>,
    ) -> Self {
        debug_assert_eq!(scales.len(), cfg.blocks(len));
        debug_assert_eq!(data.len(), cfg.bits.data_len(len));
        QuantizedBlob {
            cfg,
            len,
            scales,
            data,
        }
    }

    /// The buffers, for the kernels to resize and fill in place.
    pub(crate) fn buffers_mut(&mut self) -> (&mut Vec<f32>, &mut Vec<u8>) {
        (&mut self.scales, &mut self.data)
    }

    /// Sets what the buffers now hold (their sizes must match `cfg` and `len`).
    pub(crate) fn set_header(&mut self, cfg: QuantConfig, len: usize) {
        debug_assert_eq!(self.scales.len(), cfg.blocks(len));
        debug_assert_eq!(self.data.len(), cfg.bits.data_len(len));
        self.cfg = cfg;
        self.len = len;
    }

    /// Number of f32 values encoded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the blob encodes no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit width of the values.
    pub fn bits(&self) -> Bits {
        self.cfg.bits
    }

    /// Values per scale.
    pub fn block(&self) -> usize {
        self.cfg.block
    }

    /// The configuration the blob was quantized with.
    pub fn config(&self) -> QuantConfig {
        self.cfg
    }

    /// One f32 scale per block.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The packed quantized values.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Size of [`QuantizedBlob::to_bytes`] without building it.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + 4 * self.scales.len() + self.data.len()
    }

    /// The versioned wire format (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        out.extend_from_slice(&self.header());
        out.extend(self.scales.iter().flat_map(|s| s.to_le_bytes()));
        out.extend_from_slice(&self.data);
        out
    }

    /// sha256 of [`QuantizedBlob::to_bytes`]: the blob hash receipts commit to.
    pub fn hash(&self) -> [u8; 32] {
        // Streamed, so hashing a large blob does not copy it.
        let mut h = Sha256::new();
        h.update(self.header());
        let mut buf = [0u8; 4096];
        for group in self.scales.chunks(buf.len() / 4) {
            for (b, s) in buf.chunks_exact_mut(4).zip(group) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            h.update(&buf[..4 * group.len()]);
        }
        h.update(&self.data);
        h.finalize().into()
    }

    /// Parses and checks a wire blob; any truncation or inconsistency is `Malformed`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KernelError> {
        let bad = |what: String| Err(KernelError::Malformed(what));
        if bytes.len() < HEADER_LEN {
            return bad(format!(
                "{} bytes is shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            ));
        }
        if bytes[0..4] != MAGIC {
            return bad(format!(
                "magic {:02x?} is not {:02x?} (\"CTQB\")",
                &bytes[0..4],
                MAGIC
            ));
        }
        if bytes[4] != VERSION {
            return bad(format!(
                "version {} is not supported (this build reads {VERSION})",
                bytes[4]
            ));
        }
        let Some(bits) = Bits::from_width(bytes[5]) else {
            return bad(format!("bits {} is neither 8 nor 4", bytes[5]));
        };
        if bytes[6..8] != [0, 0] {
            return bad("reserved header bytes 6..8 are not zero".into());
        }
        let block = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
        let cfg = QuantConfig { bits, block };
        cfg.validate()
            .map_err(|e| KernelError::Malformed(format!("header: {e}")))?;
        let count = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        // Sizes in u128 so a hostile count cannot overflow before the length check.
        let n_blocks = u128::from(count).div_ceil(block as u128);
        let data_len = match bits {
            Bits::Int8 => u128::from(count),
            Bits::Int4 => u128::from(count).div_ceil(2),
        };
        let expected = HEADER_LEN as u128 + 4 * n_blocks + data_len;
        if expected != bytes.len() as u128 {
            return bad(format!(
                "header says {count} values ({n_blocks} scales, {data_len} data bytes: {expected} bytes in all) \
                 but the blob has {} bytes",
                bytes.len()
            ));
        }
        // The blob fits in memory, so every size above fits in usize.
        let (len, n_blocks) = (count as usize, n_blocks as usize);
        let scale_bytes = &bytes[HEADER_LEN..HEADER_LEN + 4 * n_blocks];
        let data = &bytes[HEADER_LEN + 4 * n_blocks..];
        let scales: Vec<f32> = scale_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        if let Some(i) = scales
            .iter()
            .position(|s| !s.is_finite() || s.is_sign_negative())
        {
            return bad(format!(
                "scale {i} is {} (scales are finite and non-negative)",
                scales[i]
            ));
        }
        check_values(bits, len, data)?;
        Ok(QuantizedBlob {
            cfg,
            len,
            scales,
            data: data.to_vec(),
        })
    }

    /// The 20 header bytes.
    fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[5] = self.cfg.bits.width();
        h[8..12].copy_from_slice(&(self.cfg.block as u32).to_le_bytes());
        h[12..20].copy_from_slice(&(self.len as u64).to_le_bytes());
        h
    }
}

/// Refuses value bytes the encoder never writes.
fn check_values(bits: Bits, len: usize, data: &[u8]) -> Result<(), KernelError> {
    let found = match bits {
        Bits::Int8 => data
            .iter()
            .position(|&b| b == 0x80)
            .map(|i| format!("value {i} is -128 (range is ±127)")),
        Bits::Int4 => {
            let bad_nibble = |b: u8| b & 0x0F == 0x08 || b & 0xF0 == 0x80;
            let pos = data.iter().position(|&b| bad_nibble(b));
            let pad = len % 2 == 1 && data.last().is_some_and(|&b| b >> 4 != 0);
            match (pos, pad) {
                (Some(i), _) => Some(format!("byte {i} holds a -8 nibble (range is ±7)")),
                (None, true) => Some("the pad nibble after the odd last value is not zero".into()),
                (None, false) => None,
            }
        }
    };
    match found {
        Some(what) => Err(KernelError::Malformed(what)),
        None => Ok(()),
    }
}
