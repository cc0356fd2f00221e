//! The store's time, which never goes back.
//!
//! A store PC's clock is set back now and then: an NTP correction after it
//! ran fast, a cashier's hand. Read as it is, the store would then take
//! what it had already refused: a group-buy commitment after the deadline
//! it had passed (the hub had decided the campaign on the store's report
//! by then: `linli-sim`'s clock steps found it), a pickup code or a coupon
//! past its expiry. So every time the store stamps or decides by is
//! [`Timeline::now`]: the clock, but never earlier than a time the store
//! has already used, in this process or (read from its database at start)
//! before a restart. After a set-back the store's time stands at the
//! latest it used until the clock catches up with it (receipts in that
//! while share that time; their ticket numbers still order them), unless
//! the clock is more than [`MAX_STAND`] behind: then the time used was the
//! wrong one (a clock set to next week by mistake, put right), and the
//! clock is taken again.
//!
//! The hub's time, read from its index ([`Timeline::observe`]), is a
//! floor too, within the same reach: a store whose clock is a little
//! behind the chain's judges the hub's deadlines by the hub's time at
//! least. Its own index says its time (`Index::sent_at`), so the hub takes
//! it as a report for a deadline only once the store's time has passed it.
//!
//! How long a fact has waited is read from the clock itself, not from
//! here (`replication::facts_waiting`): a standing time would read a wait
//! as shorter than it was, the side on which the hub would take an index
//! as a report too early.
//!
//! A fact is stamped before it commits: its use case takes a [`Stamp`],
//! then its write waits for the writer (behind other writes, for
//! milliseconds when the counter is busy) and commits. An index taken in
//! between would neither list the fact nor count it as waiting, so the
//! time an index reports up to is [`Timeline::committed_until`]: before
//! the oldest stamp still in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, DurationRound, FixedOffset, TimeDelta, Utc};
use linli_shared::docs::DocId;
use rusqlite::{Connection, OptionalExtension};

use super::Clock;
use crate::store::StoreError;

/// How far the store's time stands ahead of its clock at most. A clock
/// more than this behind the time the store last used, or behind the
/// hub's, is wrong in a way standing would not mend: set to next week by
/// mistake and put right (standing would stamp a week of sales with the
/// wrong day), or off by days. The clock is then taken as it reads, with a
/// warning; the hub takes such a store's index as no report for a deadline
/// its time has not passed (`Index::sent_at`), so it is decided by the
/// grace. An hour and a half keeps a cashier's one-hour slip standing.
pub(crate) const MAX_STAND: TimeDelta = TimeDelta::minutes(90);

/// The clock with floors: the latest time handed out, and the hub's.
pub(crate) struct Timeline {
    clock: Clock,
    /// Milliseconds since the epoch of the latest time handed out.
    used_ms: AtomicI64,
    /// Milliseconds since the epoch of the latest hub time seen.
    hub_ms: AtomicI64,
    /// Stamps handed out whose write has not ended (milliseconds since
    /// the epoch → how many).
    in_flight: Mutex<BTreeMap<i64, usize>>,
}

/// The time a fact is stamped with, held until its write has ended
/// (committed or failed): until then an index does not report past it.
/// It goes with the write to the writer and comes back with its result,
/// so it is released after the commit even when the caller has gone
/// away (a client that hung up does not take its write back).
pub(crate) struct Stamp {
    at: DateTime<Utc>,
    timeline: Arc<Timeline>,
}

impl Stamp {
    pub(crate) fn at(&self) -> DateTime<Utc> {
        self.at
    }
}

impl Drop for Stamp {
    fn drop(&mut self) {
        let mut f = self.timeline.stamps();
        let ms = self.at.timestamp_millis();
        if let Some(n) = f.get_mut(&ms) {
            *n -= 1;
            if *n == 0 {
                f.remove(&ms);
            }
        }
    }
}

impl Timeline {
    /// A timeline over `clock` that never reads earlier than `floor` (the
    /// latest time the store's database holds: [`latest_used`]) while the
    /// clock is within [`MAX_STAND`] of it.
    pub(crate) fn new(clock: Clock, floor: Option<DateTime<Utc>>) -> Timeline {
        Timeline {
            clock,
            used_ms: AtomicI64::new(floor.map_or(i64::MIN, |t| t.timestamp_millis())),
            hub_ms: AtomicI64::new(i64::MIN),
            in_flight: Mutex::new(BTreeMap::new()),
        }
    }

    /// Never reads earlier than `floor` from now on (within [`MAX_STAND`],
    /// as at start): a recovery brought back documents the old PC wrote at
    /// a later time than this PC's clock says.
    pub(crate) fn raise(&self, floor: DateTime<Utc>) {
        self.used_ms
            .fetch_max(floor.timestamp_millis(), Ordering::AcqRel);
    }

