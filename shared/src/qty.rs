//! Quantities: whole units for `each` products, grams for `kg` products.
//!
//! One integer type for both keeps stock arithmetic simple; the product's
//! [`Unit`] says how to read it. Limits reject typos (a cashier who scans
//! 5,000 buns) before they reach the books.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How a product is sold and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Counted in whole units.
    Each,
    /// Weighed; quantities are grams, prices are per kilogram.
    Kg,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Each => "each",
            Unit::Kg => "kg",
        }
    }

    /// Largest quantity one line may carry: 999 units, or 50 kg.
    pub fn max_line_qty(self) -> i64 {
        match self {
            Unit::Each => 999,
            Unit::Kg => 50_000,
        }
    }

    /// Largest quantity one stock movement may carry (a pallet, not a typo).
    pub fn max_movement_qty(self) -> i64 {
        match self {
            Unit::Each => 100_000,
            Unit::Kg => 10_000_000,
        }
    }
}

impl std::str::FromStr for Unit {
    type Err = QtyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "each" => Ok(Unit::Each),
            "kg" => Ok(Unit::Kg),
            other => Err(QtyError::UnknownUnit(other.to_owned())),
        }
    }
}

/// A validated, strictly positive quantity in the product's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Qty(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QtyError {
    /// Zero or negative quantities are never meaningful on a line.
    #[error("quantity must be positive, got {0}")]
    NotPositive(i64),
    /// Larger than any real line or delivery.
    #[error("quantity {qty} is larger than the limit of {max} {unit}")]
    TooLarge {
        qty: i64,
        max: i64,
        unit: &'static str,
    },
    /// The unit column held something other than `each` or `kg`.
    #[error("unknown unit {0:?}, expected \"each\" or \"kg\"")]
    UnknownUnit(String),
}

impl Qty {
    /// A quantity for one sale or order line.
    pub fn for_line(raw: i64, unit: Unit) -> Result<Qty, QtyError> {
        Self::bounded(raw, unit, unit.max_line_qty())
    }

    /// A quantity for a stock movement (receipt, waste).
    pub fn for_movement(raw: i64, unit: Unit) -> Result<Qty, QtyError> {
        Self::bounded(raw, unit, unit.max_movement_qty())
    }

    fn bounded(raw: i64, unit: Unit, max: i64) -> Result<Qty, QtyError> {
        if raw <= 0 {
            return Err(QtyError::NotPositive(raw));
        }
        if raw > max {
            return Err(QtyError::TooLarge {
                qty: raw,
                max,
                unit: match unit {
                    Unit::Each => "units",
                    Unit::Kg => "grams",
                },
            });
        }
        Ok(Qty(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Qty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_negative_and_absurd() {
        assert_eq!(Qty::for_line(0, Unit::Each), Err(QtyError::NotPositive(0)));
        assert_eq!(Qty::for_line(-3, Unit::Kg), Err(QtyError::NotPositive(-3)));
        assert!(matches!(
            Qty::for_line(1000, Unit::Each),
            Err(QtyError::TooLarge { .. })
        ));
        assert!(Qty::for_line(50_000, Unit::Kg).is_ok());
        assert!(Qty::for_line(50_001, Unit::Kg).is_err());
        assert!(Qty::for_movement(5_000, Unit::Each).is_ok());
    }
}
