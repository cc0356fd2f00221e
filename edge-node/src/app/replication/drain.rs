//! The outbox's drain: what gathered in `doc_outbox` becomes changes of
//! the store's documents, one change per document for many facts, in two
//! halves ([`drain_all`]):
//!
//! 1. [`prepare`] reads the oldest rows and what they name from the books
//!    in one snapshot of a read connection, and makes the changes on copies
//!    of the documents ([`Docs::checkout`]), sealed as chunks. It runs on
//!    a thread of its own at the lowest scheduling priority (`SCHED_IDLE`,
//!    [`linli_sync::background`]): on the store PC's few cores the
//!    documents' work yields to the sales;
//! 2. [`persist`], one short write, writes the chunks and deletes the rows
//!    they carry.
//!
//! Drains do not overlap ([`SyncCtx`] holds their turn). The automerge
//! work was ~0.9 ms a drain and ~0.1 ms a sale on the writer thread before
//! (`edge_bench`, `perf`), ahead of every sale queued behind it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::NaiveDate;
use linli_shared::docs::DocId;
use linli_shared::docs::json::put_record;
use linli_shared::docs::ledger;
use linli_shared::docs::stock::{Level, set_level, set_rights};
use linli_shared::online::FulfilmentFact;
use linli_sync::doc_store::{DocError, Docs, Sealed};
use rusqlite::Connection;
use std::collections::BTreeSet;

use super::{DRAIN_FLOOR, DRAIN_IDLE_MAX, DRAIN_MAX, LedgerFact, Outbox, SyncCtx};
use crate::app::{AppError, Clock};
use crate::store::{Store, StoreError};

/// How many times in a row a drain is prepared again after its documents
/// were written while it was prepared ([`Drained::outdated`]).
const OUTDATED_DRAINS: u32 = 5;

/// Writes what gathered in the outbox to the documents (all of it, in
/// drains of at most [`DRAIN_MAX`] rows, each prepared off the writer and
/// persisted by one short write) and offers the changed documents to the
/// hub. Returns the rows drained.
pub(crate) async fn drain_all(
    store: &Store,
    sync: &Arc<SyncCtx>,
    store_id: &str,
    clock: &Clock,
) -> Result<usize, AppError> {
    let mut reader = sync.drain.lock().await;
    sync.open_docs(store).await?;
    let (mut rows, mut outdated) = (0, 0);
    loop {
        // taken for this drain, and given back unless it wrote rows (an
        // outdated one, or one the node's recovery stopped, writes none):
        // the parts are then still to be started
        let roll = sync.roll.swap(false, Ordering::AcqRel);
        let d = drain_once(store, sync, store_id, &mut reader, roll, clock).await;
        if roll && !matches!(&d, Ok(Some(d)) if d.rows > 0) {
            sync.roll_parts();
        }
        let Some(d) = d? else {
            return Ok(rows);
        };
        if d.outdated {
            outdated += 1;
            if outdated >= OUTDATED_DRAINS {
                return Err(AppError::Store(StoreError::Sql(format!(
                    "the outbox's drain was outdated {outdated} times in a row; retried with the next facts"
                ))));
            }
            continue;
        }
        rows += d.rows;
        sync.notify(d.touched);
        if !d.more {
            return Ok(rows);
        }
    }
}

/// One drain: prepared on its own thread with the
/// drain's reader (in line where the store is:
/// [`linli_sync::db::InlineWrites`]), then persisted. `None`: nothing was
/// to be drained.
async fn drain_once(
    store: &Store,
    sync: &Arc<SyncCtx>,
    store_id: &str,
    reader: &mut Option<Connection>,
    roll: bool,
    clock: &Clock,
) -> Result<Option<Drained>, AppError> {
    let r = match reader.take() {
        Some(r) => r,
        None => store.open_reader()?,
    };
    let (prepared, r) = if store.is_inline() {
        // a simulation's run stays on its one thread
        (prepare(&r, sync, store_id, roll, DRAIN_MAX), r)
    } else {
        let (prepared, r, _) =
            prepare_on_own_thread(r, sync.clone(), store_id.to_owned(), roll, clock.clone())
                .await?;
        (prepared, r)
    };
    *reader = Some(r);
    let Some(prepared) = prepared? else {
        return Ok(None);
    };
    let s = sync.clone();
    Ok(Some(store.write(move |c| persist(c, &s, prepared)).await?))
}

