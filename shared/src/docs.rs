//! The replicated documents (DESIGN.md §3): their ids, owners, scopes and
//! schemas.
//!
//! Every document has exactly one writing replica, its owner. The owner is
//! read off the id (`store/<S>/…` belongs to store S, `hub/…` and
//! `catalog/…` to the hub), and every change's actor id names the replica
//! that made it (`store/<S>~<random>` or `hub~<random>`), so "may this change
//! be applied" is a check on two strings, never on a message's word.
//!
//! Documents are partitioned by business day (ledgers, stock levels) or by
//! epoch (the catalog) so no history grows without bound: a store's busy day
//! is a few thousand changes, and yesterday's document closes once the peer
//! has it. Each document carries its schema version and id at its root.

pub mod catalog;
pub mod json;
pub mod ledger;
pub mod stock;

use std::fmt;

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use chrono::NaiveDate;

use crate::ticket::valid_store_id;

/// Version of the document schemas written by this code.
pub const SCHEMA_VERSION: i64 = 1;

/// Who may write a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Hub,
    Store(String),
}

impl Owner {
    fn actor_prefix(&self) -> String {
        match self {
            Owner::Hub => "hub~".into(),
            Owner::Store(s) => format!("store/{s}~"),
        }
    }

    /// A fresh actor id for a replica of this owner. `random` makes it
    /// unique per database, so a restored backup never reuses one.
    pub fn actor(&self, random: [u8; 8]) -> ActorId {
        let mut bytes = self.actor_prefix().into_bytes();
        bytes.extend_from_slice(&random);
        ActorId::from(bytes)
    }

    /// Whether a change by `actor` may be part of a document this owner owns.
    pub fn owns_actor(&self, actor: &ActorId) -> bool {
        actor.to_bytes().starts_with(self.actor_prefix().as_bytes())
    }
}

/// What a document is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    Catalog,
    Ledger,
    /// Levels and rights (`store/<S>/stock`: the store's; `hub/<S>/stock`: the hub's).
    Stock,
    /// Online orders the hub routed to a store (`hub/<S>/orders`).
    Orders,
    /// What the store did with online orders (`store/<S>/fulfilment`).
    Fulfilment,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Catalog => "catalog",
            DocKind::Ledger => "ledger",
            DocKind::Stock => "stock",
            DocKind::Orders => "orders",
            DocKind::Fulfilment => "fulfilment",
        }
    }
}

/// A document id such as `store/S001/ledger/2026-11-25` or `catalog/1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    #[error("unknown document id {0:?}")]
    Unknown(String),
}

impl DocId {
    pub fn catalog(epoch: u32) -> DocId {
        DocId(format!("catalog/{epoch}"))
    }

    pub fn store_ledger(store: &str, day: NaiveDate) -> DocId {
        DocId(format!("store/{store}/ledger/{day}"))
    }

    pub fn store_stock(store: &str, day: NaiveDate) -> DocId {
        DocId(format!("store/{store}/stock/{day}"))
    }

    pub fn store_fulfilment(store: &str, day: NaiveDate) -> DocId {
        DocId(format!("store/{store}/fulfilment/{day}"))
    }

    pub fn hub_stock(store: &str, day: NaiveDate) -> DocId {
        DocId(format!("hub/{store}/stock/{day}"))
    }

    pub fn hub_orders(store: &str, day: NaiveDate) -> DocId {
        DocId(format!("hub/{store}/orders/{day}"))
    }

