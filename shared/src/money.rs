//! Money as integer fen (1 yuan = 100 fen). There are no floats anywhere money
//! is computed; rounding happens once, where a weight meets a price per kg.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in fen. Signed, so refunds and differences can be
/// expressed, but every price and payment the system accepts is checked to be
/// positive where that matters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Fen(pub i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);

    /// Adds, or `None` on overflow (only absurd input can get there).
    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul(self, n: i64) -> Option<Fen> {
        self.0.checked_mul(n).map(Fen)
    }

    /// Price of `grams` of a product sold at `self` per kilogram, rounded half
    /// up to the fen (the rule Chinese scales print).
    pub fn per_kg_times_grams(self, grams: i64) -> Option<Fen> {
        let milli = self.0.checked_mul(grams)?;
        // round half up for non-negative amounts; weights are never negative here
        Some(Fen(milli.checked_add(500)?.div_euclid(1000)))
    }

    /// The sum of `amounts`, or `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Fen>) -> Option<Fen> {
        amounts
            .into_iter()
            .try_fold(Fen::ZERO, |acc, a| acc.checked_add(a))
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}¥{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::iter::Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        Fen(iter.map(|f| f.0).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_yuan() {
        assert_eq!(Fen(1950).to_string(), "¥19.50");
        assert_eq!(Fen(-5).to_string(), "-¥0.05");
    }

    #[test]
    fn weight_pricing_rounds_half_up() {
        // 7460 fen/kg * 0.250 kg = 1865 exactly
        assert_eq!(Fen(7460).per_kg_times_grams(250), Some(Fen(1865)));
        // 810 fen/kg * 0.333 kg = 269.73 -> 270
        assert_eq!(Fen(810).per_kg_times_grams(333), Some(Fen(270)));
        // 1 fen/kg * 0.5 kg = 0.5 -> 1 (half up)
        assert_eq!(Fen(1).per_kg_times_grams(500), Some(Fen(1)));
        assert_eq!(Fen(1).per_kg_times_grams(499), Some(Fen(0)));
    }

    #[test]
    fn arithmetic_overflows_to_none() {
        assert_eq!(Fen(i64::MAX).per_kg_times_grams(1), None);
        assert_eq!(Fen(i64::MAX / 2).per_kg_times_grams(2), None);
        assert_eq!(Fen::checked_sum([Fen(i64::MAX), Fen(1)]), None);
        assert_eq!(Fen::checked_sum([Fen(1), Fen(2)]), Some(Fen(3)));
        assert_eq!(Fen::checked_sum([]), Some(Fen::ZERO));
    }

    proptest! {
        #[test]
        fn weight_pricing_is_monotone(price in 1i64..1_000_000, g in 1i64..100_000) {
            let a = Fen(price).per_kg_times_grams(g).unwrap();
            let b = Fen(price).per_kg_times_grams(g + 1).unwrap();
            prop_assert!(a <= b);
            // never more than half a fen away from the exact value
            let exact_milli = price * g;
            prop_assert!((a.0 * 1000 - exact_milli).abs() <= 500);
        }
    }
}
