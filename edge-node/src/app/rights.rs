//! The store's half of the stock-rights scheme (DESIGN.md §5, rules in
//! [`linli_shared::rights`]): its own totals in `rights`, the hub's as last
//! received in `hub_rights`, and the store's step after any change of a
//! level or of what it knows of the hub.
//!
//! Everything here runs inside the writer's transaction of the use case
//! that changed the level (through `super::replication::Publish`), so a
//! counter sale that eats into lent units records its overdraft in the same
//! commit as the sale — it can never be acknowledged without it.

use linli_shared::rights::{HubRights, Policy, StoreRights, counter_free, outstanding, store_step};
use linli_sync::db::row_i64s;
use rusqlite::{Connection, OptionalExtension, params};

use super::AppError;

/// The store's totals for a SKU.
pub(crate) fn store_rights(c: &Connection, sku: &str) -> Result<StoreRights, AppError> {
    let sql = format!("SELECT {} FROM rights WHERE sku = ?1", StoreRights::COLUMNS);
    Ok(c.prepare_cached(&sql)?
        .query_row([sku], |r| row_i64s(r, 0).map(StoreRights::from_totals))
        .optional()?
        .unwrap_or_default())
}

/// The hub's totals for a SKU as last received.
pub(crate) fn hub_rights(c: &Connection, sku: &str) -> Result<HubRights, AppError> {
    let sql = format!(
        "SELECT {} FROM hub_rights WHERE sku = ?1",
        HubRights::COLUMNS
    );
    Ok(c.prepare_cached(&sql)?
        .query_row([sku], |r| row_i64s(r, 0).map(HubRights::from_totals))
        .optional()?
        .unwrap_or_default())
}

fn save_store_rights(c: &Connection, sku: &str, s: &StoreRights) -> Result<(), AppError> {
    let [a, b, d, e, f] = s.totals();
    c.prepare_cached(
        "INSERT INTO rights(sku, lent, recalled, overdraft, delivered, wanted_met) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(sku) DO UPDATE SET lent = excluded.lent, recalled = excluded.recalled,
             overdraft = excluded.overdraft, delivered = excluded.delivered, wanted_met = excluded.wanted_met",
    )?
    .execute(params![sku, a, b, d, e, f])?;
    Ok(())
}

/// Merges the hub's totals as received (they only grow). Returns whether
/// anything grew, so only SKUs whose rights moved are re-evaluated.
pub(crate) fn merge_hub_rights(c: &Connection, sku: &str, h: &HubRights) -> Result<bool, AppError> {
    let [a, b, d, e, f] = h.totals();
    let n = c
        .prepare_cached(
            "INSERT INTO hub_rights(sku, consumed, released, returned, wanted, recall_answered)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(sku) DO UPDATE SET consumed = max(consumed, excluded.consumed),
                 released = max(released, excluded.released), returned = max(returned, excluded.returned),
                 wanted = max(wanted, excluded.wanted), recall_answered = max(recall_answered, excluded.recall_answered)
             WHERE excluded.consumed > consumed OR excluded.released > released
                 OR excluded.returned > returned OR excluded.wanted > wanted
                 OR excluded.recall_answered > recall_answered",
        )?
        .execute(params![sku, a, b, d, e, f])?;
    Ok(n > 0)
}

/// Units of an online order handed over or sent out: they leave the units
/// kept for the hub.
pub(crate) fn add_delivered(c: &Connection, sku: &str, qty: i64) -> Result<(), AppError> {
    let mut s = store_rights(c, sku)?;
    s.delivered += qty;
    save_store_rights(c, sku, &s)
}

/// Units kept for the hub's customers (rights it holds plus its open orders).
pub(crate) fn kept_for_hub(c: &Connection, sku: &str) -> Result<i64, AppError> {
    Ok(outstanding(&store_rights(c, sku)?, &hub_rights(c, sku)?))
}

/// What the store itself may still promise of a SKU (community orders).
pub(crate) fn store_free(
    c: &Connection,
    sku: &str,
    on_hand: i64,
    reserved: i64,
) -> Result<i64, AppError> {
    Ok(counter_free(
        on_hand,
        reserved,
        &store_rights(c, sku)?,
        &hub_rights(c, sku)?,
    ))
}

fn policy(c: &Connection, sku: &str) -> Result<Policy, AppError> {
    let unit: Option<String> = c
        .prepare_cached("SELECT unit FROM products WHERE sku = ?1")?
        .query_row([sku], |r| r.get(0))
        .optional()?;
    Ok(if unit.as_deref() == Some("kg") {
        Policy::KG
    } else {
        Policy::EACH
    })
}

/// Runs the store's step for a SKU: records an overdraft, recalls or lends.
/// `lend` is false on a node without a hub (no one to lend to; an overdraft
/// cannot happen there either). Returns the new totals if they changed.
pub(crate) fn step(c: &Connection, sku: &str, lend: bool) -> Result<Option<StoreRights>, AppError> {
    let s = store_rights(c, sku)?;
    let h = hub_rights(c, sku)?;
    let (on_hand, reserved) = super::books::level(c, sku)?;
    let mut st = store_step(on_hand, reserved, &s, &h, &policy(c, sku)?);
    if !lend {
        st.lend = 0;
        st.recall = 0;
    }
    if st.is_noop(&s) {
        return Ok(None);
    }
    let next = st.apply(&s);
    if st.overdraft > 0 {
        tracing::warn!(
            sku,
            units = st.overdraft,
            "counter sold units lent to the hub: overdraft recorded"
        );
    }
    save_store_rights(c, sku, &next)?;
    Ok(Some(next))
}

/// Every SKU's totals (for a new day's document).
pub(crate) fn all_store_rights(c: &Connection) -> Result<Vec<(String, StoreRights)>, AppError> {
    let sql = format!(
        "SELECT sku, {} FROM rights ORDER BY sku",
        StoreRights::COLUMNS
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, StoreRights::from_totals(row_i64s(r, 1)?)))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
