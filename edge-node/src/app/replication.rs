//! The store's side of DESIGN.md §3: every committed fact also becomes a
//! change in the store's documents.
//!
//! - `store/<S>/ledger/<day>`: sales, refunds, movements and pickup orders of
//!   the business day (append-only, keyed by id);
//! - `store/<S>/stock/<day>`: the levels of the SKUs touched, a new day's
//!   document starting from the closing levels of the books.
//!
//! Both come in parts of at most [`linli_shared::docs::PART_CHANGES`]
//! records (`…/<day>/p<n>`; a drain's change of many records counts each),
//! so no change is ever applied to a document with the whole day's
//! history; part 0 of the stock holds the opening levels and nothing else.
//!
//! A transactional outbox keeps the documents off the sale's critical
//! path. Use cases call `Publish` inside their write closure: the facts
//! go into `doc_outbox` in the same SQLite transaction as the query tables
//! (and the stock-rights step runs there too), so an acknowledged sale is
//! durable with everything the documents will say about it. A drain later
//! writes what gathered in the outbox to the documents, one change per
//! document for many facts, in two halves (`drain`): the changes are made
//! on copies of the documents off the writer thread, then one short write
//! persists them and deletes those rows: a crash either leaves the rows
//! (drained again after the restart) or the change (and no rows), never
//! both or neither. The documents are offered to the hub only after that
//! commit ([`SyncCtx::notify`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::docs::ledger;
use linli_shared::docs::{DocId, Owner};
use linli_shared::online::FulfilmentFact;
use linli_sync::doc_store::{DocError, Docs};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};

use super::AppError;
use crate::store::{Store, StoreError};

pub(crate) mod drain;
pub use drain::Drained;

impl From<DocError> for AppError {
    fn from(e: DocError) -> Self {
        AppError::Store(StoreError::Sql(e.to_string()))
    }
}

impl From<automerge::AutomergeError> for AppError {
    fn from(e: automerge::AutomergeError) -> Self {
        AppError::Store(StoreError::Sql(e.to_string()))
    }
}

/// The node's documents and who is waiting for their changes.
#[derive(Debug)]
pub struct SyncCtx {
    owner: Owner,
    docs: Mutex<Option<Docs>>,
    /// Ends of writer batches not yet told to the document set
    /// ([`BATCH_COMMITTED`], [`BATCH_ROLLED_BACK`]): the writer never
    /// waits for the set's lock (see [`SyncCtx::committed`]); the next
    /// holder tells the set first.
    ended: AtomicU8,
    changes: broadcast::Sender<DocId>,
    /// When each document got its first change the hub has not acknowledged.
    unsynced: Mutex<HashMap<DocId, Instant>>,
    /// Whether the store lends rights (it has a hub to lend to).
    lending: AtomicBool,
    /// The database is new and still recovering from the hub: no document
    /// is written until it has everything the hub holds for this store.
    recovering: AtomicBool,
    /// Changes per part of a day's ledger and stock.
    part_changes: u64,
    /// Woken when facts were committed to the outbox.
    outbox: Notify,
    /// The next drain starts new parts of the day's ledger and stock (the
    /// link went down: the hub holds some of the open parts).
    roll: AtomicBool,
    /// Held by the drain in progress: drains do not overlap (each takes
    /// copies of the documents the one before it writes). Holds the
    /// drains' read connection between them.
    drain: tokio::sync::Mutex<Option<Connection>>,
    /// Whether this database is known not to be behind the hub: a node
    /// with a hub drains nothing until its first session has shown it
    /// (a database restored from a backup would write its stale levels
    /// into parts the hub holds newer values of, and they could win).
    confirmed: AtomicBool,
}

/// [`SyncCtx::ended`]: a batch committed.
const BATCH_COMMITTED: u8 = 1;
/// [`SyncCtx::ended`]: a batch rolled back.
const BATCH_ROLLED_BACK: u8 = 2;

