//! One customer across channels: identity resolution (DESIGN.md §8).
//!
//! Source records come from the tills (`pos`), member cards, the community,
//! live streams and the mini-program; each may carry a phone, a WeChat openid
//! and unionid, a member card number, a nickname and the store it was taken
//! at. [`resolve`] groups them into customers; [`assign_ids`] gives each group
//! a stable customer id, keeping the ids an earlier run gave.
//!
//! The invariant kept everywhere here: **no merge is ever made on a junk
//! identifier** ([`normalize`] decides what is junk, and only what it accepts
//! reaches the rules), and **records named in a never-merge pair are never in
//! one customer**. The result depends only on the set of records and
//! constraints, not on their order (records are sorted by id first, every
//! rule walks its keys in order). Nothing here does IO or reads a clock.
//!
//! Why the rules are what they are, and how well they do on
//! `data/identities.csv`, is in [`resolve`] and `shared/benches/identity_bench.rs`.

mod csv_file;
mod ids;
pub mod normalize;
mod resolve;
mod score;

pub use csv_file::{IdentityCsvError, IdentityRow, ParsedIdentities, parse_identities_csv};
pub use ids::assign_ids;
pub use normalize::{Junk, Mobile, PhoneReading, read_phone, read_token};
pub use resolve::{
    Ambiguity, Cluster, IdentityError, Merge, NeverMerge, Resolution, Rule, resolve, split_off,
};
pub use score::{PairScore, pairwise};

use serde::{Deserialize, Serialize};

/// One record of one channel, as imported (the columns of `identities.csv`
/// but `true_customer_id`). Identifier fields are raw: empty means absent, and
/// junk is recognised by the resolver, not by the importer, so the hub keeps
/// what the channel sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Unique across every import (the channel's own record id).
    pub record_id: String,
    /// The channel: `pos`, `member_card`, `community`, `live`, `miniapp`.
    pub source: String,
    pub phone: String,
    pub openid: String,
    pub unionid: String,
    pub member_card: String,
    /// A WeChat nickname or the name on a member card.
    pub nickname: String,
    pub store_id: String,
}
