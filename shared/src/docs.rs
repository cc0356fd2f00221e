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

/// Changes a store writes into one part of a day's ledger or stock before it
/// rolls on to the next part; a change that writes many records at once (a
/// drain of the store's outbox) counts one per record. automerge 0.12's cost
/// to apply, read and sync grows with a document's history, so a part
/// bounds what every change costs, however busy the day
/// (docs/DECISIONS.md, "Bounded documents").
pub const PART_CHANGES: u64 = 400;

/// Parts of one day's ledger or stock, at most (the last one takes whatever
/// comes after, so a day is never refused: it only gets slower). A sale
/// moves ~3 levels, each a record of the stock: 256 parts hold the stock of
/// ~34,000 sales.
pub const MAX_PARTS: u32 = 256;

/// The part of a day's document the store writes next, given the parts it
/// has (part number → changes in it) and the changes a part takes
/// (`limit`, [`PART_CHANGES`] unless a test wants to see parts roll). Part 0 of a day's stock document
/// holds the opening levels and rights of every SKU (one change, written
/// once); what moves afterwards goes to parts 1 and up, so no change ever
/// lands in the document of 1,500 SKUs.
pub fn part_to_write(kind: DocKind, parts: &[(u32, u64)], limit: u64) -> u32 {
    let Some(&(last, changes)) = parts.iter().max_by_key(|(p, _)| *p) else {
        return 0;
    };
    let first_moving = u32::from(kind == DocKind::Stock);
    if last < first_moving {
        return first_moving;
    }
    if changes >= limit.max(1) && last + 1 < MAX_PARTS {
        last + 1
    } else {
        last
    }
}

/// A document id such as `store/S001/ledger/2026-11-25` or `catalog/1`.
/// A store's ledger and stock of a day come in parts: part 0 is the day's
/// id itself, part `n` ≥ 1 adds `/p<n>` (`store/S001/ledger/2026-11-25/p3`).
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

    /// Part `n` of this day's ledger or stock (part 0 is the id itself).
    pub fn part(&self, n: u32) -> DocId {
        let base = self.base();
        if n == 0 {
            base
        } else {
            DocId(format!("{base}/p{n}"))
        }
    }

    /// Which part of its day's document this is (0 for every other kind).
    pub fn part_no(&self) -> u32 {
        part_suffix(&self.0).map_or(0, |(_, n)| n)
    }

    /// The id without its part: part 0.
    pub fn base(&self) -> DocId {
        match part_suffix(&self.0) {
            Some((base, _)) => DocId(base.to_owned()),
            None => self.clone(),
        }
    }

    /// Parses and validates an id received from a peer.
    pub fn parse(s: &str) -> Result<DocId, DocIdError> {
        let bad = || DocIdError::Unknown(s.chars().take(80).collect());
        let parts: Vec<&str> = s.split('/').collect();
        let part_ok = |p: &str| {
            p.strip_prefix('p')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..MAX_PARTS).contains(&n))
        };
        match parts.as_slice() {
            ["catalog", epoch] if epoch.parse::<u32>().is_ok() => Ok(DocId(s.to_owned())),
            ["store", store, "ledger" | "stock" | "fulfilment", day]
            | ["hub", store, "stock" | "orders", day]
                if valid_store_id(store) && day.parse::<NaiveDate>().is_ok() =>
            {
                Ok(DocId(s.to_owned()))
            }
            ["store", store, "ledger" | "stock", day, part]
                if valid_store_id(store) && day.parse::<NaiveDate>().is_ok() && part_ok(part) =>
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
        self.base()
            .0
            .rsplit('/')
            .next()
            .and_then(|d| d.parse().ok())
    }

    /// Whether store `store` may read this document (its scope).
    pub fn in_scope_of(&self, store: &str) -> bool {
        match self.store() {
            Some(s) => s == store,
            None => true, // the catalog is everyone's
        }
    }

    /// The key ranges `[from, to)` that hold exactly the ids of `store`'s
    /// scope ([`DocId::in_scope_of`]): the catalog, the store's own
    /// documents and the hub's documents for it, in id order. A replica
    /// reads a store's documents by these ranges, so what it reads is the
    /// scope's documents, not every store's.
    pub fn scope_ranges(store: &str) -> [(String, String); 3] {
        // a prefix ends in '/', and '0' is the character after it
        let range = |prefix: String| {
            let to = format!("{}0", &prefix[..prefix.len() - 1]);
            (prefix, to)
        };
        [
            range("catalog/".to_owned()),
            range(format!("hub/{store}/")),
            range(format!("store/{store}/")),
        ]
    }
}