/// How long facts gather in the outbox before a drain writes them to the
/// documents (the node's drainer; a simulation drains when it chooses).
pub const DRAIN_DELAY: Duration = Duration::from_millis(10);

/// Most outbox rows one drain writes (a longer outbox takes several).
pub const DRAIN_MAX: usize = 1000;

/// A drain whose oldest fact has waited this long is prepared at the
/// default scheduling priority instead of the lowest. At `SCHED_IDLE` a
/// drain runs only on a core nothing else wants: on a store PC that
/// another program keeps busy (a virus scan, a stuck browser tab), the
/// documents, and with them all the hub learns of the store's sales,
/// stock and group-buy commitments, stayed behind for as long as the
/// cores did (`edge_bench` 2c). Facts this late share the cores with the
/// sales instead; a store that keeps up never waits this long (its
/// facts wait ~10 ms, [`DRAIN_DELAY`]). The hub hears of late facts
/// after the same second (`linli_shared::sync::session::FACTS_STUCK`).
pub const DRAIN_FLOOR: Duration = Duration::from_secs(1);

/// Most outbox rows a drain at the lowest priority writes: it may wait
/// long to run, and the next drain, which decides its priority afresh
/// ([`DRAIN_FLOOR`]), waits for it (drains do not overlap). A store
/// selling as fast as it can gathers ~260 rows in a drain's 10 ms.
pub const DRAIN_IDLE_MAX: usize = 256;

impl SyncCtx {
    /// The documents of `store_id`, a day's ledger and stock rolling on to
    /// a new part every `part_changes` changes
    /// ([`linli_shared::docs::PART_CHANGES`] unless testing).
    pub fn new(store_id: &str, part_changes: u64) -> SyncCtx {
        SyncCtx {
            owner: Owner::Store(store_id.to_owned()),
            docs: Mutex::new(None),
            ended: AtomicU8::new(0),
            changes: broadcast::channel(4096).0,
            unsynced: Mutex::new(HashMap::new()),
            lending: AtomicBool::new(false),
            recovering: AtomicBool::new(false),
            part_changes: part_changes.max(1),
            outbox: Notify::new(),
            roll: AtomicBool::new(false),
            drain: tokio::sync::Mutex::new(None),
            confirmed: AtomicBool::new(true),
        }
    }

    /// A node with a hub: nothing is drained until [`SyncCtx::confirm`].
    pub fn await_confirmation(&self) {
        self.confirmed.store(false, Ordering::Release);
    }

    /// The first session showed this database is not behind the hub (or a
    /// recovery brought it level): the outbox drains from now on.
    pub fn confirm(&self) {
        if !self.confirmed.swap(true, Ordering::AcqRel) {
            self.outbox_written();
        }
    }

    /// Whether the outbox may drain.
    pub fn confirmed(&self) -> bool {
        self.confirmed.load(Ordering::Acquire)
    }

    /// The link to the hub went down: the next drain writes new parts. A
    /// part the hub holds some of would otherwise take the outage's facts
    /// and go to the hub as those changes, uncompressed (~450 B a sale
    /// against ~55 B in a whole part: `sync_bench` 1e).
    pub fn roll_parts(&self) {
        self.roll.store(true, Ordering::Release);
    }

    /// Facts were committed to the outbox (or recovery ended and may
    /// release those it held back): the drainer wakes.
    pub fn outbox_written(&self) {
        self.outbox.notify_one();
    }

    /// Waits until facts were committed to the outbox since the last wait.
    pub async fn outbox_wait(&self) {
        self.outbox.notified().await;
    }

    /// Whether the node is still recovering its documents from the hub.
    pub fn recovering(&self) -> bool {
        self.recovering.load(Ordering::Acquire)
    }

    pub(crate) fn set_recovering(&self, on: bool) {
        self.recovering.store(on, Ordering::Release);
    }