    /// Parses and validates an id received from a peer.
    pub fn parse(s: &str) -> Result<DocId, DocIdError> {
        let bad = || DocIdError::Unknown(s.chars().take(80).collect());
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["catalog", epoch] if epoch.parse::<u32>().is_ok() => Ok(DocId(s.to_owned())),
            ["store", store, "ledger" | "stock" | "fulfilment", day]
            | ["hub", store, "stock" | "orders", day]
                if valid_store_id(store) && day.parse::<NaiveDate>().is_ok() =>
            {
                Ok(DocId(s.to_owned()))
            }
            _ => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn kind(&self) -> DocKind {
        match self.0.split('/').nth(2) {
            _ if self.0.starts_with("catalog/") => DocKind::Catalog,
            Some("stock") => DocKind::Stock,
            Some("orders") => DocKind::Orders,
            Some("fulfilment") => DocKind::Fulfilment,
            _ => DocKind::Ledger,
        }
    }

    pub fn owner(&self) -> Owner {
        match self.store() {
            Some(s) if self.0.starts_with("store/") => Owner::Store(s.to_owned()),
            _ => Owner::Hub,
        }
    }

    /// The store a per-store document is about.
    pub fn store(&self) -> Option<&str> {
        let mut it = self.0.split('/');
        match (it.next(), it.next()) {
            (Some("store" | "hub"), Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The business day of a per-day document.
    pub fn day(&self) -> Option<NaiveDate> {
        self.0.rsplit('/').next().and_then(|d| d.parse().ok())
    }

    /// Whether store `store` may read this document (its scope).
    pub fn in_scope_of(&self, store: &str) -> bool {
        match self.store() {
            Some(s) => s == store,
            None => true, // the catalog is everyone's
        }
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new, empty document for its owner's replica, with the header written.
pub fn new_doc(id: &DocId, actor: ActorId) -> Result<AutoCommit, automerge::AutomergeError> {
    let mut doc = AutoCommit::new().with_actor(actor);
    doc.put(ROOT, "schema", SCHEMA_VERSION)?;
    doc.put(ROOT, "doc_id", id.as_str())?;
    doc.put(ROOT, "kind", id.kind().as_str())?;
    Ok(doc)
}

/// The map under `key` at the root, created if missing.
pub(crate) fn root_map(
    doc: &mut AutoCommit,
    key: &str,
) -> Result<ObjId, automerge::AutomergeError> {
    match doc.get(ROOT, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => doc.put_object(ROOT, key, ObjType::Map),
    }
}

/// The map under `key` at the root, if present.
pub(crate) fn existing_map(doc: &AutoCommit, key: &str) -> Option<ObjId> {
    match doc.get(ROOT, key) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

pub(crate) fn get_i64(doc: &AutoCommit, obj: &ObjId, key: &str) -> i64 {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Int(i) => *i,
            ScalarValue::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
            ScalarValue::Counter(c) => i64::from(c),
            ScalarValue::F64(f) => *f as i64,
            _ => 0,
        },
        _ => 0,
    }
}

pub(crate) fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> String {
    match doc.get(obj, key) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_owners_and_scopes() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let l = DocId::store_ledger("S001", day);
        assert_eq!(l.as_str(), "store/S001/ledger/2026-11-25");
        assert_eq!(DocId::parse(l.as_str()), Ok(l.clone()));
        assert_eq!(l.owner(), Owner::Store("S001".into()));
        assert_eq!(l.kind(), DocKind::Ledger);
        assert_eq!(l.day(), Some(day));
        assert!(l.in_scope_of("S001"));
        assert!(!l.in_scope_of("S002"));
        let c = DocId::catalog(1);
        assert_eq!(c.owner(), Owner::Hub);
        assert!(c.in_scope_of("S002"));
        assert_eq!(DocId::store_stock("S001", day).kind(), DocKind::Stock);
        let h = DocId::hub_orders("S001", day);
        assert_eq!(DocId::parse(h.as_str()), Ok(h.clone()));
        assert_eq!(h.owner(), Owner::Hub);
        assert_eq!(h.kind(), DocKind::Orders);
        assert!(h.in_scope_of("S001") && !h.in_scope_of("S002"));
        let hs = DocId::hub_stock("S001", day);
        assert_eq!((hs.owner(), hs.kind()), (Owner::Hub, DocKind::Stock));
        let f = DocId::store_fulfilment("S001", day);
        assert_eq!(DocId::parse(f.as_str()), Ok(f.clone()));
        assert_eq!(
            (f.owner(), f.kind()),
            (Owner::Store("S001".into()), DocKind::Fulfilment)
        );
        for bad in [
            "",
            "store/s001/ledger/2026-11-25",
            "store/S001/ledger/x",
            "hub/../etc",
            "catalog/x",
            "hub/S001/ledger/2026-11-25",
            "store/S001/orders/2026-11-25",
        ] {
            assert!(DocId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actors_belong_to_their_owner_only() {
        let s1 = Owner::Store("S001".into());
        let a = s1.actor([1; 8]);
        assert!(s1.owns_actor(&a));
        assert!(!Owner::Store("S0011".into()).owns_actor(&a));
        assert!(!Owner::Hub.owns_actor(&a));
        assert!(Owner::Hub.owns_actor(&Owner::Hub.actor([2; 8])));
    }
}
