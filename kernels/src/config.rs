//! What to quantize to: the bit width and the block size.

use crate::KernelError;

/// Bit width of the quantized values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bits {
    /// Signed 8-bit values in [-127, 127], round half to even.
    Int8,
    /// Signed 4-bit values in [-7, 7], two a byte, stochastic rounding.
    Int4,
}

impl Bits {
    /// The largest quantized magnitude: 127 for int8, 7 for int4.
    pub fn qmax(self) -> f32 {
        match self {
            Bits::Int8 => 127.0,
            Bits::Int4 => 7.0,
        }
    }

    /// The number of bits per value, as written in the wire header.
    pub fn width(self) -> u8 {
        match self {
            Bits::Int8 => 8,
            Bits::Int4 => 4,
        }
    }

    /// The inverse of [`Bits::width`].
    pub fn from_width(width: u8) -> Option<Self> {
        match width {
            8 => Some(Bits::Int8),
            4 => Some(Bits::Int4),
            _ => None,
        }
    }

    /// Bytes of packed data for `len` values.
    pub fn data_len(self, len: usize) -> usize {
        match self {
            Bits::Int8 => len,
            Bits::Int4 => len.div_ceil(2),
        }
    }
}

/// Bit width and block size; every `block` consecutive values share one f32 scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantConfig {
    /// Bit width of the quantized values.
    pub bits: Bits,
    /// Values per scale: a multiple of [`BLOCK_ALIGN`] in `BLOCK_ALIGN..=MAX_BLOCK`.
    pub block: usize,
}

/// Block sizes must be multiples of this: one CUDA warp per block lane-group, and an
/// int4 block always starts on a byte boundary.
pub const BLOCK_ALIGN: usize = 32;

/// The largest block size accepted (bounds a malicious header's claims).
pub const MAX_BLOCK: usize = 1 << 16;

impl QuantConfig {
    /// Int8 with 256 values per scale (the default).
    pub fn int8() -> Self {
        QuantConfig {
            bits: Bits::Int8,
            block: 256,
        }
    }

    /// Int4 with 64 values per scale (the default).
    pub fn int4() -> Self {
        QuantConfig {
            bits: Bits::Int4,
            block: 64,
        }
    }

    /// Refuses block sizes the kernels do not support.
    pub fn validate(&self) -> Result<(), KernelError> {
        if self.block < BLOCK_ALIGN
            || self.block > MAX_BLOCK
            || !self.block.is_multiple_of(BLOCK_ALIGN)
        {
            return Err(KernelError::InvalidConfig(format!(
                "block {} must be a multiple of {BLOCK_ALIGN} between {BLOCK_ALIGN} and {MAX_BLOCK}",
                self.block
            )));
        }
        Ok(())
    }

    /// Number of blocks (and scales) for `len` values (an invalid block 0 counts as 1).
    pub fn blocks(&self, len: usize) -> usize {
        len.div_ceil(self.block.max(1))
    }
}
