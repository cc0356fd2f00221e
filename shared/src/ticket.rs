//! Ticket numbers printed on receipts.
//!
//! `S001-20261125-0042`: the store id makes the number unique across the chain,
//! the business day and a per-day sequence make it gapless per store and day.
//! The sequence is assigned by the store alone (no hub needed): the edge node
//! takes the next number in the same transaction that records the sale, so a
//! failed sale never consumes a number.

use chrono::NaiveDate;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TicketNo {
    pub store_id: String,
    pub day: NaiveDate,
    /// 1-based, gapless within (store, day).
    pub seq: u32,
}

impl fmt::Display for TicketNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}-{:04}",
            self.store_id,
            self.day.format("%Y%m%d"),
            self.seq
        )
    }
}

/// A store id: `S` and digits in the reference data, but any 1–16 characters
/// of `A-Z 0-9 - _` are accepted so a chain can keep its own scheme.
pub fn valid_store_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ticket() {
        let t = TicketNo {
            store_id: "S001".into(),
            day: NaiveDate::from_ymd_opt(2026, 11, 25).unwrap(),
            seq: 42,
        };
        assert_eq!(t.to_string(), "S001-20261125-0042");
        assert!(valid_store_id("S001"));
        assert!(!valid_store_id("s001 "));
    }
}