    /// Turns lending rights to the hub on (a node with a hub) or off.
    pub fn set_lending(&self, on: bool) {
        self.lending.store(on, Ordering::Relaxed);
    }

    pub fn lending(&self) -> bool {
        self.lending.load(Ordering::Relaxed)
    }

    /// Whether the document set is open ([`SyncCtx::with_docs`] opens it
    /// on the writer's connection: it records the replica's actor).
    pub(crate) fn docs_open(&self) -> bool {
        match self.docs.lock() {
            Ok(g) => g.is_some(),
            Err(p) => p.into_inner().is_some(),
        }
    }

    /// Opens the document set on the writer if it is not open yet: opening
    /// writes (each process start takes a fresh actor id), so whatever uses
    /// the set on a read connection (a drain's first half, the uplink's
    /// index and messages) opens it first.
    pub(crate) async fn open_docs(self: &Arc<Self>, store: &Store) -> Result<(), AppError> {
        if !self.docs_open() {
            let sync = self.clone();
            store.write(move |c| sync.with_docs(c, |_| Ok(()))).await?;
        }
        Ok(())
    }

    /// Runs `f` with the document set, opening it first on the writer's
    /// connection; a drain's first half and the uplink also call it on a
    /// read connection, once it is open (`SyncCtx::open_docs`).
    pub fn with_docs<T>(
        &self,
        c: &Connection,
        f: impl FnOnce(&mut Docs) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let mut guard = match self.docs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.tell_ended(&mut guard);
        if guard.is_none() {
            *guard = Some(Docs::open(c, self.owner.clone())?);
        }
        match guard.as_mut() {
            Some(docs) => f(docs),
            None => Err(AppError::Store(StoreError::Closed)),
        }
    }

    /// A batch committed: its document changes may be offered to the hub.
    /// Called by the writer thread after every batch (a sale's too), so it
    /// never waits for the document set: a drain's first half holds the
    /// set while it copies documents, at the lowest scheduling priority,
    /// and on a PC whose cores another program keeps busy it may wait
    /// long to run again; the sales waited with it. If the set is held,
    /// its holder's next turn tells it first ([`SyncCtx::with_docs`]); till
    /// then the batch's documents count as uncommitted and are not offered,
    /// the safe side.
    pub fn committed(&self) {
        self.batch_ended(BATCH_COMMITTED);
    }

    /// A batch failed to commit: forget everything cached in memory (at
    /// once, or before anyone uses the set again: [`SyncCtx::committed`]).
    pub fn rolled_back(&self) {
        self.batch_ended(BATCH_ROLLED_BACK);
    }