/// The result of [`prepare`], the read connection back, and whether the
/// drain ran at the lowest priority.
type PreparedOn = (Result<Option<Prepared>, AppError>, Connection, bool);

/// Runs [`prepare`] on `r` on a new thread at the lowest priority
/// ([`linli_sync::background::lower_this_thread`]), unless its oldest
/// fact has waited [`DRAIN_FLOOR`] by `clock`, read as the drain starts
/// (a drain may wait long to run). A thread a drain (at most
/// one every [`super::DRAIN_DELAY`]) costs tens of microseconds, and no
/// pooled thread is left at the lower priority.
async fn prepare_on_own_thread(
    r: Connection,
    sync: Arc<SyncCtx>,
    store_id: String,
    roll: bool,
    clock: Clock,
) -> Result<PreparedOn, AppError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("outbox-drain".into())
        .spawn(move || {
            // a database that does not answer is found by `prepare`
            let waited = super::facts_waiting(&r, || clock()).unwrap_or_default();
            let at_idle = waited < DRAIN_FLOOR;
            let max_rows = match at_idle {
                true => {
                    linli_sync::background::lower_this_thread();
                    DRAIN_IDLE_MAX
                }
                false => {
                    tracing::debug!(
                        waited_ms = waited.as_millis() as u64,
                        "facts are late: drained at the default priority"
                    );
                    DRAIN_MAX
                }
            };
            let out = prepare(&r, &sync, &store_id, roll, max_rows);
            let _ = tx.send((out, r, at_idle));
        })
        .map_err(|e| AppError::Store(StoreError::Sql(format!("cannot start the drain: {e}"))))?;
    rx.await.map_err(|_| AppError::Store(StoreError::Panicked))
}

/// What gathered in the outbox for one business day.
#[derive(Default)]
struct DayFacts {
    facts: Vec<LedgerFact>,
    fulfilment: Vec<FulfilmentFact>,
    levels: BTreeSet<String>,
    rights: BTreeSet<String>,
}

/// What one drain did.
#[derive(Debug, Default)]
pub struct Drained {
    /// The documents that changed, for [`SyncCtx::notify`] after the commit.
    pub touched: Vec<DocId>,
    /// Outbox rows written to documents.
    pub rows: usize,
    /// Whether rows are left (more than one drain takes).
    pub more: bool,
    /// Nothing was written: a document was written after the drain copied
    /// it (a hub's request made a new document's header, say); the drain
    /// is to be prepared again.
    pub outdated: bool,
}

/// The first half of a drain, done off the writer: the oldest outbox rows
/// (up to `last`) and the documents' changes they make, sealed on copies.
#[derive(Debug)]
pub(crate) struct Prepared {
    last: i64,
    rows: usize,
    /// Rows were left in the outbox (the drain took all it may).
    more: bool,
    sealed: Vec<Sealed>,
}

