//! A customer's erasure as it travels between the hub and the stores (PIPL
//! Art. 47; DESIGN.md §8).
//!
//! The hub writes an [`ErasureNotice`] into each store's orders document
//! (section `erasures`, keyed by the erasure id). The notice names what the
//! store may hold of the person **without naming the person**: the keyed
//! hashes of the person's phones under the chain's member key
//! ([`crate::member`]), and the ids of the person's orders and group-buy
//! commitments. The store erases the rows they match and answers with an
//! [`ErasureConfirmation`] in its ledger (section `erasures`, same key), once
//! per erasure however often the notice arrives.

use serde::{Deserialize, Serialize};

/// What a store is asked to erase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureNotice {
    pub erasure_id: String,
    /// Member hashes (HMAC-SHA256 under the chain's key) of the person's phones.
    pub member_hashes: Vec<String>,
    /// The person's online orders (their masked phone at the counter).
    pub order_ids: Vec<String>,
    /// The person's group-buy commitments (their masked phone and hash in the participant lists).
    pub commitment_ids: Vec<String>,
    /// RFC 3339, UTC.
    pub requested_at: String,
}

/// A store's answer: it erased what it held (`rows` rows changed, 0 when
/// it held nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureConfirmation {
    pub erasure_id: String,
    pub rows: i64,
    /// RFC 3339, UTC: when the store erased.
    pub at: String,
}