    fn batch_ended(&self, how: u8) {
        self.ended.fetch_or(how, Ordering::AcqRel);
        match self.docs.try_lock() {
            Ok(mut g) => self.tell_ended(&mut g),
            Err(std::sync::TryLockError::Poisoned(p)) => self.tell_ended(&mut p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
    }

    /// Tells the set, under its lock, how the batches that ended since
    /// ended: a rollback drops what memory holds (it may hold what the
    /// database does not), then a commit lets the persisted documents be
    /// offered.
    fn tell_ended(&self, docs: &mut Option<Docs>) {
        let ended = self.ended.swap(0, Ordering::AcqRel);
        if let Some(d) = docs.as_mut() {
            if ended & BATCH_ROLLED_BACK != 0 {
                d.clear();
            }
            if ended & BATCH_COMMITTED != 0 {
                d.committed();
            }
        }
    }

    /// Subscribes to local document changes.
    pub fn subscribe(&self) -> broadcast::Receiver<DocId> {
        self.changes.subscribe()
    }

    /// Announces committed changes to the uplink.
    pub fn notify(&self, docs: impl IntoIterator<Item = DocId>) {
        let now = Instant::now();
        for d in docs {
            if let Ok(mut u) = self.unsynced.lock() {
                u.entry(d.clone()).or_insert(now);
            }
            // no receiver means no hub: the documents wait on disk
            let _ = self.changes.send(d);
        }
    }

    /// Wakes the uplink about `doc` without marking it as holding changes
    /// for the hub (a recovering node asking for a part it does not have).
    pub fn ask(&self, doc: DocId) {
        let _ = self.changes.send(doc);
    }

    /// The hub acknowledged every change of `doc`.
    pub fn acknowledged(&self, doc: &DocId) {
        if let Ok(mut u) = self.unsynced.lock() {
            u.remove(doc);
        }
    }

    /// Documents with changes the hub has not acknowledged, and the age of
    /// the oldest such change.
    pub fn pending(&self) -> (usize, Option<std::time::Duration>) {
        match self.unsynced.lock() {
            Ok(u) => (u.len(), u.values().min().map(|t| t.elapsed())),
            Err(_) => (0, None),
        }
    }
}

/// One fact for today's ledger.
#[derive(Serialize, Deserialize)]
#[serde(tag = "fact", content = "body", rename_all = "snake_case")]
pub(crate) enum LedgerFact {
    Sale(ledger::SaleFact),
    Movement(ledger::MovementFact),
    Refund(ledger::RefundFact),
    Order(ledger::OrderFact),
    /// A customer added to the store's community at the counter.
    Member(linli_shared::community::MemberFact),
    /// A group-buy commitment taken at the counter.
    Commitment(linli_shared::groupbuy::CounterCommitment),
    /// A counter commitment cancelled (and refunded) at the counter.
    Cancel(linli_shared::groupbuy::CounterCancel),
    /// A coupon the counter took with a sale.
    CouponRedemption(linli_shared::coupon::CounterRedemption),
    /// A coupon given back by the sale's full refund.
    CouponVoid(linli_shared::coupon::CounterVoid),
    /// What a recalled coupon allotment gave back to the hub in all.
    CouponReturn(linli_shared::coupon::CounterReturn),
    /// A customer's erasure done at this store.
    Erasure(linli_shared::erasure::ErasureConfirmation),
}

/// Collects the document changes of one use case inside its transaction and
/// writes them as one change per document in [`Publish::finish`].
pub(crate) struct Publish<'a> {
    c: &'a Connection,
    sync: &'a SyncCtx,
    day: NaiveDate,
    /// When the use case committed (the store's clock), for each row.
    at_ms: i64,
    facts: Vec<LedgerFact>,
    skus: BTreeSet<String>,
    fulfilment: Vec<FulfilmentFact>,
}

impl<'a> Publish<'a> {
    /// Facts of business day `day`, committed at `now`.
    pub(crate) fn new(
        c: &'a Connection,
        sync: &'a SyncCtx,
        day: NaiveDate,
        now: DateTime<Utc>,
    ) -> Publish<'a> {
        Publish {
            c,
            sync,
            day,
            at_ms: now.timestamp_millis(),
            facts: Vec::new(),
            skus: BTreeSet::new(),
            fulfilment: Vec::new(),
        }
    }

    /// Records what the store did with an online order in today's
    /// fulfilment document.
    pub(crate) fn fulfilment(&mut self, f: FulfilmentFact) {
        self.fulfilment.push(f);
    }

    /// Adds a fact to today's ledger.
    pub(crate) fn fact(&mut self, f: LedgerFact) {
        self.facts.push(f);
    }

