//! The records of online orders: `online_orders` (one row per order, its
//! fact and status) and, for an order not held at the hub until paid, its
//! store's orders document. Every function runs on the caller's connection,
//! inside the caller's transaction.

use chrono::NaiveDate;
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::online::{FulfilmentFact, HubOrderFact, derive_status};
use linli_sync::doc_store::Docs;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::HubError;

/// Writes an order's record to the table and, unless it is held at the hub
/// until paid, to its store's document of `day` (returned).
pub(crate) fn save_order(
    c: &Connection,
    docs: &mut Docs,
    fact: &HubOrderFact,
    fulfilment: Option<&FulfilmentFact>,
    day: NaiveDate,
) -> Result<Option<DocId>, HubError> {
    let id = if super::payments::held(c, &fact.order_id)? {
        None
    } else {
        let id = DocId::hub_orders(&fact.store_id, day);
        docs.change(c, &id, |d| {
            put_record(d, "orders", &fact.order_id, fact)?;
            Ok(())
        })?;
        Some(id)
    };
    let d = derive_status(fact, fulfilment);
    c.prepare_cached(
        "INSERT INTO online_orders(order_id, store_id, customer_id, status, placed_at, pickup_code, fact, conflict)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(order_id) DO UPDATE SET status = excluded.status, fact = excluded.fact, conflict = excluded.conflict",
    )?
    .execute(params![
        fact.order_id,
        fact.store_id,
        fact.customer_id,
        d.status.as_str(),
        fact.placed_at,
        fact.pickup_code,
        serde_json::to_string(fact).unwrap_or_default(),
        d.conflict
    ])?;
    Ok(id)
}

/// The record of order `order_id` with its store's fulfilment record, as
/// `online_orders` holds them; `None` for an order the hub does not have.
pub fn load(
    c: &Connection,
    order_id: &str,
) -> Result<Option<(HubOrderFact, Option<FulfilmentFact>)>, HubError> {
    let row: Option<(String, Option<String>)> = c
        .prepare_cached("SELECT fact, fulfilment FROM online_orders WHERE order_id = ?1")?
        .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(f, ful)| {
        let fact: HubOrderFact = serde_json::from_str(&f).ok()?;
        Some((fact, ful.and_then(|x| serde_json::from_str(&x).ok())))
    }))
}
