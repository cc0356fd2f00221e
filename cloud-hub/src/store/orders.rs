//! The records of online orders: `online_orders` (one row per order, its
//! fact, its store's fulfilment record and the status derived from both)
//! behind the [`OrderRecords`] trait, and, for an order not held at the hub
//! until paid, its store's orders document (`save_order`).
//!
//! The trait is every question and every write the use cases put to the
//! table, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so an order's record
//! commits with whatever else the caller writes in that transaction.
//!
//! A row whose fact does not decode is skipped by every reader, as if the
//! hub did not have the order (a fulfilment record that does not decode
//! reads as none).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::online::{DerivedStatus, FulfilmentFact, HubOrderFact, derive_status};
use linli_sync::doc_store::Docs;
use rusqlite::Connection;
use serde_json::Value;

use super::StoreError;

mod sqlite;

/// An order as a live session counts it.
#[derive(Debug, Clone)]
pub struct SessionOrder {
    pub fact: HubOrderFact,
    /// The order's status is `cancelled`.
    pub cancelled: bool,
}

/// An order placed in a period, as the KPIs read it.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub fact: HubOrderFact,
    /// The store's fulfilment record (empty if it sent none).
    pub fulfilment: FulfilmentFact,
    /// The order's status is `cancelled`.
    pub cancelled: bool,
}

/// An online order that counts as a purchase of the account that placed
/// it.
#[derive(Debug, Clone)]
pub struct OnlinePurchase {
    /// The account the row is filed under (a tombstone once erased).
    pub customer_id: String,
    pub fact: HubOrderFact,
}

/// The `online_orders` table's operations, each on the implementor's
/// transaction. Order ids come out in the order each method names;
/// "open" statuses are listed per method, because each question means its
/// own set.
pub trait OrderRecords {
    /// The record of order `order_id` with its store's fulfilment record;
    /// `None` for an order the hub does not have.
    fn order(
        &self,
        order_id: &str,
    ) -> Result<Option<(HubOrderFact, Option<FulfilmentFact>)>, StoreError>;

    /// Writes an order's record with its derived status: a new order, or
    /// a new fact (status and conflict) of one the table has (its
    /// customer, store, placement time, pickup code and fulfilment record
    /// stay).
    fn put_order(&self, fact: &HubOrderFact, derived: &DerivedStatus) -> Result<(), StoreError>;

    /// Records the store's (merged) fulfilment record of order `order_id`
    /// and the status derived with it.
    fn set_fulfilment(
        &self,
        order_id: &str,
        fulfilment: &FulfilmentFact,
        derived: &DerivedStatus,
    ) -> Result<(), StoreError>;

    /// Whether an order of `store` not yet handed over, delivered or
    /// cancelled has the pickup code `code`.
    fn pickup_code_taken(&self, store: &str, code: &str) -> Result<bool, StoreError>;

    /// Every order of the account `customer_id`, in no particular order.
    fn order_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// The account's newest `limit` orders, newest first (ties: the later
    /// written first).
    fn recent_order_ids_of_customer(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// The account's orders placed, accepted, picked, ready or out for
    /// delivery.
    fn open_order_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// The store's orders placed, accepted, picked or ready, in no
    /// particular order.
    fn open_order_ids_of_store(&self, store: &str) -> Result<Vec<String>, StoreError>;

    /// The store's orders placed, accepted, picked or ready, newest first
    /// (ties: the later written first).
    fn open_order_ids_of_store_newest_first(&self, store: &str) -> Result<Vec<String>, StoreError>;

    /// Pickup orders (they have a pickup code) of every store, placed,
    /// accepted, picked or ready.
    fn open_pickup_order_ids(&self) -> Result<Vec<String>, StoreError>;

    /// The store's orders whose records disagree (a conflict for a
    /// manager).
    fn conflicted_order_ids(&self, store: &str) -> Result<Vec<String>, StoreError>;

    /// The orders a live session priced (`live_orders`).
    fn live_session_orders(&self, session_id: &str) -> Result<Vec<SessionOrder>, StoreError>;

    /// The store's orders placed in `[from, to)`.
    fn orders_placed_between(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlacedOrder>, StoreError>;

    /// Every order not cancelled whose payment, if it has one, is paid:
    /// the online purchases.
    fn online_purchases(&self) -> Result<Vec<OnlinePurchase>, StoreError>;

    /// Every store the hub has heard of, in its directory, with a counter
    /// sale or with an online order; sorted.
    fn known_store_ids(&self) -> Result<Vec<String>, StoreError>;

    /// The account's orders as the table holds them (column → value, the
    /// JSON columns as JSON), oldest first: a person's export.
    fn order_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError>;

    /// Files the account's orders under `tombstone` and removes its
    /// personal data from their facts (the masked phone; a delivery's
    /// address, its point moved to the store's); returns the rows changed.
    fn erase_customer_from_orders(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError>;
}

/// Writes an order's record to the table and, unless it is held at the hub
/// until paid, marks it for its store's orders document of `day`
/// (returned), which [`write_deferred`] writes before the batch commits.
pub(crate) fn save_order(
    c: &Connection,
    fact: &HubOrderFact,
    fulfilment: Option<&FulfilmentFact>,
    day: NaiveDate,
) -> Result<Option<DocId>, StoreError> {
    let id = if super::payments::held(c, &fact.order_id)? {
        None
    } else {
        let id = DocId::hub_orders(&fact.store_id, day);
        DEFERRED.with(|d| {
            d.borrow_mut()
                .entry(id.clone())
                .or_default()
                .insert(fact.order_id.clone())
        });
        Some(id)
    };
    c.put_order(fact, &derive_status(fact, fulfilment))?;
    Ok(id)
}

thread_local! {
    /// The orders saved in the writer's current batch, per store orders
    /// document: the writer thread marks them in its jobs and puts them
    /// into the documents before the batch commits. A job that failed
    /// leaves its marks; its order is not in the table, so nothing is put.
    static DEFERRED: std::cell::RefCell<BTreeMap<DocId, BTreeSet<String>>> =
        std::cell::RefCell::default();
}

/// Puts the orders marked in this batch into their stores' orders
/// documents, as the batch leaves their rows: one change per document per
/// batch. Called by the writer before it commits, in the batch's
/// transaction. A live burst's orders cost one automerge change a batch
/// instead of one an order (`live_burst_bench`; docs/DECISIONS.md, "Live
/// bursts: one change per document per batch").
pub(crate) fn write_deferred(c: &Connection, docs: &mut Docs) -> Result<(), StoreError> {
    let marked = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for (id, orders) in marked {
        let mut facts = Vec::with_capacity(orders.len());
        for o in &orders {
            if let Some((fact, _)) = c.order(o)? {
                facts.push(fact);
            }
        }
        if facts.is_empty() {
            continue;
        }
        docs.begin_job(c);
        let changed = docs.change_weighing(c, &id, facts.len(), |d| {
            for fact in &facts {
                put_record(d, "orders", &fact.order_id, fact)?;
            }
            Ok(())
        });
        docs.end_job(c, changed.is_ok());
        changed?;
    }
    Ok(())
}