    /// Marks SKUs whose levels (from the books) go into today's stock
    /// document; their stock rights are re-evaluated in the same commit
    /// ([`super::rights::step`]).
    pub(crate) fn levels<'s>(&mut self, skus: impl IntoIterator<Item = &'s str>) {
        self.skus.extend(skus.into_iter().map(str::to_owned));
    }

    /// Commits the facts to the outbox, in the use case's transaction, and
    /// runs the stock-rights step for the SKUs whose levels moved (an
    /// overdraft commits with the sale that caused it). Returns whether
    /// anything went into the outbox, for [`SyncCtx::outbox_written`]
    /// after the commit.
    pub(crate) fn finish(self) -> Result<bool, AppError> {
        let Publish {
            c,
            sync,
            day,
            at_ms,
            facts,
            skus,
            fulfilment,
        } = self;
        let writes = !fulfilment.is_empty() || !facts.is_empty() || !skus.is_empty();
        if !writes {
            return Ok(false);
        }
        if sync.recovering() {
            // a new database must not start the store's documents afresh
            // beside what the hub holds (ticket numbers, sales, levels)
            return Err(AppError::Recovering);
        }
        let day = day.to_string();
        let mut put = c.prepare_cached(
            "INSERT INTO doc_outbox(day, kind, body, at_ms) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for f in &fulfilment {
            put.execute(params![day, Outbox::FULFILMENT, to_json(f)?, at_ms])?;
        }
        for f in &facts {
            put.execute(params![day, Outbox::LEDGER, to_json(f)?, at_ms])?;
        }
        let lend = sync.lending();
        for sku in &skus {
            put.execute(params![day, Outbox::LEVEL, sku, at_ms])?;
            // the rights step first: an overdraft commits with the sale that caused it
            if super::rights::step(c, sku, lend)?.is_some() {
                put.execute(params![day, Outbox::RIGHTS, sku, at_ms])?;
            }
        }
        Ok(true)
    }
}

