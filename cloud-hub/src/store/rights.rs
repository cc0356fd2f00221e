//! The hub's half of the stock-rights scheme (DESIGN.md §5, rules in
//! [`linli_shared::rights`]).
//!
//! `store_rights` holds each store's totals as last received (field-wise
//! maximum: they only grow); `hub_rights` holds the hub's own totals, written
//! in the same transaction as `hub/<S>/stock/<day>`, the document that
//! carries them to the store. Whatever the hub learns from a store (new
//! totals, a fulfilment record) is followed by the orders' `reconcile` (a
//! use case, `app::orders`) in the same transaction: conflicts re-consume
//! rights, recalls are answered with the rights the hub still holds, and an
//! overdraft releases the newest open orders (re-routed to another store
//! where one can serve them, refunded otherwise, each raised as an
//! exception). `hub_stock` holds each store's stock levels as last
//! synced (what the naive scheme sells from).

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use linli_shared::docs::DocId;
use linli_shared::docs::stock::{Level, set_rights};
use linli_shared::rights::{HubRights, StoreRights, hub_answer, hub_held};
use linli_sync::db::row_i64s;
use linli_sync::doc_store::Docs;
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use super::orders::OrderRecords;
use crate::settings::StockScheme;

pub(crate) fn store_rights(
    c: &Connection,
    store: &str,
    sku: &str,
) -> Result<StoreRights, StoreError> {
    let sql = format!(
        "SELECT {} FROM store_rights WHERE store_id = ?1 AND sku = ?2",
        StoreRights::COLUMNS
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![store, sku], |r| {
            row_i64s(r, 0).map(StoreRights::from_totals)
        })
        .optional()?
        .unwrap_or_default())
}

pub(crate) fn hub_rights(c: &Connection, store: &str, sku: &str) -> Result<HubRights, StoreError> {
    let sql = format!(
        "SELECT {} FROM hub_rights WHERE store_id = ?1 AND sku = ?2",
        HubRights::COLUMNS
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![store, sku], |r| {
            row_i64s(r, 0).map(HubRights::from_totals)
        })
        .optional()?
        .unwrap_or_default())
}

/// Units of a store's SKU the hub may sell online now, under `scheme`.
pub(crate) fn sellable(
    c: &Connection,
    scheme: StockScheme,
    store: &str,
    sku: &str,
) -> Result<i64, StoreError> {
    match scheme {
        StockScheme::Rights => held(c, store, sku),
        StockScheme::Naive => {
            let on_hand: i64 = c
                .prepare_cached("SELECT on_hand FROM hub_stock WHERE store_id = ?1 AND sku = ?2")?
                .query_row(params![store, sku], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let mut open = 0;
            for id in c.open_order_ids_of_store(store)? {
                if let Some((fact, _)) = c.order(&id)? {
                    open += fact
                        .lines
                        .iter()
                        .filter(|l| l.sku == sku)
                        .map(|l| l.qty)
                        .sum::<i64>();
                }
            }
            Ok(on_hand - open)
        }
    }
}

/// Rights the hub holds for a store's SKU.
pub(crate) fn held(c: &Connection, store: &str, sku: &str) -> Result<i64, StoreError> {
    Ok(hub_held(
        &store_rights(c, store, sku)?,
        &hub_rights(c, store, sku)?,
    ))
}

/// Merges a store's totals as received.
pub(crate) fn merge_store_rights(
    c: &Connection,
    store: &str,
    sku: &str,
    s: &StoreRights,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO store_rights(store_id, sku, lent, recalled, overdraft, delivered, wanted_met)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(store_id, sku) DO UPDATE SET lent = max(lent, excluded.lent),
             recalled = max(recalled, excluded.recalled), overdraft = max(overdraft, excluded.overdraft),
             delivered = max(delivered, excluded.delivered), wanted_met = max(wanted_met, excluded.wanted_met)",
    )?
    .execute(params![store, sku, s.lent, s.recalled, s.overdraft, s.delivered, s.wanted_met])?;
    Ok(())
}

/// Records a store's stock levels (SKU, level) as its stock document of
/// business day `day`, part `part`, holds them: a level from a later day,
/// or a later part of the same day, replaces an earlier one (parts may
/// arrive in any order), never the reverse (`hub_stock`).
pub(crate) fn put_levels(
    c: &Connection,
    store: &str,
    day: &str,
    part: u32,
    levels: &[(String, Level)],
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO hub_stock(store_id, sku, on_hand, reserved, day, part) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(store_id, sku) DO UPDATE SET on_hand = excluded.on_hand,
                     reserved = excluded.reserved, day = excluded.day, part = excluded.part
                 WHERE (excluded.day, excluded.part) >= (hub_stock.day, hub_stock.part)",
    )?;
    for (sku, l) in levels {
        stmt.execute(params![store, sku, l.on_hand, l.reserved, day, part])?;
    }
    Ok(())
}

/// Changes of the hub's totals within one transaction, written to the
/// table at once and to the store's `hub/<S>/stock/<day>` by [`Self::flush`].
#[derive(Debug, Default)]
pub(crate) struct HubRightsBatch {
    changed: BTreeMap<(String, String), HubRights>,
}

