//! Recovery of a new database under an existing store identity (a replaced
//! store PC, a lost disk).
//!
//! A node with a hub whose database holds no document yet starts in
//! recovery: it writes nothing ([`super::AppError::Recovering`]) until it has
//! received from the hub what the hub holds for its store — the catalog, the
//! store's own ledgers and stock of the open days (accepted back only in
//! this mode, and only changes made by the store's own actors), the hub's
//! rights and online orders of those days. Then ticket numbers continue
//! after the last one of the recovered ledgers, stock levels and the store's
//! rights come back from the recovered stock document, the store's own
//! tables (sales, refunds, movements, pickup orders, what it did with online
//! orders) are rebuilt from the recovered documents ([`rebuild`]), and the
//! node writes under its new actor id. Without this, the new node would
//! start its documents afresh beside the hub's copies: tickets of the day
//! numbered from 1 again, and concurrent new documents hiding one another's
//! entries.
//!
//! A database restored from an old backup has documents, so it does not
//! start in recovery; it enters it (`begin`) the first time the hub shows
//! it holds changes this database made and no longer has
//! (`linli_sync::doc_store::DocError::Behind`), or when an operator runs
//! `linli-edge recover` after restoring it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use linli_shared::docs::ledger::read_sales;
use linli_shared::docs::stock::{read_levels, read_rights};
use linli_shared::docs::{DocId, DocKind, MAX_PARTS};
use linli_shared::rights::StoreRights;
use linli_sync::doc_store::Docs;
use rusqlite::{Connection, OptionalExtension};

use super::{App, AppError};

pub mod rebuild;

const META_KEY: &str = "recovery";

/// How many business days back a recovery reaches (today included): a
/// week covers the refunds a counter takes back and every pickup hold.
pub const OPEN_DAYS: u32 = 7;

/// The catalog epoch the hub serves (`linli_hub::hub::CATALOG_EPOCH`).
const CATALOG_EPOCH: u32 = 1;

/// What a finished recovery brought back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recovered {
    /// Sales in the recovered ledgers.
    pub sales: usize,
    /// What the store's tables gained from the recovered documents.
    pub rebuilt: rebuild::Rebuilt,
    /// The last ticket sequence of today found at the hub.
    pub last_ticket_seq: u32,
    /// Stock levels restored.
    pub levels: usize,
}

impl App {
    /// At start with a hub: a database without any document begins in
    /// recovery (remembered in `meta`, so a restart mid-recovery stays in
    /// it). Returns whether the node is recovering.
    pub async fn init_recovery(&self) -> Result<bool, AppError> {
        let sync = self.sync_ctx().clone();
        let pending = self
            .store()
            .write(move |c| {
                let state: Option<String> = c
                    .query_row("SELECT value FROM meta WHERE key = ?1", [META_KEY], |r| {
                        r.get(0)
                    })
                    .optional()?;
                let pending = match state.as_deref() {
                    Some(s) => s == "pending",
                    None => {
                        let docs: i64 =
                            c.query_row("SELECT COUNT(*) FROM docs", [], |r| r.get(0))?;
                        let pending = docs == 0;
                        c.execute(
                            "INSERT INTO meta(key, value) VALUES (?1, ?2)",
                            [META_KEY, if pending { "pending" } else { "done" }],
                        )?;
                        pending
                    }
                };
                if pending {
                    sync.with_docs(c, |d| {
                        d.set_recovering(true);
                        Ok(())
                    })?;
                }
                Ok::<_, AppError>(pending)
            })
            .await?;
        self.sync_ctx().set_recovering(pending);
        if pending {
            tracing::warn!(
                "new database under an existing store identity: recovering from the hub before writing"
            );
        }
        Ok(pending)
    }

    /// Waits until recovery is over, at most `deadline`; returns whether it is.
    pub async fn wait_recovered(&self, deadline: std::time::Duration) -> bool {
        let end = tokio::time::Instant::now() + deadline;
        while self.sync_ctx().recovering() {
            if tokio::time::Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        true
    }
}

/// Puts the database into recovery (in the writer's transaction): it
/// writes nothing until it has what the hub holds for the store. Used when
/// the hub shows this database lost changes it once sent, and by
/// `linli-edge recover` after a restore from a backup.
pub(crate) fn begin(c: &Connection, docs: &mut Docs) -> Result<(), AppError> {
    c.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, 'pending')",
        [META_KEY],
    )?;
    docs.set_recovering(true);
    Ok(())
}

/// Marks a stopped node's database for recovery (`linli-edge recover`,
/// after restoring it from a backup): on its next start it records nothing
/// until it has recovered what the hub holds for the store.
pub fn mark_pending(c: &Connection) -> Result<(), AppError> {
    c.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, 'pending')",
        [META_KEY],
    )?;
    Ok(())
}

/// The open days, oldest first, and tomorrow: a PC whose clock ran ahead
/// past midnight wrote its sales under tomorrow's documents, and a new PC
/// with the right time must hold them too (or it would start tomorrow's
/// documents afresh beside the hub's copies, its tickets from 1 again;
/// found by `linli-sim` seed 6, a store's clock 15 min ahead at midnight).
pub(crate) fn open_days(today: NaiveDate) -> Vec<NaiveDate> {
    (0..OPEN_DAYS)
        .rev()
        .filter_map(|back| today.checked_sub_days(chrono::Days::new(u64::from(back))))
        .chain(today.checked_add_days(chrono::Days::new(1)))
        .collect()
}