/// `(base, n)` of an id ending in `/p<n>`.
fn part_suffix(id: &str) -> Option<(&str, u32)> {
    let (base, last) = id.rsplit_once('/')?;
    let n = last.strip_prefix('p')?.parse().ok()?;
    Some((base, n))
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

/// One map object's entries, read in one pass over the object. automerge
/// 0.12 seeks from the start of the object for every `get`; reading a sale
/// field by field (~25 seeks) was ~40 % of the hub's CPU per store sale
/// (`hub_sale_bench` under `perf`), one pass per object is a few.
pub(crate) struct Entries(Vec<(String, automerge::ValueRef<'static>, ObjId)>);

impl Entries {
    pub(crate) fn of(doc: &AutoCommit, obj: &ObjId) -> Entries {
        Entries(
            doc.map_range(obj, ..)
                .map(|item| {
                    let id = item.id();
                    let item = item.into_owned();
                    (item.key.into_owned(), item.value, id)
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&(String, automerge::ValueRef<'static>, ObjId)> {
        self.0.iter().find(|(k, _, _)| k == key)
    }

    pub(crate) fn i64(&self, key: &str) -> i64 {
        use automerge::ScalarValueRef as S;
        match self.get(key).map(|(_, v, _)| v) {
            Some(automerge::ValueRef::Scalar(s)) => match s {
                S::Int(i) | S::Counter(i) => *i,
                S::Uint(u) => i64::try_from(*u).unwrap_or(i64::MAX),
                S::F64(f) => *f as i64,
                _ => 0,
            },
            _ => 0,
        }
    }

    pub(crate) fn str(&self, key: &str) -> String {
        match self.get(key).map(|(_, v, _)| v) {
            Some(automerge::ValueRef::Scalar(automerge::ScalarValueRef::Str(s))) => s.to_string(),
            _ => String::new(),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> bool {
        matches!(
            self.get(key).map(|(_, v, _)| v),
            Some(automerge::ValueRef::Scalar(
                automerge::ScalarValueRef::Boolean(true)
            ))
        )
    }

    /// The object under `key`, if it is one of type `kind`.
    pub(crate) fn obj(&self, key: &str, kind: ObjType) -> Option<&ObjId> {
        match self.get(key) {
            Some((_, automerge::ValueRef::Object(t), id)) if *t == kind => Some(id),
            _ => None,
        }
    }
}

/// The map objects of a list, in order.
pub(crate) fn list_maps(doc: &AutoCommit, list: &ObjId) -> Vec<ObjId> {
    doc.list_range(list, ..)
        .filter(|item| matches!(item.value, automerge::ValueRef::Object(ObjType::Map)))
        .map(|item| item.id())
        .collect()
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

    proptest::proptest! {
        /// A document is in a store's key ranges exactly when it is in its
        /// scope, for any two stores (one id a prefix of the other, or
        /// differing by a character just below or above the separator).
        #[test]
        fn scope_ranges_hold_exactly_the_scope(
            a in "[A-Z0-9_-]{1,6}",
            b in "[A-Z0-9_-]{1,6}",
            kind in 0usize..7,
            day in 0i64..800,
            part in 0u32..4,
        ) {
            let of = |store: &str| {
                let d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Duration::days(day);
                match kind {
                    0 => DocId::catalog(day as u32),
                    1 => DocId::store_ledger(store, d).part(part),
                    2 => DocId::store_stock(store, d).part(part),
                    3 => DocId::store_fulfilment(store, d),
                    4 => DocId::hub_stock(store, d),
                    5 => DocId::hub_orders(store, d),
                    _ => DocId::store_ledger(&format!("{store}-X"), d),
                }
            };
            for (id, store) in [(of(&a), &a), (of(&b), &a), (of(&a), &b), (of(&b), &b)] {
                let in_ranges = DocId::scope_ranges(store)
                    .iter()
                    .any(|(from, to)| id.as_str() >= from.as_str() && id.as_str() < to.as_str());
                proptest::prop_assert_eq!(in_ranges, id.in_scope_of(store), "{} for {}", id, store);
            }
        }
    }

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
    fn a_days_ledger_and_stock_come_in_parts() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let l = DocId::store_ledger("S001", day);
        let p3 = l.part(3);
        assert_eq!(p3.as_str(), "store/S001/ledger/2026-11-25/p3");
        assert_eq!(DocId::parse(p3.as_str()), Ok(p3.clone()));
        assert_eq!(
            (p3.part_no(), p3.base(), p3.day()),
            (3, l.clone(), Some(day))
        );
        assert_eq!(
            (p3.kind(), p3.owner(), p3.store()),
            (DocKind::Ledger, Owner::Store("S001".into()), Some("S001"))
        );
        assert_eq!(l.part(0), l);
        assert_eq!(l.part_no(), 0);
        for bad in [
            "store/S001/ledger/2026-11-25/p0",
            "store/S001/ledger/2026-11-25/p01",
            "store/S001/ledger/2026-11-25/p256",
            "store/S001/ledger/2026-11-25/x3",
            "store/S001/fulfilment/2026-11-25/p1",
            "hub/S001/stock/2026-11-25/p1",
        ] {
            assert!(DocId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_writer_rolls_on_after_part_changes() {
        use DocKind::{Ledger, Stock};
        assert_eq!(part_to_write(Ledger, &[], PART_CHANGES), 0);
        assert_eq!(
            part_to_write(Ledger, &[(0, PART_CHANGES - 1)], PART_CHANGES),
            0
        );
        assert_eq!(part_to_write(Ledger, &[(0, PART_CHANGES)], PART_CHANGES), 1);
        assert_eq!(
            part_to_write(Ledger, &[(1, 3), (0, PART_CHANGES)], PART_CHANGES),
            1
        );
        // the stock's part 0 holds the opening levels only
        assert_eq!(part_to_write(Stock, &[], PART_CHANGES), 0);
        assert_eq!(part_to_write(Stock, &[(0, 1)], PART_CHANGES), 1);
        assert_eq!(
            part_to_write(Stock, &[(0, 1), (1, PART_CHANGES)], PART_CHANGES),
            2
        );
        // the last part takes the rest of a very long day
        assert_eq!(
            part_to_write(Ledger, &[(MAX_PARTS - 1, PART_CHANGES * 9)], PART_CHANGES),
            MAX_PARTS - 1
        );
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