/// How long the first fact in the outbox (the first committed of those
/// not yet drained) has waited (zero if none waits): what decides a
/// drain's priority (a session's index says the wait of the oldest
/// stamped, [`oldest_waiting_stamp`], in
/// [`linli_shared::sync::Index::facts_waiting`]). Read by the outbox's key (one row, however long the
/// outbox), in the caller's snapshot where it has one; `now` is read
/// after the row, so every row read was stamped before it. A row's time is
/// the store's clock: a row stamped after `now` means the clock was set
/// back since, and how long the fact has waited is not known: it reads as
/// [`Duration::MAX`], the side on which the hub takes no report from the
/// index and the drain does not wait behind the sales. A row from before
/// the column reads as waiting since 1970.
pub(crate) fn facts_waiting(
    c: &Connection,
    now: impl FnOnce() -> DateTime<Utc>,
) -> Result<Duration, StoreError> {
    let first: Option<i64> = c
        .prepare_cached("SELECT at_ms FROM doc_outbox ORDER BY seq LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(waited_since(first.map(from_ms), now))
}

/// How long a fact stamped `stamp` has waited by `now` (read after the
/// stamp): zero for none, [`Duration::MAX`] for a stamp after `now` (the
/// clock set back since: how long is not known).
pub(crate) fn waited_since(
    stamp: Option<DateTime<Utc>>,
    now: impl FnOnce() -> DateTime<Utc>,
) -> Duration {
    let Some(at) = stamp else {
        return Duration::ZERO;
    };
    let waited = now()
        .timestamp_millis()
        .saturating_sub(at.timestamp_millis());
    u64::try_from(waited).map_or(Duration::MAX, Duration::from_millis)
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The earliest time a fact in the outbox was stamped with (`None` if
/// none waits): the facts a session's index does not list yet were all
/// stamped at or after it, so the index reports only up to before it
/// (`Index::sent_at`). The least of every row's time, not the first
/// row's: two writes stamped close together may commit in the other order.
/// A scan of the outbox, which the drain keeps to the facts of the last
/// moments; read at an index (every 15–45 s), not per sale. The index
/// says how long this fact has waited too ([`waited_since`]).
pub(crate) fn oldest_waiting_stamp(c: &Connection) -> Result<Option<DateTime<Utc>>, StoreError> {
    let at: Option<i64> = c
        .prepare_cached("SELECT min(at_ms) FROM doc_outbox")?
        .query_row([], |r| r.get(0))?;
    Ok(at.map(from_ms))
}

/// The kinds of outbox rows.
struct Outbox;

impl Outbox {
    const LEDGER: &'static str = "ledger";
    const FULFILMENT: &'static str = "fulfilment";
    /// The SKU's level (read from the books when drained).
    const LEVEL: &'static str = "level";
    /// The SKU's stock-rights totals changed (read when drained).
    const RIGHTS: &'static str = "rights";
}

/// A fact as its outbox row holds it.
fn to_json<T: Serialize>(v: &T) -> Result<String, AppError> {
    serde_json::to_string(v).map_err(|e| AppError::Store(StoreError::Sql(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer thread never waits for the document set: a batch that
    /// ends while a drain holds the set is told to it by the set's next
    /// user, before that user sees it (a rollback's clearing too).
    #[test]
    fn a_batch_end_never_waits_for_the_document_set() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open_writer_conn(&dir.path().join("s.db")).unwrap();
        let sync = Arc::new(SyncCtx::new("S001", linli_shared::docs::PART_CHANGES));
        sync.with_docs(&c, |_| Ok(())).unwrap();
        // a drain's first half holds the set...
        let held = sync.docs.lock().unwrap();
        // ...while the writer ends two batches
        let (tx, rx) = std::sync::mpsc::channel();
        let s = sync.clone();
        std::thread::spawn(move || {
            s.rolled_back();
            s.committed();
            tx.send(()).unwrap();
        });
        let told = rx.recv_timeout(std::time::Duration::from_secs(10));
        drop(held);
        assert!(told.is_ok(), "the writer waited for the document set");
        assert_eq!(
            sync.ended.load(Ordering::Acquire),
            BATCH_ROLLED_BACK | BATCH_COMMITTED
        );
        // the next user tells the set first
        sync.with_docs(&c, |_| Ok(())).unwrap();
        assert_eq!(sync.ended.load(Ordering::Acquire), 0);
        // with the set free, a batch's end is told at once
        sync.committed();
        assert_eq!(sync.ended.load(Ordering::Acquire), 0);
    }

    /// The wait an index reports is the first outbox row's, by the
    /// store's clock; none when the outbox is empty.
    #[test]
    fn facts_wait_from_the_first_outbox_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("s.db")).unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(facts_waiting(&c, || now).unwrap(), Duration::ZERO);
        let put = |at: DateTime<Utc>| {
            c.execute(
                "INSERT INTO doc_outbox(day, kind, body, at_ms) VALUES ('2026-12-04', 'ledger', '{}', ?1)",
                [at.timestamp_millis()],
            )
            .unwrap();
        };
        put(now - chrono::Duration::milliseconds(40));
        put(now - chrono::Duration::milliseconds(7));
        assert_eq!(
            facts_waiting(&c, || now).unwrap(),
            Duration::from_millis(40)
        );
        // a clock set back since: the wait is not known, and reads as the
        // longest (never as none, which would let the hub take the index
        // as a report while the facts still wait)
        assert_eq!(
            facts_waiting(&c, || now - chrono::Duration::seconds(1)).unwrap(),
            Duration::MAX
        );
        // the first drained: the next one's wait
        c.execute(
            "DELETE FROM doc_outbox WHERE seq = (SELECT min(seq) FROM doc_outbox)",
            [],
        )
        .unwrap();
        assert_eq!(facts_waiting(&c, || now).unwrap(), Duration::from_millis(7));
        // a row kept from before the column waits since 1970
        c.execute_batch(
            "DELETE FROM doc_outbox;
             INSERT INTO doc_outbox(day, kind, body) VALUES ('2026-12-04', 'level', 'A');",
        )
        .unwrap();
        assert!(facts_waiting(&c, || now).unwrap() > Duration::from_secs(50 * 365 * 86_400));
    }
}
