//! One sync session as a state machine with no IO (DESIGN.md §4), in the
//! shape of quinn-proto's `Connection` and samod-core's hub: the driver
//! feeds it what happened (a frame arrived, the replica answered, a local
//! commit, time passed) with `now`, and takes back what to do
//! ([`Effect`]s: send a frame, ask the replica for its index, a message or
//! an apply). The same machine runs at the store and at the hub (the
//! protocol is symmetric); `linli_sync::session` drives it over a QUIC
//! stream and a deterministic simulation drives it over a virtual network.
//!
//! The rules it owns:
//! - each side sends its `Index` first; which documents to sync once both
//!   indexes are known is [`docs_to_sync`];
//! - a `Sync` frame outside the session's scope is refused unread, one in
//!   scope is applied by the replica, and whatever the replica says next
//!   about that document is sent back;
//! - local commits are gathered for [`PUSH_BATCH`] and then pushed once per
//!   document, so a burst of sales becomes one message per document;
//! - missed commit notifications are repaired by exchanging indexes again,
//!   and the index is sent again every [`REINDEX_EVERY`] anyway.
//!
//! Effects come out in the order they must be carried out, and the replica
//! calls they name are answered in that order: the driver finishes one
//! effect before taking the next.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::docs::DocId;

use super::{Frame, Index, IndexEntry, docs_to_sync};

/// How long local changes are gathered before they are pushed.
pub const PUSH_BATCH: Duration = Duration::from_millis(5);

/// How often a live session sends its index again. Besides repairing
/// anything a lost notification left unsynced, it is how a store that
/// stayed connected "reports" to the hub: the hub knows it holds
/// everything the store wrote before a moment once it has caught up with
/// an index the store sent after it (a group-buy's deadline).
pub const REINDEX_EVERY: Duration = Duration::from_secs(30);

/// Each wait for the next index is [`REINDEX_EVERY`] times a factor drawn
/// evenly from `[1 - REINDEX_SPREAD, 1 + REINDEX_SPREAD)`, from a sequence
/// seeded by the session's scope (so a run is reproducible). Without it,
/// stores that connected together (a hub's start, a reconnect storm) sent
/// their indexes together every 30 s for good: `fleet_bench` at 1,000
/// stores showed the hub's writer take ~1,000 index reads in 5 full
/// batches of 250–540 ms every 30 s, ~2 s during which every sale waited
/// (propagation p99 2.1–2.6 s; DECISIONS "Indexes spread over the period").
pub const REINDEX_SPREAD: f64 = 0.5;

/// An index read while the replica's facts had waited at least this long
/// to reach its documents (a store restarted with facts in its outbox,
/// which it writes once its first session has shown its database is not
/// behind) is sent again after this long instead of [`REINDEX_EVERY`]:
/// the hub takes a store's index as its report only for what was in its
/// documents ([`Index::facts_waiting`]), so the next index, once they
/// are, is the report a group-buy's decision waits for.
pub const FACTS_STUCK: Duration = Duration::from_secs(1);

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send this frame to the peer.
    Send(Frame),
    /// Ask the replica for its open documents of the scope, then call
    /// [`Session::index_read`].
    ReadIndex,
    /// Ask the replica for its next sync message about `doc`, then call
    /// [`Session::generated`].
    Generate(DocId),
    /// Give the peer's message to the replica, then call
    /// [`Session::applied`].
    Apply { doc: DocId, msg: Vec<u8> },
    /// The peer's index arrived: what it holds of each document as the
    /// session began (the hub learns from it when a store has reported).
    PeerIndex(Index),
    /// The peer refused what we sent about `doc` (for the log).
    PeerRefused { doc: DocId, reason: String },
    /// The peer sent a document outside the session's scope; a `Refused`
    /// frame follows (for the log).
    OutOfScope(DocId),
}

/// What the replica made of a peer's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied; `new_changes` of it were new here.
    Done { new_changes: usize },
    /// Refused whole (not the owner, a foreign actor, behind, undecodable):
    /// nothing of it was applied, and the peer is told why.
    Refused(String),
}