    /// How many stamps are in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.stamps().values().sum()
    }

    fn stamps(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, usize>> {
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Timeline::now`] for a fact to be written: held (in flight) until
    /// the returned stamp is dropped, after its write has ended.
    pub(crate) fn stamp(self: &Arc<Self>) -> Stamp {
        // taken and registered under one lock: `committed_until` sees a
        // stamp handed out before it, or the stamp is no earlier than
        // its own reading of the time
        let mut f = self.stamps();
        let at = self.now();
        *f.entry(at.timestamp_millis()).or_default() += 1;
        drop(f);
        Stamp {
            at,
            timeline: self.clone(),
        }
    }

    /// The latest time up to which every fact stamped has committed (or
    /// failed): a millisecond before the oldest stamp in flight, or before
    /// now. What an index reports up to (`Index::sent_at`), read before
    /// its snapshot: a fact stamped later is stamped after this (the time
    /// never goes back, short of a clock found more than [`MAX_STAND`]
    /// behind, which was wrong and is taken again), and one stamped
    /// earlier committed before.
    pub(crate) fn committed_until(&self) -> DateTime<Utc> {
        let f = self.stamps();
        let now = self.now();
        let oldest = f
            .keys()
            .next()
            .and_then(|ms| DateTime::from_timestamp_millis(*ms));
        drop(f);
        oldest.map_or(now, |o| o.min(now)) - TimeDelta::milliseconds(1)
    }

    /// The current time, to the millisecond (what is stored is what is
    /// returned, so a receipt reads the same at creation and later): the
    /// clock, raised to the hub's latest time seen and to the latest time
    /// handed out, each only while it is at most [`MAX_STAND`] ahead.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let t = (self.clock)();
        let t = t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t);
        let clock = t.timestamp_millis();
        let stand = MAX_STAND.num_milliseconds();
        let hub = self.hub_ms.load(Ordering::Acquire);
        let base = match hub > clock && hub.saturating_sub(clock) <= stand {
            true => hub,
            false => clock,
        };
        let used = self.used_ms.fetch_max(base, Ordering::AcqRel);
        let at = match used > base {
            true if used.saturating_sub(clock) > stand => {
                tracing::warn!(
                    behind_ms = used.saturating_sub(clock),
                    "the store's clock is far behind the time it last used, which was wrong: the clock is taken again"
                );
                self.used_ms.store(base, Ordering::Release);
                base
            }
            true => used,
            false => base,
        };
        DateTime::from_timestamp_millis(at).unwrap_or(t)
    }

    /// The clock as it reads, without the floors: how long a fact has
    /// waited is read from it (a standing time would read it shorter).
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// A time known to have passed (the hub's, from its index): the
    /// store's time is no earlier from now on, while its clock is within
    /// [`MAX_STAND`] of it. A store whose clock is a little behind the
    /// chain's then judges the hub's deadlines by the hub's time at least.
    pub(crate) fn observe(&self, at: DateTime<Utc>) {
        let behind = at - (self.clock)();
        if behind > MAX_STAND {
            tracing::warn!(
                behind_minutes = behind.num_minutes(),
                "本机时钟比总部慢太多，请校准电脑时间 (this PC's clock is far behind the hub's; set it right)"
            );
        }
        self.hub_ms
            .fetch_max(at.timestamp_millis(), Ordering::AcqRel);
    }
}

/// Where a completed recovery records the latest time the tables it
/// rebuilt hold ([`latest_rebuilt`]), in `meta`.
pub(crate) const RECOVERED_UNTIL: &str = "recovered_until";

/// The latest time the store has used, as its database holds it: its
/// newest idempotency record (every use case that writes for a caller
/// leaves one), its newest stock movement and outbox row, the latest time
/// a recovery rebuilt ([`RECOVERED_UNTIL`]), and the start of the latest
/// business day (at `offset`) it has written a document of
/// (`store/<store>/{ledger,stock,fulfilment}/<day>`): facts the hub's
/// messages move (a reservation, say) stamp no row of the first three, but
/// their day's documents stand. Each is one row read by its table's key.
/// So a restarted store never writes its documents of a day before one it
/// has written (the hub keeps a store's level from its latest day), nor
/// stamps a fact before one it holds.
pub(crate) fn latest_used(
    c: &Connection,
    store: &str,
    offset: FixedOffset,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let mut latest: Option<DateTime<Utc>> = None;
    for sql in [
        "SELECT created_at FROM idempotency ORDER BY rowid DESC LIMIT 1",
        "SELECT at FROM movements ORDER BY seq DESC LIMIT 1",
        "SELECT value FROM meta WHERE key = 'recovered_until'",
    ] {
        let at: Option<String> = c.query_row(sql, [], |r| r.get(0)).optional()?;
        latest = latest.max(at.as_deref().map(super::parse_ts));
    }
    let at_ms: Option<i64> = c
        .query_row(
            "SELECT at_ms FROM doc_outbox ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(t) = at_ms.and_then(DateTime::from_timestamp_millis) {
        latest = latest.max(Some(t));
    }
    for kind in ["ledger", "stock", "fulfilment"] {
        // the kind's ids sort by day: the last is its latest day's
        let (from, to) = (
            format!("store/{store}/{kind}/"),
            format!("store/{store}/{kind}0"),
        );
        let id: Option<String> = c
            .prepare_cached(
                "SELECT doc_id FROM docs WHERE doc_id >= ?1 AND doc_id < ?2 ORDER BY doc_id DESC LIMIT 1",
            )?
            .query_row([from, to], |r| r.get(0))
            .optional()?;
        let day = id.and_then(|id| DocId::parse(&id).ok()?.day());
        let start = day
            .and_then(|d| d.and_hms_opt(0, 0, 0)?.and_local_timezone(offset).single())
            .map(|t| t.with_timezone(&Utc));
        latest = latest.max(start);
    }
    Ok(latest)
}

/// The latest time the tables a recovery rebuilt hold: the facts of the
/// recovered ledgers, each stamped by the old PC. Rows are rebuilt in the
/// documents' order, not in time's, so the newest row of a table is not
/// its latest time (`linli-sim` seed 30366 at 5 stores × 1,000 steps: a
/// replaced PC's time stood 5 s before a sale the old PC had made, and the
/// refund of that sale was stamped before the sale's coupon was taken).
/// A scan of each table: a recovered database holds a few days.
pub(crate) fn latest_rebuilt(c: &Connection) -> Result<Option<String>, StoreError> {
    Ok(c.query_row(
        "SELECT max(t) FROM (
             SELECT max(created_at) AS t FROM sales
             UNION ALL SELECT max(created_at) FROM refunds
             UNION ALL SELECT max(at) FROM movements
             UNION ALL SELECT max(at) FROM coupon_redemptions
             UNION ALL SELECT max(voided_at) FROM coupon_redemptions
             UNION ALL SELECT max(updated_at) FROM fulfilment
             UNION ALL SELECT max(at) FROM group_buy_commitments
             UNION ALL SELECT max(cancelled_at) FROM group_buy_commitments
             UNION ALL SELECT max(created_at) FROM group_buy_refunds)",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// A clock set back leaves the store's time standing at the latest it
    /// handed out, until the clock passes it again.
    #[test]
    fn a_clock_set_back_does_not_take_the_store_back() {
        let clock = Arc::new(AtomicI64::new(
            at("2026-12-04T10:00:00.5Z").timestamp_millis(),
        ));
        let c = clock.clone();
        let t = Timeline::new(
            Arc::new(move || DateTime::from_timestamp_millis(c.load(Ordering::Relaxed)).unwrap()),
            None,
        );
        assert_eq!(t.now(), at("2026-12-04T10:00:00.5Z"));
        clock.store(
            at("2026-12-04T09:55:00Z").timestamp_millis(),
            Ordering::Relaxed,
        );
        assert_eq!(t.now(), at("2026-12-04T10:00:00.5Z"));
        clock.store(
            at("2026-12-04T10:00:01Z").timestamp_millis(),
            Ordering::Relaxed,
        );
        assert_eq!(t.now(), at("2026-12-04T10:00:01Z"));
        // the hub's time, seen in its index, is a floor too
        t.observe(at("2026-12-04T10:07:00Z"));
        assert_eq!(t.now(), at("2026-12-04T10:07:00Z"));
    }

    /// A stamp in flight holds what an index reports up to (a millisecond
    /// before it) until it is dropped, however far the clock moves.
    #[test]
    fn a_stamp_in_flight_holds_the_time_reported_up_to() {
        let clock = Arc::new(AtomicI64::new(
            at("2026-12-04T10:00:00Z").timestamp_millis(),
        ));
        let c = clock.clone();
        let t = Arc::new(Timeline::new(
            Arc::new(move || DateTime::from_timestamp_millis(c.load(Ordering::Relaxed)).unwrap()),
            None,
        ));
        let ms = TimeDelta::milliseconds(1);
        assert_eq!(t.committed_until(), at("2026-12-04T10:00:00Z") - ms);
        let first = t.stamp();
        let second = t.stamp();
        assert_eq!(second.at(), first.at());
        clock.fetch_add(5_000, Ordering::Relaxed);
        let third = t.stamp();
        assert_eq!(third.at(), at("2026-12-04T10:00:05Z"));
        assert_eq!(t.in_flight(), 3);
        assert_eq!(t.committed_until(), at("2026-12-04T10:00:00Z") - ms);
        // both stamps of the same millisecond hold it
        drop(first);
        assert_eq!(t.committed_until(), at("2026-12-04T10:00:00Z") - ms);
        drop(second);
        assert_eq!(t.committed_until(), at("2026-12-04T10:00:05Z") - ms);
        drop(third);
        assert_eq!(t.in_flight(), 0);
        clock.fetch_add(1_000, Ordering::Relaxed);
        assert_eq!(t.committed_until(), at("2026-12-04T10:00:06Z") - ms);
    }

    /// A clock that ran far ahead and was put right is taken again: the
    /// store does not stamp its sales with next week's date until then.
    #[test]
    fn a_clock_put_right_after_running_far_ahead_is_taken_again() {
        let clock = at("2026-12-04T10:00:00Z");
        let t = Timeline::new(Arc::new(move || clock), Some(at("2026-12-11T10:00:00Z")));
        assert_eq!(t.now(), clock);
        let t = Timeline::new(Arc::new(move || clock), Some(clock + MAX_STAND));
        assert_eq!(t.now(), clock + MAX_STAND);
        // the hub's time is a floor within the same reach only: a clock
        // days behind the hub's is wrong, and is taken as it reads
        t.observe(clock + MAX_STAND + TimeDelta::minutes(1));
        assert_eq!(t.now(), clock + MAX_STAND);
        t.observe(at("2026-12-06T10:00:00Z"));
        assert_eq!(t.now(), clock + MAX_STAND);
        let t = Timeline::new(Arc::new(move || clock), None);
        t.observe(at("2026-12-06T10:00:00Z"));
        assert_eq!(t.now(), clock);
    }

    /// After a restart the floor is the latest time the database holds.
    #[test]
    fn the_floor_after_a_restart_is_the_latest_time_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("s.db")).unwrap();
        crate::store::schema::migrate(&mut c).unwrap();
        let (store, cst) = ("S001", FixedOffset::east_opt(8 * 3600).unwrap());
        let latest = |c: &Connection| latest_used(c, store, cst).unwrap();
        assert_eq!(latest(&c), None);
        c.execute(
            "INSERT INTO idempotency(key, scope, request_hash, status, response, created_at)
             VALUES ('k', 'sale', 'h', 201, '{}', '2026-12-04T10:00:00.000Z')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO doc_outbox(day, kind, body, at_ms) VALUES ('2026-12-04', 'ledger', '{}', ?1)",
            [at("2026-12-04T10:00:02Z").timestamp_millis()],
        )
        .unwrap();
        assert_eq!(latest(&c), Some(at("2026-12-04T10:00:02Z")));
        c.execute("DELETE FROM doc_outbox", []).unwrap();
        assert_eq!(latest(&c), Some(at("2026-12-04T10:00:00Z")));
        // a document of the next business day (from 16:00 UTC in
        // UTC+8): its day began, though no row the store stamped says so
        c.execute(
            "INSERT INTO docs(doc_id, heads) VALUES ('store/S001/stock/2026-12-05/p1', x'')",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO docs(doc_id, heads) VALUES ('store/S002/stock/2026-12-09', x'')",
            [],
        )
        .unwrap();
        assert_eq!(latest(&c), Some(at("2026-12-04T16:00:00Z")));
        c.execute("DELETE FROM docs", []).unwrap();
        // a recovery rebuilt its tables in the documents' order: the
        // newest movement row is not the latest time they hold (no
        // product rows here: the times are what this reads)
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for (id, at) in [
            ("m2", "2026-12-04T10:00:09.000Z"),
            ("m1", "2026-12-04T10:00:05.000Z"),
        ] {
            c.execute(
                "INSERT INTO movements(movement_id, sku, kind, delta, reason, ref_id, staff, at)
                 VALUES (?1, 'P00001', 'sale', -1, NULL, NULL, 'ana', ?2)",
                [id, at],
            )
            .unwrap();
        }
        assert_eq!(latest(&c), Some(at("2026-12-04T10:00:05Z")));
        let rebuilt = latest_rebuilt(&c).unwrap().unwrap();
        assert_eq!(rebuilt, "2026-12-04T10:00:09.000Z");
        c.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)",
            [RECOVERED_UNTIL, rebuilt.as_str()],
        )
        .unwrap();
        assert_eq!(latest(&c), Some(at("2026-12-04T10:00:09Z")));
        c.execute("DELETE FROM movements", []).unwrap();
        c.execute("DELETE FROM meta", []).unwrap();
        let floor = latest(&c);
        let t = Timeline::new(Arc::new(|| at("2026-12-04T09:00:00Z")), floor);
        assert_eq!(t.now(), at("2026-12-04T10:00:00Z"));
    }
}