impl HubRightsBatch {
    /// Applies `f` to a SKU's totals and saves them.
    pub(crate) fn update(
        &mut self,
        c: &Connection,
        store: &str,
        sku: &str,
        f: impl FnOnce(&mut HubRights),
    ) -> Result<HubRights, StoreError> {
        let mut h = hub_rights(c, store, sku)?;
        f(&mut h);
        let [a, b, d, e, g] = h.totals();
        c.prepare_cached(
            "INSERT INTO hub_rights(store_id, sku, consumed, released, returned, wanted, recall_answered)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(store_id, sku) DO UPDATE SET consumed = excluded.consumed, released = excluded.released,
                 returned = excluded.returned, wanted = excluded.wanted, recall_answered = excluded.recall_answered",
        )?
        .execute(params![store, sku, a, b, d, e, g])?;
        self.changed.insert((store.to_owned(), sku.to_owned()), h);
        Ok(h)
    }

    /// Marks the changed totals to be written into each store's document
    /// of `day` when the writer's batch commits ([`write_deferred`]): a
    /// SKU that a burst of orders touches is written once a batch, not
    /// once an order. Returns the documents that will be written.
    pub(crate) fn flush(self, day: NaiveDate) -> Vec<DocId> {
        let mut touched = BTreeSet::new();
        DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            for (store, sku) in self.changed.into_keys() {
                touched.insert(DocId::hub_stock(&store, day));
                d.entry((store, day)).or_default().insert(sku);
            }
        });
        touched.into_iter().collect()
    }
}

thread_local! {
    /// The SKUs whose totals changed in the writer's current batch, per
    /// store and day: the writer thread marks them in its jobs and writes
    /// them before the batch commits. A job that failed leaves its marks;
    /// writing a SKU's totals as the table holds them is right either way.
    static DEFERRED: std::cell::RefCell<BTreeMap<(String, NaiveDate), BTreeSet<String>>> =
        std::cell::RefCell::default();
}

/// Writes the totals marked in this batch into each store's
/// `hub/<S>/stock/<day>` (a new day's document first takes all of the
/// store's totals), from `hub_rights` as the batch leaves it; called by
/// the writer before it commits, in the batch's transaction.
pub(crate) fn write_deferred(c: &Connection, docs: &mut Docs) -> Result<(), StoreError> {
    let marked = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for ((store, day), skus) in marked {
        let id = DocId::hub_stock(&store, day);
        let rows: Vec<(String, HubRights)> = if docs.exists(c, &id)? {
            skus.into_iter()
                .map(|sku| Ok((sku.clone(), hub_rights(c, &store, &sku)?)))
                .collect::<Result<_, StoreError>>()?
        } else {
            // a new day's document first takes all of the store's totals
            let sql = format!(
                "SELECT sku, {} FROM hub_rights WHERE store_id = ?1 ORDER BY sku",
                HubRights::COLUMNS
            );
            c.prepare_cached(&sql)?
                .query_map([&store], |r| {
                    Ok((r.get(0)?, HubRights::from_totals(row_i64s(r, 1)?)))
                })?
                .collect::<Result<_, _>>()?
        };
        docs.begin_job(c);
        let changed = docs.change(c, &id, |d| {
            for (sku, h) in &rows {
                set_rights(d, sku, h)?;
            }
            Ok(())
        });
        docs.end_job(c, changed.is_ok());
        changed?;
    }
    Ok(())
}

/// The hub's rights per SKU of a store, in one pass over both tables:
/// `held` as [`hub_held`] computes it, and what the store asked back and
/// has not got (`pending_recall`). Only rows matching `filter` (SQL over
/// `held` and `pending_recall`) are returned.
fn held_where(
    c: &Connection,
    store: &str,
    skus: Option<&BTreeSet<String>>,
    filter: &str,
) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT sku, held, pending_recall FROM (
             SELECT s.sku AS sku,
                 s.lent - s.overdraft - coalesce(h.returned, 0) - coalesce(h.consumed, 0) + coalesce(h.released, 0)
                     - max(s.recalled - coalesce(h.recall_answered, 0), 0) AS held,
                 max(s.recalled - coalesce(h.recall_answered, 0), 0) AS pending_recall
             FROM store_rights s LEFT JOIN hub_rights h ON h.store_id = s.store_id AND h.sku = s.sku
             WHERE s.store_id = ?1 AND (?2 IS NULL OR s.sku IN (SELECT value FROM json_each(?2))))
         WHERE {filter} ORDER BY sku"
    );
    let only = skus.map(|k| serde_json::to_string(k).unwrap_or_default());
    Ok(c.prepare_cached(&sql)?
        .query_map(params![store, only], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?)
}

/// Answers the store's pending recalls ([`hub_answer`]): gives back as
/// many of those units as the hub still holds. Runs before settlement, so a
/// recall is never settled by releasing orders.
pub(crate) fn return_recalled(
    c: &Connection,
    batch: &mut HubRightsBatch,
    store: &str,
    skus: Option<&BTreeSet<String>>,
) -> Result<(), StoreError> {
    for (sku, _, _) in held_where(c, store, skus, "pending_recall > 0")? {
        let s = store_rights(c, store, &sku)?;
        batch.update(c, store, &sku, |h| *h = hub_answer(&s, h))?;
    }
    Ok(())
}

/// SKUs of a store for which the hub holds negative rights, and by how much.
pub(crate) fn deficits(
    c: &Connection,
    store: &str,
    skus: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, i64>, StoreError> {
    Ok(held_where(c, store, skus, "held < 0")?
        .into_iter()
        .map(|(sku, held, _)| (sku, -held))
        .collect())
}
