//! Stock movements and the level they add up to.
//!
//! Every change of stock is a movement with a signed delta; the on-hand level
//! of a SKU is the sum of its movements, never a number overwritten in place.
//! That keeps the history auditable and makes the level a pure fold that the
//! edge node's query table must always agree with (tested there).
//!
//! A counter sale is never refused for stock reasons (the goods are in the
//! customer's hand), so on-hand may go negative; that is reported, not hidden.

use serde::{Deserialize, Serialize};

/// Why goods were written off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WasteReason {
    Expired,
    Damaged,
    Other,
}

impl WasteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WasteReason::Expired => "expired",
            WasteReason::Damaged => "damaged",
            WasteReason::Other => "other",
        }
    }
}

/// What moved stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MovementKind {
    /// Goods received from a supplier or the warehouse (+).
    Receipt,
    /// Sold at the counter (−).
    Sale,
    /// Refunded goods put back on the shelf (+).
    RefundRestock,
    /// Written off (−), with a [`WasteReason`].
    Waste,
    /// Cycle count: the difference between counted and expected (±).
    Count,
    /// A pickup order handed over (−).
    Pickup,
}

impl MovementKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MovementKind::Receipt => "receipt",
            MovementKind::Sale => "sale",
            MovementKind::RefundRestock => "refund_restock",
            MovementKind::Waste => "waste",
            MovementKind::Count => "count",
            MovementKind::Pickup => "pickup",
        }
    }

    pub fn parse(s: &str) -> Option<MovementKind> {
        Some(match s {
            "receipt" => MovementKind::Receipt,
            "sale" => MovementKind::Sale,
            "refund_restock" => MovementKind::RefundRestock,
            "waste" => MovementKind::Waste,
            "count" => MovementKind::Count,
            "pickup" => MovementKind::Pickup,
            _ => return None,
        })
    }

    /// The sign a movement of this kind carries for a positive quantity.
    /// `Count` carries its own sign (counted minus expected).
    pub fn sign(self) -> i64 {
        match self {
            MovementKind::Receipt | MovementKind::RefundRestock | MovementKind::Count => 1,
            MovementKind::Sale | MovementKind::Waste | MovementKind::Pickup => -1,
        }
    }
}

/// The level of one SKU: what is physically there and what is promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StockLevel {
    /// Physically in the store (may be negative: sold more than was booked in).
    pub on_hand: i64,
    /// Held for open pickup orders.
    pub reserved: i64,
}

impl StockLevel {
    /// What a new order may still reserve.
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }

    /// Applies a signed movement delta.
    pub fn apply(&mut self, delta: i64) {
        self.on_hand += delta;
    }

    /// The delta a cycle count records: counted minus what the books say.
    pub fn count_delta(&self, counted: i64) -> i64 {
        counted - self.on_hand
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Folding movements in any order gives the same level, and a count
        /// always lands the level exactly on the counted quantity.
        #[test]
        fn level_is_order_independent_and_counts_land(deltas in proptest::collection::vec(-1000i64..1000, 0..50), counted in 0i64..10_000) {
            let mut a = StockLevel::default();
            for d in &deltas { a.apply(*d); }
            let mut b = StockLevel::default();
            for d in deltas.iter().rev() { b.apply(*d); }
            prop_assert_eq!(a, b);
            let delta = a.count_delta(counted);
            a.apply(delta);
            prop_assert_eq!(a.on_hand, counted);
        }
    }
}