/// The documents a recovering node asks the hub for: the catalog, and the
/// store's and the hub's documents of the open days.
pub(crate) fn wanted(store: &str, today: NaiveDate) -> Vec<DocId> {
    let mut out = vec![DocId::catalog(CATALOG_EPOCH)];
    for day in open_days(today) {
        // part 0 of the day's ledger and stock: each part that arrives with
        // something in it asks for the next ([`next_part`])
        out.push(DocId::store_ledger(store, day));
        out.push(DocId::store_stock(store, day));
        out.push(DocId::store_fulfilment(store, day));
        out.push(DocId::hub_stock(store, day));
        out.push(DocId::hub_orders(store, day));
    }
    out
}

/// The part a recovering store asks for once `got` (a part of its own
/// day's ledger or stock) arrived with something in it: parts are written
/// in order, so the parts the hub holds are 0..n and the first one it
/// answers empty ends the day.
pub(crate) fn next_part(got: &DocId) -> Option<DocId> {
    let next = got.part_no() + 1;
    (matches!(got.kind(), DocKind::Ledger | DocKind::Stock)
        && matches!(got.owner(), linli_shared::docs::Owner::Store(_))
        && next < MAX_PARTS)
        .then(|| got.part(next))
}

/// Ends recovery in the writer's transaction: ticket counters continue after
/// the recovered tickets, stock levels and the store's rights come back from
/// the latest recovered stock document, and documents are written normally
/// (under this database's own, new actor) from now on.
pub(crate) fn complete(
    c: &Connection,
    docs: &mut Docs,
    store: &str,
    today: NaiveDate,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Recovered, AppError> {
    let at = &crate::app::ts(now);
    let mut report = Recovered::default();
    let days = open_days(today);
    for day in days.iter().copied() {
        let mut sales = Vec::new();
        for (id, _) in docs.parts(c, &DocId::store_ledger(store, day))? {
            sales.extend(docs.read(c, &id, read_sales)?.unwrap_or_default());
        }
        report.sales += sales.len();
        let last = sales
            .iter()
            .filter_map(|s| s.ticket_no.rsplit('-').next()?.parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        if last > 0 {
            c.prepare_cached(
                "INSERT INTO ticket_counters(day, last_seq) VALUES (?1, ?2)
                 ON CONFLICT(day) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
            )?
            .execute(rusqlite::params![day.to_string(), last])?;
        }
        if day == today {
            report.last_ticket_seq = last;
        }
    }
    // the latest day's stock holds the closing levels of the books: its
    // part 0 opened the day with every level and right, and each later part
    // holds what moved in it (a later part's value wins; rights only grow)
    for day in days.iter().rev() {
        let parts = docs.parts(c, &DocId::store_stock(store, *day))?;
        if parts.first().is_none_or(|(id, _)| id.part_no() != 0) {
            continue;
        }
        let mut levels = BTreeMap::new();
        let mut rights: BTreeMap<String, StoreRights> = BTreeMap::new();
        for (id, _) in &parts {
            let Some((l, r)) =
                docs.read(c, id, |d| (read_levels(d), read_rights::<StoreRights>(d)))?
            else {
                continue;
            };
            levels.extend(l);
            for (sku, r) in r {
                let merged = match rights.remove(&sku) {
                    Some(prev) => prev.join(r),
                    None => r,
                };
                rights.insert(sku, merged);
            }
        }
        let mut stmt = c.prepare_cached(
            "INSERT INTO stock(sku, on_hand, reserved)
             SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM products WHERE sku = ?1)
             ON CONFLICT(sku) DO UPDATE SET on_hand = excluded.on_hand, reserved = excluded.reserved",
        )?;
        for (sku, l) in &levels {
            report.levels += stmt.execute(rusqlite::params![sku, l.on_hand, l.reserved])?;
        }
        let mut stmt = c.prepare_cached(
            "INSERT INTO rights(sku, lent, recalled, overdraft, delivered, wanted_met)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(sku) DO UPDATE SET lent = max(lent, excluded.lent),
                 recalled = max(recalled, excluded.recalled),
                 overdraft = max(overdraft, excluded.overdraft),
                 delivered = max(delivered, excluded.delivered),
                 wanted_met = max(wanted_met, excluded.wanted_met)",
        )?;
        for (sku, r) in &rights {
            stmt.execute(rusqlite::params![
                sku,
                r.lent,
                r.recalled,
                r.overdraft,
                r.delivered,
                r.wanted_met
            ])?;
        }
        break;
    }
    report.rebuilt = rebuild::tables(c, docs, store, &days, now)?;
    rebuild::opening_balances(c, at)?;
    // the old PC's latest time, which this one never stamps before
    // (`timeline::latest_used` reads it at each start)
    if let Some(t) = super::timeline::latest_rebuilt(c)? {
        c.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
            rusqlite::params![super::timeline::RECOVERED_UNTIL, t],
        )?;
    }
    c.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, 'done')",
        [META_KEY],
    )?;
    docs.set_recovering(false);
    // the documents recovered are the hub's copies: drop any cached copy
    for id in wanted(store, today) {
        if id.kind() != DocKind::Catalog {
            docs.evict(&id);
        }
    }
    Ok(report)
}