/// One session's state.
#[derive(Debug)]
pub struct Session {
    /// The store whose documents this session carries.
    scope: String,
    /// Our index as last read: `None` until the replica answered.
    ours: Option<Vec<IndexEntry>>,
    /// A peer index that arrived before ours was read.
    theirs: Option<Vec<IndexEntry>>,
    /// Whether a `ReadIndex` is in flight.
    reading: bool,
    /// Local commits waiting for the batching window to close.
    pending: BTreeSet<DocId>,
    /// When the batching window closes.
    flush_at: Option<Instant>,
    /// When the index is next sent again.
    reindex_at: Option<Instant>,
    /// The state of the sequence that spreads the waits for the index.
    spread: u64,
    effects: VecDeque<Effect>,
}

impl Session {
    /// A session over `scope`'s documents; it starts by reading our index.
    pub fn new(scope: impl Into<String>) -> Session {
        let scope = scope.into();
        // FNV-1a of the scope: a different, fixed sequence per store
        let spread = scope.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        }) | 1;
        let mut s = Session {
            scope,
            ours: None,
            theirs: None,
            reading: false,
            pending: BTreeSet::new(),
            flush_at: None,
            reindex_at: None,
            spread,
            effects: VecDeque::new(),
        };
        s.read_index();
        s
    }

    /// The store whose documents this session carries.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Whether `doc` belongs to this session's scope.
    pub fn in_scope(&self, doc: &DocId) -> bool {
        doc.in_scope_of(&self.scope)
    }

    /// The next thing to do, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Session::handle_timeout`] is due, if anything waits for time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.flush_at, self.reindex_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether pushes wait for the batching window (the periodic index
    /// aside): a simulation runs until no session has any.
    pub fn push_pending(&self) -> bool {
        self.flush_at.is_some() || self.reading || !self.effects.is_empty()
    }

    fn read_index(&mut self) {
        if !self.reading {
            self.reading = true;
            self.effects.push_back(Effect::ReadIndex);
        }
    }

    /// How long until the index is sent again: [`REINDEX_EVERY`] spread by
    /// [`REINDEX_SPREAD`] (xorshift64 over the scope's seed).
    fn next_reindex_wait(&mut self) -> Duration {
        let mut x = self.spread;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.spread = x;
        let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
        REINDEX_EVERY.mul_f64(1.0 - REINDEX_SPREAD + 2.0 * REINDEX_SPREAD * unit)
    }

    /// When the session next sends its index again, if it has sent one.
    pub fn reindex_at(&self) -> Option<Instant> {
        self.reindex_at
    }

    /// The replica's answer to [`Effect::ReadIndex`]: it is sent, and
    /// compared with the peer's if that is already here.
    pub fn index_read(&mut self, index: Index, now: Instant) {
        self.reading = false;
        let wait = if index.facts_waiting >= FACTS_STUCK {
            FACTS_STUCK
        } else {
            self.next_reindex_wait()
        };
        self.reindex_at = Some(now + wait);
        self.ours = Some(index.entries.clone());
        self.effects.push_back(Effect::Send(Frame::Index(index)));
        if let Some(theirs) = self.theirs.take() {
            self.compare(&theirs);
        }
    }

    fn compare(&mut self, theirs: &[IndexEntry]) {
        let Some(ours) = &self.ours else { return };
        let scope = &self.scope;
        for doc in docs_to_sync(ours, theirs, |d| d.in_scope_of(scope)) {
            self.effects.push_back(Effect::Generate(doc));
        }
    }

    /// A frame from the peer.
    pub fn handle_frame(&mut self, frame: Frame) {
        match frame {
            Frame::Index(theirs) => {
                let entries = theirs.entries.clone();
                self.effects.push_back(Effect::PeerIndex(theirs));
                if self.ours.is_some() {
                    self.compare(&entries);
                } else {
                    self.theirs = Some(entries);
                }
            }
            Frame::Sync { doc, msg } => {
                if self.in_scope(&doc) {
                    self.effects.push_back(Effect::Apply { doc, msg });
                } else {
                    self.effects.push_back(Effect::OutOfScope(doc.clone()));
                    self.effects.push_back(Effect::Send(Frame::Refused {
                        doc,
                        reason: "outside your scope".into(),
                    }));
                }
            }
            Frame::Refused { doc, reason } => {
                self.effects.push_back(Effect::PeerRefused { doc, reason });
            }
        }
    }

    /// The replica's answer to [`Effect::Apply`] for `doc`.
    pub fn applied(&mut self, doc: DocId, result: Applied) {
        match result {
            // whatever follows from it (our changes the peer lacks, or an
            // acknowledgement) goes back at once
            Applied::Done { .. } => self.effects.push_back(Effect::Generate(doc)),
            Applied::Refused(reason) => self
                .effects
                .push_back(Effect::Send(Frame::Refused { doc, reason })),
        }
    }

    /// The replica's answer to [`Effect::Generate`] for `doc`.
    pub fn generated(&mut self, doc: DocId, msg: Option<Vec<u8>>) {
        if let Some(msg) = msg {
            self.effects
                .push_back(Effect::Send(Frame::Sync { doc, msg }));
        }
    }

    /// A document changed here; it is pushed when the batching window that
    /// this commit opens (or joins) closes.
    pub fn local_commit(&mut self, doc: DocId, now: Instant) {
        if !self.in_scope(&doc) {
            return;
        }
        self.pending.insert(doc);
        if self.flush_at.is_none() {
            self.flush_at = Some(now + PUSH_BATCH);
        }
    }

    /// Commit notifications were missed: indexes are exchanged again, and
    /// the comparison finds what changed.
    pub fn local_lagged(&mut self) {
        self.read_index();
    }

    /// Time passed: a closed batching window pushes its documents.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.reindex_at.is_some_and(|t| t <= now) {
            self.reindex_at = None;
            self.read_index();
        }
        if self.flush_at.is_some_and(|t| t <= now) {
            self.flush_at = None;
            for doc in std::mem::take(&mut self.pending) {
                self.effects.push_back(Effect::Generate(doc));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::docs::DocId;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 3).unwrap()
    }

    fn ledger(store: &str) -> DocId {
        DocId::store_ledger(store, day())
    }

    fn entry(doc: DocId, head: u8) -> IndexEntry {
        IndexEntry {
            doc,
            heads: if head == 0 { vec![] } else { vec![[head; 32]] },
        }
    }

    fn drain(s: &mut Session) -> Vec<Effect> {
        std::iter::from_fn(|| s.poll_effect()).collect()
    }

    #[test]
    fn it_starts_by_reading_and_sending_its_index_then_syncs_what_differs() {
        let t = Instant::now();
        let mut s = Session::new("S001");
        assert_eq!(drain(&mut s), vec![Effect::ReadIndex]);
        // the peer's index may arrive before ours is read: it waits
        s.handle_frame(Frame::Index(Index::of(vec![entry(ledger("S001"), 2)])));
        assert_eq!(
            drain(&mut s),
            vec![Effect::PeerIndex(Index::of(vec![entry(ledger("S001"), 2)]))]
        );
        s.index_read(Index::of(vec![entry(ledger("S001"), 1)]), t);
        assert_eq!(
            drain(&mut s),
            vec![
                Effect::Send(Frame::Index(Index::of(vec![entry(ledger("S001"), 1)]))),
                Effect::Generate(ledger("S001")),
            ]
        );
        s.generated(ledger("S001"), Some(vec![7]));
        s.generated(ledger("S001"), None);
        assert_eq!(
            drain(&mut s),
            vec![Effect::Send(Frame::Sync {
                doc: ledger("S001"),
                msg: vec![7]
            })]
        );
        // nothing waits but the periodic index
        assert_eq!(s.poll_timeout(), s.reindex_at());
        assert!(within_spread(t, s.reindex_at().unwrap()));
        assert!(!s.push_pending());
        s.handle_timeout(t);
        assert_eq!(drain(&mut s), vec![]);
    }

    #[test]
    fn a_message_outside_the_scope_is_refused_unread() {
        let mut s = Session::new("S001");
        s.index_read(Index::of(vec![]), Instant::now());
        drain(&mut s);
        s.handle_frame(Frame::Sync {
            doc: ledger("S002"),
            msg: vec![1, 2],
        });
        assert_eq!(
            drain(&mut s),
            vec![
                Effect::OutOfScope(ledger("S002")),
                Effect::Send(Frame::Refused {
                    doc: ledger("S002"),
                    reason: "outside your scope".into()
                }),
            ]
        );
    }

    #[test]
    fn an_applied_message_is_answered_and_a_refused_one_is_named() {
        let mut s = Session::new("S001");
        s.index_read(Index::of(vec![]), Instant::now());
        drain(&mut s);
        s.handle_frame(Frame::Sync {
            doc: ledger("S001"),
            msg: vec![9],
        });
        assert_eq!(
            drain(&mut s),
            vec![Effect::Apply {
                doc: ledger("S001"),
                msg: vec![9]
            }]
        );
        s.applied(ledger("S001"), Applied::Done { new_changes: 3 });
        assert_eq!(drain(&mut s), vec![Effect::Generate(ledger("S001"))]);
        s.applied(ledger("S001"), Applied::Refused("not the owner".into()));
        assert_eq!(
            drain(&mut s),
            vec![Effect::Send(Frame::Refused {
                doc: ledger("S001"),
                reason: "not the owner".into()
            })]
        );
        s.handle_frame(Frame::Refused {
            doc: ledger("S001"),
            reason: "behind".into(),
        });
        assert_eq!(
            drain(&mut s),
            vec![Effect::PeerRefused {
                doc: ledger("S001"),
                reason: "behind".into()
            }]
        );
    }

    #[test]
    fn a_burst_of_local_commits_is_pushed_once_per_document_when_its_window_closes() {
        let t0 = Instant::now();
        let mut s = Session::new("S001");
        s.index_read(Index::of(vec![]), t0);
        drain(&mut s);
        let stock = DocId::store_stock("S001", day());
        s.local_commit(ledger("S001"), t0);
        s.local_commit(stock.clone(), t0 + Duration::from_millis(1));
        s.local_commit(ledger("S001"), t0 + Duration::from_millis(4));
        // another store's document is not this session's business
        s.local_commit(ledger("S002"), t0 + Duration::from_millis(4));
        assert_eq!(s.poll_timeout(), Some(t0 + PUSH_BATCH));
        s.handle_timeout(t0 + Duration::from_millis(4));
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(t0 + PUSH_BATCH);
        let mut pushed = drain(&mut s);
        pushed.sort_by_key(|e| format!("{e:?}"));
        let mut want = vec![Effect::Generate(ledger("S001")), Effect::Generate(stock)];
        want.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(pushed, want);
        // only the periodic index waits now
        assert_eq!(s.poll_timeout(), s.reindex_at());
        // the next commit opens a new window
        s.local_commit(ledger("S001"), t0 + Duration::from_millis(20));
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + Duration::from_millis(20) + PUSH_BATCH)
        );
    }

    /// An index read while facts were stuck outside the documents is sent
    /// again soon, and the period resumes once none wait; facts that wait
    /// only for the next drain (milliseconds) do not hurry it.
    #[test]
    fn an_index_with_stuck_facts_is_sent_again_soon() {
        let t0 = Instant::now();
        let mut s = Session::new("S001");
        assert_eq!(drain(&mut s), vec![Effect::ReadIndex]);
        let stuck = Index {
            entries: vec![entry(ledger("S001"), 1)],
            facts_waiting: FACTS_STUCK * 30,
            sent_at: None,
        };
        s.index_read(stuck.clone(), t0);
        assert_eq!(drain(&mut s), vec![Effect::Send(Frame::Index(stuck))]);
        assert_eq!(s.reindex_at(), Some(t0 + FACTS_STUCK));
        s.handle_timeout(t0 + FACTS_STUCK);
        assert_eq!(drain(&mut s), vec![Effect::ReadIndex]);
        let t1 = t0 + FACTS_STUCK;
        let moments = Index {
            entries: vec![entry(ledger("S001"), 2)],
            facts_waiting: Duration::from_millis(12),
            sent_at: None,
        };
        s.index_read(moments, t1);
        drain(&mut s);
        assert!(within_spread(t1, s.reindex_at().unwrap()));
    }

    /// Within the period spread by `REINDEX_SPREAD`.
    fn within_spread(from: Instant, at: Instant) -> bool {
        let lo = REINDEX_EVERY.mul_f64(1.0 - REINDEX_SPREAD);
        let hi = REINDEX_EVERY.mul_f64(1.0 + REINDEX_SPREAD);
        at >= from + lo && at < from + hi
    }

    #[test]
    fn a_live_session_sends_its_index_again_every_period() {
        let t0 = Instant::now();
        let mut s = Session::new("S001");
        s.index_read(Index::of(vec![]), t0);
        drain(&mut s);
        let at = s.reindex_at().unwrap();
        assert!(within_spread(t0, at));
        assert_eq!(s.poll_timeout(), Some(at));
        s.handle_timeout(at - Duration::from_millis(1));
        assert_eq!(drain(&mut s), vec![]);
        s.handle_timeout(at);
        assert_eq!(drain(&mut s), vec![Effect::ReadIndex]);
        assert!(s.push_pending());
        let t1 = at;
        s.index_read(Index::of(vec![entry(ledger("S001"), 3)]), t1);
        assert_eq!(
            drain(&mut s),
            vec![Effect::Send(Frame::Index(Index::of(vec![entry(
                ledger("S001"),
                3
            )])))]
        );
        assert!(!s.push_pending());
        let next = s.reindex_at().unwrap();
        assert!(within_spread(t1, next));
        assert_eq!(s.poll_timeout(), Some(next));
    }

    /// A thousand stores that connected at the same instant send their
    /// indexes spread over the period, not together (`fleet_bench`: ~2 s
    /// stalls of the hub's writer every 30 s); one store's waits are the
    /// same in every run.
    #[test]
    fn sessions_that_start_together_send_their_indexes_spread_out() {
        let t0 = Instant::now();
        let lo = REINDEX_EVERY.mul_f64(1.0 - REINDEX_SPREAD);
        let mut per_second = [0u32; 30];
        for i in 0..1000 {
            let mut s = Session::new(format!("S{i:04}"));
            s.index_read(Index::of(vec![]), t0);
            let at = s.reindex_at().unwrap();
            assert!(within_spread(t0, at));
            per_second[(at - t0 - lo).as_secs() as usize] += 1;
        }
        // ~33 a second; never a crowd
        assert!(
            per_second.iter().all(|n| (10..=60).contains(n)),
            "{per_second:?}"
        );
        let waits = |scope: &str| {
            let mut s = Session::new(scope);
            (0..3)
                .map(|_| {
                    s.index_read(Index::of(vec![]), t0);
                    s.reindex_at().unwrap() - t0
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(waits("S0001"), waits("S0001"));
        assert_ne!(waits("S0001"), waits("S0002"));
    }

    #[test]
    fn missed_notifications_send_the_index_again_once() {
        let mut s = Session::new("S001");
        s.index_read(Index::of(vec![]), Instant::now());
        drain(&mut s);
        s.local_lagged();
        s.local_lagged();
        assert_eq!(drain(&mut s), vec![Effect::ReadIndex]);
        s.index_read(Index::of(vec![entry(ledger("S001"), 4)]), Instant::now());
        assert_eq!(
            drain(&mut s),
            vec![Effect::Send(Frame::Index(Index::of(vec![entry(
                ledger("S001"),
                4
            )])))]
        );
        // the peer answers with its index; ours is known, so they compare
        s.handle_frame(Frame::Index(Index::of(vec![entry(ledger("S001"), 5)])));
        assert_eq!(
            drain(&mut s),
            vec![
                Effect::PeerIndex(Index::of(vec![entry(ledger("S001"), 5)])),
                Effect::Generate(ledger("S001"))
            ]
        );
    }
}
