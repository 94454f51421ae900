//! 256-bit arithmetic for the royalty accumulator, with the rounding direction in
//! every name. Royalties are tracked in units of 2⁻¹²⁸ yoctoNEAR: finer than one
//! yocto divided by any possible supply, so per-payment rounding stays below one
//! yocto in total and the remainder is carried, not lost.

use near_sdk::borsh::{self, BorshDeserialize, BorshSerialize};

#[allow(clippy::manual_div_ceil, clippy::assign_op_pattern)]
mod wide {
    uint::construct_uint! {
        /// An unsigned 256-bit integer.
        pub struct U256Raw(4);
    }
}
use wide::U256Raw;

/// An unsigned 256-bit integer stored as 32 little-endian bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct U256(U256Raw);

/// One yoctoNEAR in accumulator units (2¹²⁸).
pub fn one_yocto_scaled() -> U256 {
    U256(U256Raw::one() << 128)
}

impl U256 {
    /// Zero.
    pub fn zero() -> Self {
        U256(U256Raw::zero())
    }
    /// `v` widened.
    #[cfg(test)]
    pub fn from_u128(v: u128) -> Self {
        U256(U256Raw::from(v))
    }
    /// `a × b`, exact (panics only beyond 2²⁵⁶, impossible for u128 × scaled yocto).
    pub fn mul_u128(self, b: u128) -> Self {
        U256(
            self.0
                .checked_mul(U256Raw::from(b))
                .expect("royalty math overflow"),
        )
    }
    /// `self + b`.
    pub fn add(self, b: U256) -> Self {
        U256(self.0.checked_add(b.0).expect("royalty math overflow"))
    }
    /// `self − b`, panicking below zero (a bookkeeping bug, never user input).
    pub fn sub(self, b: U256) -> Self {
        U256(self.0.checked_sub(b.0).expect("royalty math underflow"))
    }
    /// `(self / d, self % d)` for a nonzero divisor.
    pub fn div_rem_floor(self, d: u128) -> (U256, U256) {
        let (q, r) = self.0.div_mod(U256Raw::from(d));
        (U256(q), U256(r))
    }
    /// `a × b / c` rounded down, for `c ≥ b` (so the result fits in u128).
    pub fn mul_div_floor(a: u128, b: u128, c: u128) -> u128 {
        let q = U256Raw::from(a) * U256Raw::from(b) / U256Raw::from(c);
        q.as_u128()
    }
    /// `a × b / c` rounded up, for `c ≥ b`.
    pub fn mul_div_ceil(a: u128, b: u128, c: u128) -> u128 {
        let (q, r) = (U256Raw::from(a) * U256Raw::from(b)).div_mod(U256Raw::from(c));
        let up = if r.is_zero() { 0u8 } else { 1 };
        (q + U256Raw::from(up)).as_u128()
    }
    /// Whole yoctoNEAR in an amount of accumulator units, rounded down, and the
    /// fractional rest in accumulator units.
    pub fn to_yocto_floor(self) -> (u128, U256) {
        let whole = self.0 >> 128;
        let rest = self.0 - (whole << 128);
        (whole.as_u128(), U256(rest))
    }
}

impl BorshSerialize for U256 {
    fn serialize<W: borsh::io::Write>(&self, writer: &mut W) -> borsh::io::Result<()> {
        let mut bytes = [0u8; 32];
        self.0.to_little_endian(&mut bytes);
        writer.write_all(&bytes)
    }
}

impl BorshDeserialize for U256 {
    fn deserialize_reader<R: borsh::io::Read>(reader: &mut R) -> borsh::io::Result<Self> {
        let mut bytes = [0u8; 32];
        reader.read_exact(&mut bytes)?;
        Ok(U256(U256Raw::from_little_endian(&bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yocto_split_keeps_the_fraction() {
        let x = one_yocto_scaled().mul_u128(5).add(U256::from_u128(7));
        assert_eq!(x.to_yocto_floor(), (5, U256::from_u128(7)));
        let (q, r) = U256::from_u128(100).div_rem_floor(7);
        assert_eq!((q, r), (U256::from_u128(14), U256::from_u128(2)));
    }

    #[test]
    fn borsh_round_trips() {
        let x = one_yocto_scaled()
            .mul_u128(u128::MAX)
            .add(U256::from_u128(3));
        let bytes = borsh::to_vec(&x).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(borsh::from_slice::<U256>(&bytes).unwrap(), x);
    }
}