/// The first half of a drain, on a read connection and off the writer
/// thread: reads the oldest facts of the outbox and what they name from
/// the books in one snapshot, and makes the documents' changes on copies
/// ([`Docs::checkout`]), one change per document. `None` if there is
/// nothing to drain, or nothing may be drained: the node recovers (its
/// documents are not its own yet) or its first session has not shown it
/// is not behind. `roll`: new parts are started (the link went down).
/// Drains must not overlap ([`drain_all`] takes turns).
pub(crate) fn prepare(
    r: &Connection,
    sync: &SyncCtx,
    store_id: &str,
    roll: bool,
    max_rows: usize,
) -> Result<Option<Prepared>, AppError> {
    if sync.recovering() || !sync.confirmed() {
        return Ok(None);
    }
    // one snapshot: the levels read are at least as new as the facts
    let snapshot = r.unchecked_transaction()?;
    let rows: Vec<(i64, String, String, String)> = r
        .prepare_cached("SELECT seq, day, kind, body FROM doc_outbox ORDER BY seq LIMIT ?1")?
        .query_map([max_rows as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let Some(last) = rows.last().map(|r| r.0) else {
        return Ok(None);
    };
    let corrupt = |what: String| AppError::Store(StoreError::Sql(what));
    let mut days: std::collections::BTreeMap<NaiveDate, DayFacts> = Default::default();
    for (seq, day, kind, body) in &rows {
        let day: NaiveDate = day
            .parse()
            .map_err(|_| corrupt(format!("outbox row {seq}: bad day {day}")))?;
        let d = days.entry(day).or_default();
        let bad = |e: serde_json::Error| corrupt(format!("outbox row {seq}: {e}"));
        match kind.as_str() {
            Outbox::LEDGER => d.facts.push(serde_json::from_str(body).map_err(bad)?),
            Outbox::FULFILMENT => d.fulfilment.push(serde_json::from_str(body).map_err(bad)?),
            Outbox::LEVEL => {
                d.levels.insert(body.clone());
            }
            Outbox::RIGHTS => {
                d.rights.insert(body.clone());
            }
            other => return Err(corrupt(format!("outbox row {seq}: unknown kind {other}"))),
        }
    }
    let mut sealed = Vec::new();
    for (day, facts) in days {
        sealed.extend(write_day(r, sync, store_id, day, facts, roll)?);
    }
    snapshot.finish()?;
    Ok(Some(Prepared {
        last,
        rows: rows.len(),
        more: rows.len() == max_rows,
        sealed,
    }))
}

/// The second half of a drain, in the writer's transaction: writes the
/// prepared changes' chunks and deletes the outbox rows they carry, so a
/// crash leaves either the rows (drained again after the restart) or the
/// changes (and no rows), never both or neither. Refused, with nothing
/// written, if a document was written since its copy was taken; nothing
/// is written if the node began to recover meanwhile.
pub(crate) fn persist(c: &Connection, sync: &SyncCtx, p: Prepared) -> Result<Drained, AppError> {
    if sync.recovering() || !sync.confirmed() {
        return Ok(Drained::default());
    }
    let Prepared {
        last,
        rows,
        more,
        sealed,
    } = p;
    let mut touched = match sync.with_docs(c, |d| Ok(d.persist_sealed(c, sealed))) {
        Err(e) => return Err(e),
        Ok(Err(DocError::Outdated(id))) => {
            tracing::info!(%id, "a document was written while the drain prepared; prepared again");
            return Ok(Drained {
                outdated: true,
                ..Drained::default()
            });
        }
        Ok(r) => r?,
    };
    c.prepare_cached("DELETE FROM doc_outbox WHERE seq <= ?1")?
        .execute([last])?;
    touched.sort();
    touched.dedup();
    Ok(Drained {
        touched,
        rows,
        more,
        outdated: false,
    })
}

/// The part of the day's document `base` to write next and how many
/// records it still takes (all that come, once the day has its last part).
/// `roll`: a part that holds something is not written again (the link went
/// down since).
fn part_room(
    c: &Connection,
    docs: &mut Docs,
    base: &DocId,
    limit: u64,
    roll: bool,
) -> Result<(DocId, usize), AppError> {
    // the parts are read once: which to write and what it holds
    let parts = docs.parts(c, base)?;
    let numbers: Vec<(u32, u64)> = parts.iter().map(|(p, n)| (p.part_no(), *n)).collect();
    let mut id = base.part(linli_shared::docs::part_to_write(
        base.kind(),
        &numbers,
        limit,
    ));
    let mut held = parts.iter().find(|(p, _)| *p == id).map_or(0, |(_, n)| *n);
    if roll && held > 0 && id.part_no() + 1 < linli_shared::docs::MAX_PARTS {
        id = base.part(id.part_no() + 1);
        held = 0;
    }
    Ok((id.clone(), room(&id, limit, held)))
}

/// How many more records part `id` takes when it holds `held` of `limit`
/// (all that come, if it is the day's last part).
fn room(id: &DocId, limit: u64, held: u64) -> usize {
    if id.part_no() + 1 >= linli_shared::docs::MAX_PARTS {
        usize::MAX
    } else {
        usize::try_from(limit.saturating_sub(held)).unwrap_or(usize::MAX)
    }
}

/// Writes one ledger fact.
fn record(
    doc: &mut automerge::AutoCommit,
    f: &LedgerFact,
) -> Result<(), automerge::AutomergeError> {
    match f {
        LedgerFact::Sale(s) => ledger::record_sale(doc, s)?,
        LedgerFact::Movement(m) => ledger::record_movement(doc, m)?,
        LedgerFact::Refund(r) => ledger::record_refund(doc, r)?,
        LedgerFact::Order(o) => ledger::put_order(doc, o)?,
        LedgerFact::Member(m) => {
            put_record(doc, "members", &m.join_id, m)?;
        }
        LedgerFact::Commitment(k) => {
            put_record(doc, "commitments", &k.commitment_id, k)?;
        }
        LedgerFact::Cancel(k) => {
            put_record(doc, "commitment_cancels", &k.commitment_id, k)?;
        }
        LedgerFact::CouponRedemption(r) => {
            put_record(doc, "coupon_redemptions", &r.redemption_id, r)?;
        }
        LedgerFact::CouponVoid(v) => {
            put_record(doc, "coupon_voids", &v.redemption_id, v)?;
        }
        LedgerFact::CouponReturn(r) => {
            put_record(doc, "coupon_returns", &r.coupon_id, r)?;
        }
        LedgerFact::Erasure(e) => {
            put_record(doc, "erasures", &e.erasure_id, e)?;
        }
    }
    Ok(())
}

/// Levels and rights a sale moves, about: a stock part takes as many
/// records as before the outbox batched them (400 sales of ~3 levels each).
/// Counted one per record, a catch-up of 5,000 offline sales took three
/// times the parts and 100 B a sale instead of ~80 (`sync_bench` 1e).
const STOCK_RECORDS_PER_CHANGE: usize = 3;

/// What a stock change of `records` levels and rights counts towards its
/// part's limit.
fn stock_weight(records: usize) -> usize {
    records.div_ceil(STOCK_RECORDS_PER_CHANGE)
}

/// Makes one day's facts and levels into changes of its documents, on
/// copies ([`Docs::checkout`]) sealed for the writer; a new day's stock
/// document first takes every level and right of the books (the closing
/// balances). `r` is the drain's snapshot.
fn write_day(
    r: &Connection,
    sync: &SyncCtx,
    store_id: &str,
    day: NaiveDate,
    day_facts: DayFacts,
    roll: bool,
) -> Result<Vec<Sealed>, AppError> {
    let DayFacts {
        facts,
        fulfilment,
        levels: skus,
        rights: moved,
    } = day_facts;
    let checkout = |id: &DocId| sync.with_docs(r, |d| Ok(d.checkout(r, id)?));
    let mut sealed = Vec::new();
    if !fulfilment.is_empty() {
        let mut copy = checkout(&DocId::store_fulfilment(store_id, day))?;
        copy.change(1, |doc| {
            for f in &fulfilment {
                put_record(doc, "orders", &f.order_id, f)?;
            }
            Ok(())
        })?;
        sealed.extend(copy.seal());
    }
    if !facts.is_empty() {
        // a part is filled up to its limit and the rest goes on to the
        // next: a batch never makes a part bigger than the limit, so a
        // part written while the link was down goes out whole (and
        // compressed) once it is back
        let base = DocId::store_ledger(store_id, day);
        let mut rest: &[LedgerFact] = &facts;
        let (mut id, mut room_left) =
            sync.with_docs(r, |d| part_room(r, d, &base, sync.part_changes, roll))?;
        while !rest.is_empty() {
            let (now, later) = rest.split_at(room_left.clamp(1, rest.len()));
            let mut copy = checkout(&id)?;
            copy.change(now.len(), |doc| now.iter().try_for_each(|f| record(doc, f)))?;
            sealed.extend(copy.seal());
            rest = later;
            // the part is full: the next one is new
            id = base.part(id.part_no() + 1);
            room_left = room(&id, sync.part_changes, 0);
        }
    }
    if !skus.is_empty() {
        // part 0 opens the day with every level and right of the books;
        // what moves afterwards goes to the later, small parts
        let base = DocId::store_stock(store_id, day);
        let (id, _) = sync.with_docs(r, |d| part_room(r, d, &base, sync.part_changes, roll))?;
        let fresh = id.part_no() == 0;
        let rights = if fresh {
            crate::app::rights::all_store_rights(r)?
        } else {
            let mut out = Vec::with_capacity(moved.len());
            for sku in moved {
                let rights = crate::app::rights::store_rights(r, &sku)?;
                out.push((sku, rights));
            }
            out
        };
        let rows: Vec<(String, i64, i64)> = if fresh {
            let mut stmt =
                r.prepare_cached("SELECT sku, on_hand, reserved FROM stock ORDER BY sku")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        } else {
            let mut stmt =
                r.prepare_cached("SELECT on_hand, reserved FROM stock WHERE sku = ?1")?;
            let mut out = Vec::with_capacity(skus.len());
            for sku in skus {
                let (on_hand, reserved) = stmt.query_row([&sku], |r| Ok((r.get(0)?, r.get(1)?)))?;
                out.push((sku, on_hand, reserved));
            }
            out
        };
        let mut copy = checkout(&id)?;
        copy.change(stock_weight(rows.len() + rights.len()), |doc| {
            for (sku, on_hand, reserved) in &rows {
                set_level(
                    doc,
                    sku,
                    Level {
                        on_hand: *on_hand,
                        reserved: *reserved,
                    },
                )?;
            }
            for (sku, r) in &rights {
                set_rights(doc, sku, r)?;
            }
            Ok(())
        })?;
        sealed.extend(copy.seal());
    }
    Ok(sealed)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    use chrono::{DateTime, Utc};
    use std::time::Duration;

    /// A drain yields the cores to the sales, unless its oldest fact has
    /// waited [`DRAIN_FLOOR`], or the clock was set back since it was
    /// stamped (its wait unknown): then it is late, and shares them.
    #[tokio::test]
    async fn late_facts_are_drained_at_the_default_priority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = crate::store::open_writer_conn(&path).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let sync = Arc::new(SyncCtx::new("S001", linli_shared::docs::PART_CHANGES));
        // the last: a clock set back 10 minutes since the fact was stamped
        let late = Duration::from_secs(600);
        for (waited, set_back, at_idle) in [
            (Duration::from_millis(5), false, true),
            (DRAIN_FLOOR - Duration::from_millis(1), false, true),
            (DRAIN_FLOOR, false, false),
            (late, false, false),
            (late, true, false),
        ] {
            c.execute_batch("DELETE FROM doc_outbox").unwrap();
            let at = now - chrono::Duration::from_std(waited).unwrap();
            c.execute(
                "INSERT INTO doc_outbox(day, kind, body, at_ms) VALUES ('2026-12-04', 'level', 'P00001', ?1)",
                [at.timestamp_millis()],
            )
            .unwrap();
            let read_at = match set_back {
                true => at - chrono::Duration::from_std(late).unwrap(),
                false => now,
            };
            let clock: Clock = Arc::new(move || read_at);
            let r = rusqlite::Connection::open(&path).unwrap();
            let (_, _, idle) = prepare_on_own_thread(r, sync.clone(), "S001".into(), false, clock)
                .await
                .unwrap();
            assert_eq!(idle, at_idle, "{waited:?}");
        }
    }
}
