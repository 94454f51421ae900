//! NEAR amounts as people type and read them ("10", "0.5") and as the chain keeps
//! them (yoctoNEAR, 10⁻²⁴ NEAR), converted exactly (no floating point).

/// yoctoNEAR in one NEAR.
pub const YOCTO_PER_NEAR: u128 = 10u128.pow(24);

/// Why a text is not an amount of NEAR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an amount of NEAR: write it like 10 or 0.5 (at most 24 decimals)")]
pub struct AmountParseError(pub String);

/// Parses "10", "0.5" or "1_000" (NEAR) into yoctoNEAR, exactly.
pub fn parse_near(text: &str) -> Result<u128, AmountParseError> {
    let err = || AmountParseError(text.to_string());
    let clean: String = text.trim().chars().filter(|c| *c != '_').collect();
    let (whole, frac) = clean.split_once('.').unwrap_or((&clean, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 24
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(err());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err())?
    };
    let frac_yocto: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<24}").parse().map_err(|_| err())?
    };
    whole
        .checked_mul(YOCTO_PER_NEAR)
        .and_then(|y| y.checked_add(frac_yocto))
        .ok_or_else(err)
}

/// yoctoNEAR as NEAR with no trailing zeros: "10 NEAR", "0.000123 NEAR".
pub fn format_near(yocto: u128) -> String {
    let whole = yocto / YOCTO_PER_NEAR;
    let frac = yocto % YOCTO_PER_NEAR;
    if frac == 0 {
        return format!("{whole} NEAR");
    }
    let digits = format!("{frac:024}");
    format!("{whole}.{} NEAR", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_convert_exactly_both_ways() {
        assert_eq!(parse_near("10"), Ok(10 * YOCTO_PER_NEAR));
        assert_eq!(parse_near("0.5"), Ok(YOCTO_PER_NEAR / 2));
        assert_eq!(parse_near(".25"), Ok(YOCTO_PER_NEAR / 4));
        assert_eq!(parse_near("1_000"), Ok(1000 * YOCTO_PER_NEAR));
        assert_eq!(parse_near("0.000000000000000000000001"), Ok(1));
        assert_eq!(format_near(10 * YOCTO_PER_NEAR), "10 NEAR");
        assert_eq!(
            format_near(YOCTO_PER_NEAR / 2 + 1),
            "0.500000000000000000000001 NEAR"
        );
        assert_eq!(format_near(0), "0 NEAR");
    }

    #[test]
    fn bad_amounts_are_refused_with_an_example() {
        for bad in [
            "",
            ".",
            "ten",
            "-1",
            "1.2.3",
            "0.0000000000000000000000001",
            "1e3",
        ] {
            let e = parse_near(bad).unwrap_err();
            assert!(e.to_string().contains("write it like 10 or 0.5"), "{e}");
        }
    }
}
