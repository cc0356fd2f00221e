//! automerge documents in SQLite: a snapshot plus incremental chunks per
//! document, compacted when the chunks outgrow the snapshot (the layout of
//! automerge-repo's storage), and the sync state per (document, peer).
//!
//! [`Docs`] is owned by the database's writer thread (behind a mutex that
//! only that thread locks in practice). Every mutation of a document and the
//! chunk that persists it happen inside the caller's write transaction, so
//! the query tables updated in the same closure can never disagree with the
//! documents after a crash.
//!
//! Two rules keep every replica convergent (DESIGN.md §3, sync rules):
//!
//! - A change leaves a replica only once it is durable there. The in-memory
//!   copies are a cache of the chunks, checked against the heads the current
//!   transaction holds every time a document is used: a write job that
//!   changed a document and then failed is rolled back to its savepoint, and
//!   the copy that still holds its change is dropped and reloaded instead of
//!   being offered to a peer. Documents changed in the open transaction are
//!   not offered until it commits ([`Docs::committed`], [`Docs::clear`]).
//! - A replica never reuses an actor's sequence number: every
//!   [`Docs::open`] (every process start) takes a fresh actor id under the
//!   owner's prefix, so a change lost in a crash can never come back as a
//!   different change under the same actor and sequence number.
//!
//! Deferred persistence (the hub, [`Docs::defer_persistence`]): a change
//! is committed in memory only, and each document changed in a writer
//! batch is persisted once, by [`Docs::persist_pending`] in the batch's
//! transaction just before its `COMMIT`, so one chunk carries the batch's
//! changes and the incremental save (whose cost follows the document's
//! history) runs once per batch, not once per write. The rules above hold:
//! each write job is bracketed ([`Docs::begin_job`], [`Docs::end_job`]) and
//! a job that fails or panics takes its changes out of memory with its
//! savepoint (the document goes back to what the batch held before it); a
//! batch that does not commit drops the cache whole ([`Docs::clear`]);
//! a pending document is never offered before the commit.
//!
//! Sync states: during a session the full `sync::State` lives in memory
//! (sent hashes, the peer's Bloom filter); only its encoded form (the shared
//! heads, ~34 bytes) is persisted, which is what makes a reconnect after
//! hours cost only the delta. Re-decoding the state mid-session would stall
//! the protocol (measured in tools/automerge-bench/RESULTS.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit, ChangeHash, PatchAction, PatchLog, Prop};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::sync::IndexEntry;
use rusqlite::{Connection, OptionalExtension, params};

mod compact;
mod stage;
pub use compact::{Compacted, Compaction};
pub use stage::{Checkout, Sealed};

/// The tables; include this in the schema migrations of whoever uses [`Docs`].
pub const MIGRATION: &str = r#"
CREATE TABLE docs (
    doc_id      TEXT PRIMARY KEY,
    heads       BLOB NOT NULL,
    changes     INTEGER NOT NULL DEFAULT 0,
    snapshot_bytes INTEGER NOT NULL DEFAULT 0,
    chunk_bytes INTEGER NOT NULL DEFAULT 0,
    updated_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE doc_chunks (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    kind   TEXT NOT NULL CHECK (kind IN ('snapshot', 'incremental')),
    bytes  BLOB NOT NULL
);
CREATE INDEX doc_chunks_by_doc ON doc_chunks(doc_id, seq);
CREATE TABLE sync_states (
    doc_id TEXT NOT NULL,
    peer   TEXT NOT NULL,
    state  BLOB NOT NULL,
    PRIMARY KEY (doc_id, peer)
);
CREATE TABLE doc_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"#;

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("bad sync message: {0}")]
    Message(String),
    /// The peer sent something it may not write; nothing was applied.
    #[error("refused: {0}")]
    Refused(String),
    /// The peer holds changes this replica made to its own document and no
    /// longer has: its database is older than what it once sent (restored
    /// from a backup, or copied from another PC). Nothing was applied; the
    /// replica must recover what the peer holds before it writes again.
    #[error("this replica lost changes of its own document the peer holds: {0}")]
    Behind(String),
    /// The replica changed mode (it entered recovery): the session must end
    /// and a new one start.
    #[error("the replica needs a new session: {0}")]
    Restart(String),
    /// A copy's changes were refused: the document was written after the
    /// copy was taken ([`Docs::persist_sealed`]). Nothing was written; the
    /// change is to be made again on a new copy.
    #[error("{0} was written after its copy was taken")]
    Outdated(DocId),
}

/// What receiving a sync message did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Received {
    /// Number of new changes applied.
    pub new_changes: usize,
    /// The entries the new changes touched: root section (`levels`,
    /// `rights`, `sales`, `orders`, ...) → keys in it. A reader projects
    /// only these instead of re-reading the whole document (a day's stock
    /// document holds every SKU: re-reading it costs ~20 ms, the diff
    /// ~0.3 ms, measured in release on 1,500 SKUs). With each key, the
    /// entry's new value if it was written as one string (a record's JSON,
    /// `linli_shared::docs::json`), as the message's patches carry it: a
    /// reader decodes it instead of looking the entry up in the document
    /// again (~17 % of the hub's CPU per store sale, `perf` on
    /// `hub_sale_bench`). `None`: deleted, or of the nested layout; read it
    /// from the document.
    pub touched: BTreeMap<String, BTreeMap<String, Option<String>>>,
}

impl Received {
    /// The keys of `section` the new changes touched.
    pub fn keys(&self, section: &str) -> BTreeSet<String> {
        self.touched
            .get(section)
            .map(|entries| entries.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The touched entries of `section`, each with its new value if the
    /// message carried it as one string.
    pub fn entries<'a>(
        &'a self,
        section: &str,
    ) -> impl Iterator<Item = (&'a String, Option<&'a String>)> + 'a {
        self.touched
            .get(section)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v.as_ref()))
    }
}

/// Root section → keys touched by `patches` (what applying a message did,
/// recorded by a [`PatchLog`] while it was applied: its cost follows the
/// size of the message, where `AutoCommit::diff` between two heads scans
/// every op of the document; that diff was ~85 % of the hub's CPU per sale
/// late in a busy day, measured with `perf` on `sync_bench` part 2b), each
/// with its new value where the entry is one string.
fn touched_entries(
    patches: Vec<automerge::Patch>,
) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let mut touched: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for p in patches {
        let (section, key, value) = match (p.path.first(), p.path.get(1), p.action) {
            // inside an entry (the nested layout): its value is an object
            (Some((_, Prop::Map(section))), Some((_, Prop::Map(key))), _) => {
                (section.clone(), key.clone(), None)
            }
            (Some((_, Prop::Map(section))), None, PatchAction::PutMap { key, value, .. }) => {
                let text = match value.0 {
                    automerge::Value::Scalar(v) => match v.as_ref() {
                        automerge::ScalarValue::Str(t) => Some(t.to_string()),
                        _ => None,
                    },
                    automerge::Value::Object(_) => None,
                };
                (section.clone(), key, text)
            }
            (Some((_, Prop::Map(section))), None, PatchAction::DeleteMap { key }) => {
                (section.clone(), key, None)
            }
            _ => continue,
        };
        // a later patch of the same entry wins
        touched.entry(section).or_default().insert(key, value);
    }
    touched
}

/// The document cache and sync states of one replica.
#[derive(Debug)]
pub struct Docs {
    owner: Owner,
    actor: ActorId,
    docs: HashMap<DocId, AutoCommit>,
    states: HashMap<(DocId, String), sync::State>,
    /// Documents with changes written in the current, not yet committed,
    /// transaction. They are not offered to peers until the commit: a
    /// change of this replica's own that a peer received but this replica
    /// lost in a crash would come back with the same actor and sequence
    /// number and different content, which automerge cannot reconcile; and
    /// a peer's change would be acknowledged before it is durable here.
    uncommitted: HashSet<DocId>,
    /// Recovery of a new database: this replica accepts its own documents
    /// back from the peer that holds them ([`Docs::set_recovering`]).
    recovering: bool,
    /// Deferred persistence ([`Docs::defer_persistence`]): [`Docs::change`]
    /// writes no chunk; the batch's changes of each document are written
    /// once, before the commit, by [`Docs::persist_pending`].
    deferred: bool,
    /// Documents changed in the open batch whose changes are not in a chunk
    /// yet (deferred persistence only).
    pending: HashMap<DocId, Pending>,
    /// The write job in progress (deferred persistence only): each document
    /// it changed, with what was pending of it when the job first changed it
    /// (`None`: nothing, the document was as stored).
    job: Option<HashMap<DocId, Option<Mark>>>,
    /// Memory could not be brought back to what the transaction holds (a
    /// job's changes could not be undone): the batch must not commit.
    poisoned: bool,
    /// Documents whose cache was last seen to match the database: the heads
    /// then, and [`crate::db::rollbacks`] then. While neither changed, the
    /// database cannot differ (only this cache writes its chunks, and only a
    /// rollback takes them back), so loading it again skips the query of
    /// its stored heads: five such queries per store sale were ~9 % of the
    /// hub's CPU per sale (`perf`, `hub_sale_bench`).
    verified: HashMap<DocId, (u64, Vec<ChangeHash>)>,
    /// Compactions off the writer (deferred persistence only).
    compact: compact::Compactions,
}

/// A pending document's state at some point of the batch.
#[derive(Debug, Clone)]
struct Mark {
    /// Its heads then.
    heads: Vec<ChangeHash>,
    /// Changes made since the stored heads.
    changes: i64,
}

/// A document with changes of the open batch that are in memory only.
#[derive(Debug)]
struct Pending {
    /// The heads the database holds (empty: not stored yet).
    stored: Vec<ChangeHash>,
    /// The heads in memory and the changes since `stored`.
    now: Mark,
}

fn heads_blob(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
}

/// Whether an encoded sync state's shared heads are exactly `heads` (the
/// peer has acknowledged the document whole).
fn shares_heads(state: &[u8], heads: &[[u8; 32]]) -> bool {
    let Ok(state) = sync::State::decode(state) else {
        return false;
    };
    let mut a = heads.to_vec();
    let mut b: Vec<[u8; 32]> = state.shared_heads.iter().map(|h| h.0).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

fn heads_from_blob(b: &[u8]) -> Vec<[u8; 32]> {
    b.chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect()
}

/// Chunks outgrowing the snapshot (and this) are compacted into a new one.
const COMPACT_AFTER: i64 = 64 * 1024;

/// Whether a document's chunks, at `chunk_bytes` beside a snapshot of
/// `snapshot_bytes`, are to be replaced by a new snapshot.
fn compaction_due(snapshot_bytes: i64, chunk_bytes: i64) -> bool {
    chunk_bytes > snapshot_bytes.max(COMPACT_AFTER)
}

/// Writes one chunk of a document's changes (`changes` records) and its
/// heads, in the caller's transaction. Returns the chunk's `seq` and
/// whether the chunks now outgrow the snapshot ([`compaction_due`]): the
/// caller then replaces them by a snapshot ([`write_snapshot`], or off the
/// writer, [`Compaction`]).
fn write_chunk(
    c: &Connection,
    id: &DocId,
    chunk: &[u8],
    heads: &[ChangeHash],
    changes: i64,
) -> Result<(i64, bool), DocError> {
    c.prepare_cached("INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'incremental', ?2)")?
        .execute(params![id.as_str(), chunk])?;
    let seq = c.last_insert_rowid();
    let (snapshot_bytes, chunk_bytes): (i64, i64) = c
        .prepare_cached(
            "INSERT INTO docs(doc_id, heads, changes, chunk_bytes, updated_seq)
             VALUES (?1, ?2, ?4, ?3, ?5)
             ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads, changes = changes + excluded.changes,
                 chunk_bytes = chunk_bytes + excluded.chunk_bytes, updated_seq = excluded.updated_seq
             RETURNING snapshot_bytes, chunk_bytes",
        )?
        .query_row(
            params![id.as_str(), heads_blob(heads), chunk.len() as i64, changes.max(1), seq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    Ok((seq, compaction_due(snapshot_bytes, chunk_bytes)))
}

/// Replaces a document's chunks by one snapshot of it whole, in the
/// caller's transaction.
fn write_snapshot(c: &Connection, id: &DocId, snapshot: &[u8]) -> Result<(), DocError> {
    c.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id.as_str()])?;
    c.execute(
        "INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'snapshot', ?2)",
        params![id.as_str(), snapshot],
    )?;
    c.execute(
        "UPDATE docs SET snapshot_bytes = ?2, chunk_bytes = 0 WHERE doc_id = ?1",
        params![id.as_str(), snapshot.len() as i64],
    )?;
    Ok(())
}

impl Docs {
    /// The documents of the replica `owner`, with a fresh actor id under the
    /// owner's prefix. A new actor per open (per process start) means a
    /// change that was offered but lost in a crash, or a restored backup,
    /// can never collide with a new change under the same actor and
    /// sequence number (automerge cannot reconcile that). The last actor is
    /// recorded in `doc_meta` for diagnosis only.
    pub fn open(c: &Connection, owner: Owner) -> Result<Docs, DocError> {
        let actor = owner.actor(crate::ids::random());
        c.execute(
            "INSERT OR REPLACE INTO doc_meta(key, value) VALUES ('actor', ?1)",
            [actor.to_bytes()],
        )?;
        Ok(Docs {
            owner,
            actor,
            docs: HashMap::new(),
            states: HashMap::new(),
            uncommitted: HashSet::new(),
            recovering: false,
            deferred: false,
            pending: HashMap::new(),
            job: None,
            poisoned: false,
            verified: HashMap::new(),
            compact: Default::default(),
        })
    }

    /// Turns on deferred persistence: a change of an owned document stays in
    /// memory until [`Docs::persist_pending`], which the writer calls once
    /// per batch before its commit (a [`crate::db::BeforeCommit`] hook), so
    /// a document changed by many writes of a batch costs one incremental
    /// save and one chunk instead of one per write. Every change must then
    /// happen inside a write job bracketed by [`Docs::begin_job`] and
    /// [`Docs::end_job`], so that a job that fails (and is rolled back to
    /// its savepoint) takes its changes out of memory as well. Only for a
    /// replica whose writer runs that hook.
    pub fn defer_persistence(&mut self) {
        self.deferred = true;
    }

    /// A write job begins (deferred persistence). A job that began and never
    /// ended panicked and was rolled back: its changes are undone first.
    pub fn begin_job(&mut self, c: &Connection) {
        if !self.deferred {
            return;
        }
        if let Some(job) = self.job.take() {
            self.undo(c, job);
        }
        self.job = Some(HashMap::new());
    }

    /// The write job ended; `ok: false` means it failed and its savepoint is
    /// rolled back, so its changes leave memory too: each document it
    /// changed goes back to what the batch held before the job.
    pub fn end_job(&mut self, c: &Connection, ok: bool) {
        if let Some(job) = self.job.take()
            && !ok
        {
            self.undo(c, job);
        }
    }

    fn undo(&mut self, c: &Connection, job: HashMap<DocId, Option<Mark>>) {
        for (id, before) in job {
            self.restore(c, &id, before);
        }
    }

    /// Brings a document back to an earlier state of the batch: `None`, as
    /// stored; `Some(mark)`, as stored plus the batch's changes up to
    /// `mark`. If that fails the batch is poisoned and will not commit.
    fn restore(&mut self, c: &Connection, id: &DocId, to: Option<Mark>) {
        if let Err(e) = self.try_restore(c, id, to) {
            tracing::error!(%id, error = %e, "could not undo a failed write's document changes; the batch fails");
            self.poisoned = true;
            self.pending.remove(id);
            self.forget(id);
        }
    }

    fn try_restore(
        &mut self,
        c: &Connection,
        id: &DocId,
        to: Option<Mark>,
    ) -> Result<(), DocError> {
        let Some(to) = to else {
            self.pending.remove(id);
            self.docs.remove(id);
            return Ok(());
        };
        let stored = self
            .pending
            .get(id)
            .map(|p| p.stored.clone())
            .ok_or_else(|| {
                DocError::Message(format!("{id} has no pending changes to go back to"))
            })?;
        // the changes of the batch up to the mark (earlier jobs', which
        // succeeded), over the stored document
        let earlier = self
            .docs
            .get_mut(id)
            .ok_or_else(|| DocError::Message(format!("{id} left the cache with pending changes")))?
            .fork_at(&to.heads)?
            .save_after(&stored);
        self.pending.remove(id);
        self.forget(id);
        if self.load(c, id)?.is_none() {
            self.docs
                .insert(id.clone(), AutoCommit::new().with_actor(self.actor.clone()));
        }
        let doc = self
            .docs
            .get_mut(id)
            .ok_or_else(|| DocError::Message("document vanished from cache".into()))?;
        // (loading changes leaves the save cursor at the stored heads: the
        // next incremental save holds exactly the batch's changes again)
        doc.load_incremental(&earlier)?;
        self.pending.insert(id.clone(), Pending { stored, now: to });
        Ok(())
    }

    /// Writes each pending document's changes of the batch as one chunk (in
    /// the batch's transaction, before its commit). An error fails the
    /// batch; the commit observer's [`Docs::batch_ended`] then drops the
    /// cache.
    pub fn persist_pending(&mut self, c: &Connection) -> Result<(), DocError> {
        if let Some(job) = self.job.take() {
            // the last job panicked: rolled back, and so are its changes
            self.undo(c, job);
        }
        if self.poisoned {
            return Err(DocError::Message(
                "a failed write's document changes could not be undone".into(),
            ));
        }
        let pending = std::mem::take(&mut self.pending);
        for (id, p) in pending {
            if !self.docs.contains_key(&id) {
                return Err(DocError::Message(format!(
                    "{id} left the cache with pending changes"
                )));
            }
            self.persist(c, &id, p.now.changes)?;
        }
        Ok(())
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Drops a document from the cache (it reloads from its chunks). A
    /// document with pending changes cannot reload them: the batch fails.
    pub fn evict(&mut self, id: &DocId) {
        if self.pending.remove(id).is_some() {
            self.poisoned = true;
        }
        self.docs.remove(id);
        self.verified.remove(id);
    }

    /// Drops the cached documents `filter` selects that hold nothing
    /// unpersisted or uncommitted (each reloads from its chunks when next
    /// used); returns how many. What a replica calls to bound its memory,
    /// e.g. the hub when a store's session ends.
    pub fn evict_idle(&mut self, filter: impl Fn(&DocId) -> bool) -> usize {
        let before = self.docs.len();
        let (pending, uncommitted) = (&self.pending, &self.uncommitted);
        self.docs
            .retain(|id, _| !filter(id) || pending.contains_key(id) || uncommitted.contains(id));
        let docs = &self.docs;
        self.verified.retain(|id, _| docs.contains_key(id));
        before - self.docs.len()
    }

    /// Whether `id` is held in memory.
    pub fn is_cached(&self, id: &DocId) -> bool {
        self.docs.contains_key(id)
    }

    /// Drops a document and its in-session sync states: memory held what
    /// the transaction does not (a rolled-back write). Both reload from the
    /// database, and the sync with every peer restarts from the persisted
    /// shared heads.
    fn forget(&mut self, id: &DocId) {
        self.docs.remove(id);
        self.verified.remove(id);
        self.states.retain(|(d, _), _| d != id);
    }

    /// The writer's transaction committed: local changes may now be offered.
    pub fn committed(&mut self) {
        if !self.pending.is_empty() {
            // no before-commit hook persisted them: memory holds what the
            // database does not, and it must not be offered
            tracing::error!(
                docs = self.pending.len(),
                "a batch committed with document changes not persisted; dropping them"
            );
            for id in std::mem::take(&mut self.pending).into_keys() {
                self.forget(&id);
            }
        }
        self.job = None;
        self.poisoned = false;
        self.uncommitted.clear();
        self.copy_due();
    }

    /// What the writer's commit observer calls after every batch:
    /// [`Docs::committed`] or [`Docs::clear`].
    pub fn batch_ended(&mut self, committed: bool) {
        if committed {
            self.committed();
        } else {
            self.clear();
        }
    }

    /// Drops every cached document and in-session sync state: called when a
    /// commit failed, since memory may then hold what the disk does not.
    pub fn clear(&mut self) {
        self.compact.rolled_back();
        self.uncommitted.clear();
        self.pending.clear();
        self.job = None;
        self.poisoned = false;
        self.docs.clear();
        self.verified.clear();
        self.states.clear();
    }

    /// Forgets the in-session sync states with `peer` (a session ended or
    /// began); the persisted shared heads remain.
    pub fn end_session(&mut self, peer: &str) {
        self.states.retain(|(_, p), _| p != peer);
    }

    /// Whether the cached copy of `id` holds exactly what the current
    /// transaction holds (its heads are the persisted heads; a document
    /// that is not stored must have no changes).
    fn cache_is_current(&mut self, c: &Connection, id: &DocId) -> Result<bool, DocError> {
        if self.pending.contains_key(id) {
            // the batch's changes are in memory only, by design
            return Ok(true);
        }
        let Some(doc) = self.docs.get_mut(id) else {
            return Ok(true);
        };
        let heads = doc.get_heads();
        let generation = crate::db::rollbacks();
        if self
            .verified
            .get(id)
            .is_some_and(|(g, h)| *g == generation && *h == heads)
        {
            return Ok(true);
        }
        let stored: Option<Vec<u8>> = c
            .prepare_cached("SELECT heads FROM docs WHERE doc_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        let mut ours: Vec<[u8; 32]> = heads.iter().map(|h| h.0).collect();
        let mut disk = stored.map(|b| heads_from_blob(&b)).unwrap_or_default();
        ours.sort_unstable();
        disk.sort_unstable();
        let current = ours == disk;
        if current {
            self.verified.insert(id.clone(), (generation, heads));
        }
        Ok(current)
    }

    /// Turns recovery on or off. While on, changes to this replica's own
    /// documents are accepted from a peer (the hub holding what a lost
    /// database wrote), provided every change was made by one of this
    /// owner's actors; the in-memory sync states restart either way.
    pub fn set_recovering(&mut self, on: bool) {
        self.recovering = on;
        self.states.clear();
    }

    fn load(&mut self, c: &Connection, id: &DocId) -> Result<Option<&mut AutoCommit>, DocError> {
        if !self.cache_is_current(c, id)? {
            // a write that changed it was rolled back: its change must never
            // be offered, nor the next change built on it
            tracing::warn!(%id, "cached document differs from the database (a write was rolled back); reloading");
            self.forget(id);
        }
        if !self.docs.contains_key(id) {
            let mut stmt =
                // the snapshot first: one written off the writer comes after
                // chunks of changes made since its copy was taken
                c.prepare_cached(
                    "SELECT bytes FROM doc_chunks WHERE doc_id = ?1
                     ORDER BY kind <> 'snapshot', seq",
                )?;
            let chunks: Vec<Vec<u8>> = stmt
                .query_map([id.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            if chunks.is_empty() {
                return Ok(None);
            }
            let mut doc = AutoCommit::new().with_actor(self.actor.clone());
            for chunk in &chunks {
                doc.load_incremental(chunk)?;
            }
            // what is loaded is already stored: the next incremental save
            // must contain only new changes
            let _ = doc.save_incremental();
            self.docs.insert(id.clone(), doc);
        }
        Ok(self.docs.get_mut(id))
    }

    /// The document, created empty if this replica does not have it (a
    /// replica that does not own a document starts from nothing and
    /// receives the owner's changes).
    fn load_or_empty(&mut self, c: &Connection, id: &DocId) -> Result<&mut AutoCommit, DocError> {
        if self.load(c, id)?.is_none() {
            // a recovering replica rebuilds its own documents from what the
            // peer holds: it must not start one with a header of its own
            let doc = if id.owner() == self.owner && !self.recovering {
                new_doc(id, self.actor.clone())?
            } else {
                AutoCommit::new().with_actor(self.actor.clone())
            };
            self.docs.insert(id.clone(), doc);
        }
        self.docs
            .get_mut(id)
            .ok_or_else(|| DocError::Message("document vanished from cache".into()))
    }

    /// Whether this replica has the document.
    pub fn exists(&self, c: &Connection, id: &DocId) -> Result<bool, DocError> {
        if self.pending.contains_key(id) {
            return Ok(true);
        }
        Ok(
            c.prepare_cached("SELECT EXISTS(SELECT 1 FROM docs WHERE doc_id = ?1)")?
                .query_row([id.as_str()], |r| r.get(0))?,
        )
    }

    /// The parts this replica holds of the day's document `base` (see
    /// [`linli_shared::docs::part_to_write`]): part number → changes written
    /// to it, ordered by part.
    pub fn parts(&self, c: &Connection, base: &DocId) -> Result<Vec<(DocId, u64)>, DocError> {
        let base = base.base();
        // part 0 is `base`, the others `base/p<n>`: '/' sorts just before '0'
        let (from, to) = (format!("{base}/"), format!("{base}0"));
        let mut stmt = c.prepare_cached(
            "SELECT doc_id, changes FROM docs
             WHERE doc_id = ?1 OR (doc_id >= ?2 AND doc_id < ?3)",
        )?;
        let rows = stmt.query_map(params![base.as_str(), from, to], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, changes) = row?;
            if let Ok(id) = DocId::parse(&id)
                && id.base() == base
            {
                out.push((id, u64::try_from(changes).unwrap_or(0)));
            }
        }
        out.sort_by_key(|(id, _)| id.part_no());
        Ok(out)
    }

    /// The part of the day's document `base` to write next, parts taking
    /// `limit` changes each.
    pub fn part_to_write(
        &self,
        c: &Connection,
        base: &DocId,
        limit: u64,
    ) -> Result<DocId, DocError> {
        let parts: Vec<(u32, u64)> = self
            .parts(c, base)?
            .iter()
            .map(|(id, n)| (id.part_no(), *n))
            .collect();
        Ok(base.part(linli_shared::docs::part_to_write(
            base.kind(),
            &parts,
            limit,
        )))
    }

    /// Reads a document (without creating it).
    pub fn read<T>(
        &mut self,
        c: &Connection,
        id: &DocId,
        f: impl FnOnce(&AutoCommit) -> T,
    ) -> Result<Option<T>, DocError> {
        Ok(self.load(c, id)?.map(|d| f(d)))
    }

    /// Changes a document this replica owns and persists the change in the
    /// caller's transaction (with deferred persistence, before the batch
    /// commits). Returns whether anything changed.
    pub fn change(
        &mut self,
        c: &Connection,
        id: &DocId,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<bool, DocError> {
        self.change_weighing(c, id, 1, f)
    }

    /// [`Docs::change`] for a change that writes `entries` records at once
    /// (a batch of facts): it counts as that many towards the part's limit
    /// ([`Docs::part_to_write`]), so a part holds as many records whether
    /// they came one per change or many.
    pub fn change_weighing(
        &mut self,
        c: &Connection,
        id: &DocId,
        entries: usize,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<bool, DocError> {
        if id.owner() != self.owner {
            return Err(DocError::Refused(format!("this replica does not own {id}")));
        }
        let weight = i64::try_from(entries.max(1)).unwrap_or(i64::MAX);
        if self.deferred {
            return self.change_deferred(c, id, weight, f);
        }
        let result = (|| {
            let doc = self.load_or_empty(c, id)?;
            f(doc)?;
            doc.commit();
            Ok::<_, DocError>(())
        })();
        match result.and_then(|()| self.persist(c, id, weight)) {
            Ok(changed) => Ok(changed),
            Err(e) => {
                self.evict(id);
                Err(e)
            }
        }
    }

    /// [`Docs::change`] with deferred persistence: the change is committed
    /// in memory and the document marked pending; a failure takes it back
    /// to what the batch held before.
    fn change_deferred(
        &mut self,
        c: &Connection,
        id: &DocId,
        weight: i64,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<bool, DocError> {
        let before = self.pending.get(id).map(|p| p.now.clone());
        let Some(job) = self.job.as_mut() else {
            return Err(DocError::Message(format!(
                "{id} changed outside a write job with deferred persistence"
            )));
        };
        job.entry(id.clone()).or_insert_with(|| before.clone());
        let stored = match self.pending.get(id) {
            Some(p) => p.stored.clone(),
            None => self.stored_heads(c, id)?,
        };
        let result = (|| {
            let doc = self.load_or_empty(c, id)?;
            f(doc)?;
            Ok::<_, DocError>(doc.commit().map(|_| doc.get_heads()))
        })();
        match result {
            Ok(None) => Ok(false),
            Ok(Some(heads)) => {
                let changes = before.map_or(0, |m| m.changes) + weight;
                self.pending.insert(
                    id.clone(),
                    Pending {
                        stored,
                        now: Mark { heads, changes },
                    },
                );
                self.uncommitted.insert(id.clone());
                Ok(true)
            }
            Err(e) => {
                self.restore(c, id, before);
                Err(e)
            }
        }
    }

    /// The heads the transaction holds of a document (none if not stored).
    fn stored_heads(&self, c: &Connection, id: &DocId) -> Result<Vec<ChangeHash>, DocError> {
        let stored: Option<Vec<u8>> = c
            .prepare_cached("SELECT heads FROM docs WHERE doc_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        Ok(stored
            .map(|b| heads_from_blob(&b).into_iter().map(ChangeHash).collect())
            .unwrap_or_default())
    }

    /// Writes the document's unsaved changes (`changes` of them) as an
    /// incremental chunk, and compacts into a snapshot when the chunks
    /// outgrow it.
    fn persist(&mut self, c: &Connection, id: &DocId, changes: i64) -> Result<bool, DocError> {
        let Some(doc) = self.docs.get_mut(id) else {
            return Ok(false);
        };
        let chunk = doc.save_incremental();
        if chunk.is_empty() {
            return Ok(false);
        }
        let now = doc.get_heads();
        let (seq, due) = write_chunk(c, id, &chunk, &now, changes)?;
        match self.deferred {
            // saved whole off the writer once the batch commits
            true => self.compact.wrote(id, seq, due),
            false if due => write_snapshot(c, id, &doc.save())?,
            false => {}
        }
        // a peer's document too: a message generated on a read connection
        // meanwhile must neither acknowledge what is not durable here nor
        // load the document from the committed state, older than memory
        self.uncommitted.insert(id.clone());
        // the database now holds what memory does
        self.verified
            .insert(id.clone(), (crate::db::rollbacks(), now));
        Ok(true)
    }

    fn state(
        &mut self,
        c: &Connection,
        id: &DocId,
        peer: &str,
    ) -> Result<&mut sync::State, DocError> {
        let key = (id.clone(), peer.to_owned());
        if !self.states.contains_key(&key) {
            let stored: Option<Vec<u8>> = c
                .prepare_cached("SELECT state FROM sync_states WHERE doc_id = ?1 AND peer = ?2")?
                .query_row(params![id.as_str(), peer], |r| r.get(0))
                .optional()?;
            let mut state = stored
                .and_then(|b| sync::State::decode(&b).ok())
                .unwrap_or_default();
            // a replica never applies changes to a document the peer does not own
            let peer_owns = match id.owner() {
                Owner::Hub => peer == "hub",
                Owner::Store(s) => peer == s,
            };
            let recovering_own = self.recovering && id.owner() == self.owner;
            if !peer_owns && !recovering_own {
                state.set_read_only(true);
            }
            self.states.insert(key.clone(), state);
        }
        self.states
            .get_mut(&key)
            .ok_or_else(|| DocError::Message("sync state vanished".into()))
    }

    /// Persists the state's shared heads, if they changed: most messages
    /// (every one this replica generates) leave them as they were, and an
    /// unchanged row is not rewritten, so such a job commits nothing and
    /// costs no fsync (half of the hub's commits per store sale before).
    fn save_state(&mut self, c: &Connection, id: &DocId, peer: &str) -> Result<(), DocError> {
        let key = (id.clone(), peer.to_owned());
        if let Some(s) = self.states.get(&key) {
            let encoded = s.encode();
            let stored: Option<Vec<u8>> = c
                .prepare_cached("SELECT state FROM sync_states WHERE doc_id = ?1 AND peer = ?2")?
                .query_row(params![id.as_str(), peer], |r| r.get(0))
                .optional()?;
            if stored.as_deref() != Some(encoded.as_slice()) {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO sync_states(doc_id, peer, state) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id.as_str(), peer, encoded])?;
            }
        }
        Ok(())
    }

    /// The next sync message for `peer` about `id`, if any; persists the
    /// sync state's shared heads should generating have changed them.
    pub fn generate(
        &mut self,
        c: &Connection,
        id: &DocId,
        peer: &str,
    ) -> Result<Option<Vec<u8>>, DocError> {
        let msg = self.generate_unsaved(c, id, peer)?;
        self.save_state(c, id, peer)?;
        Ok(msg)
    }

    /// [`Docs::generate`] without writing, so `c` may be a read-only
    /// connection: generating a message records what was sent and what the
    /// peer is thought to have (kept in memory for the session) but leaves
    /// the state's shared heads, the only part of it persisted, as they
    /// were; only a received message moves them. Offers nothing of a batch
    /// not yet committed, as [`Docs::generate`] does.
    pub fn generate_unsaved(
        &mut self,
        c: &Connection,
        id: &DocId,
        peer: &str,
    ) -> Result<Option<Vec<u8>>, DocError> {
        if self.uncommitted.contains(id) {
            // offered after the commit (the writer's notification follows it)
            return Ok(None);
        }
        if id.owner() == self.owner && !self.recovering && !self.exists(c, id)? {
            // nothing durable to offer: a document this replica owns but
            // never wrote must not go out as a fresh, unsaved header (a
            // recovering replica sends an empty document's request instead)
            return Ok(None);
        }
        self.load_or_empty(c, id)?;
        let mut state = std::mem::take(self.state(c, id, peer)?);
        let msg = self
            .docs
            .get_mut(id)
            .and_then(|doc| doc.sync().generate_sync_message(&mut state));
        self.states.insert((id.clone(), peer.to_owned()), state);
        Ok(msg.map(|m| m.encode()))
    }

    /// Applies a sync message from `peer`, who owns documents of
    /// `peer_owner`. Changes are accepted only into documents the peer owns
    /// and only if every new change's actor belongs to that owner; anything
    /// else is refused whole and nothing of it stays applied.
    pub fn receive(
        &mut self,
        c: &Connection,
        id: &DocId,
        peer: &str,
        peer_owner: &Owner,
        bytes: &[u8],
    ) -> Result<Received, DocError> {
        let msg = sync::Message::decode(bytes).map_err(|e| DocError::Message(e.to_string()))?;
        let owner = id.owner();
        let recovering_own = self.recovering && owner == self.owner;
        if owner == self.owner && !recovering_own && matches!(self.owner, Owner::Store(_)) {
            // a store's own document: the hub's copy holds only changes the
            // store made and sent (the hub refuses any other actor's), so a
            // head of it the store does not have is a change the store lost.
            // (Not the other way round: a store is not trusted, and a head
            // it claims in a hub document may be a forgery.)
            let doc = self.load_or_empty(c, id)?;
            if let Some(h) = msg
                .heads
                .iter()
                .find(|h| doc.get_change_by_hash(h).is_none())
            {
                return Err(DocError::Behind(format!(
                    "{peer} holds change {h} of {id}, made here, that this database does not have"
                )));
            }
        }
        if &owner != peer_owner && !msg.changes.is_empty() && !recovering_own {
            return Err(DocError::Refused(format!(
                "{id} belongs to {owner:?}; changes to it from {peer} are not accepted"
            )));
        }
        let pending = self.pending.contains_key(id);
        if pending && !msg.changes.is_empty() {
            // (only a recovering replica takes changes into its own
            // documents, and such a replica does not defer)
            return Err(DocError::Refused(format!(
                "{id} has changes of this batch not yet persisted; changes to it from {peer} are not accepted now"
            )));
        }
        self.load_or_empty(c, id)?;
        let mut state = std::mem::take(self.state(c, id, peer)?);
        let outcome = (|| {
            let doc = self
                .docs
                .get_mut(id)
                .ok_or_else(|| DocError::Message("document vanished from cache".into()))?;
            let before = doc.get_heads();
            let mut log = PatchLog::active();
            doc.sync()
                .receive_sync_message_log_patches(&mut state, msg, &mut log)?;
            // the new changes' metadata only: rebuilding them whole (ops
            // and all) to read their actors was ~8 % of the hub's CPU per
            // store sale (`perf`, `hub_sale_bench`)
            let new = doc.get_changes_meta(&before);
            if let Some(bad) = new.iter().find(|ch| !owner.owns_actor(&ch.actor)) {
                return Err(DocError::Refused(format!(
                    "a change to {id} was made by actor {} which is not {owner:?}",
                    bad.actor
                )));
            }
            let n = new.len();
            let touched = if n > 0 {
                touched_entries(doc.make_patches(&mut log))
            } else {
                BTreeMap::new()
            };
            Ok(Received {
                new_changes: n,
                touched,
            })
        })();
        match outcome {
            Ok(r) => {
                self.states.insert((id.clone(), peer.to_owned()), state);
                // a pending document got no change (refused above): its
                // batch's changes are persisted before the commit, not here,
                // where a failure of this job would roll their chunk back
                let persisted = if pending {
                    Ok(false)
                } else {
                    self.persist(c, id, 1)
                };
                if let Err(e) = persisted.and_then(|_| self.save_state(c, id, peer)) {
                    if pending {
                        self.states.retain(|(d, _), _| d != id);
                    } else {
                        self.forget(id);
                    }
                    return Err(e);
                }
                Ok(r)
            }
            Err(e) => {
                // nothing of the message stays: reload the document from disk
                // (a pending one took no change) and restart this document's
                // sync with the peer
                if !pending {
                    self.evict(id);
                }
                self.states.remove(&(id.clone(), peer.to_owned()));
                Err(e)
            }
        }
    }

    /// Whether this replica holds every change named by `heads` of `id`
    /// (and so everything before them): a peer's index entry is caught up.
    pub fn holds_all(
        &mut self,
        c: &Connection,
        id: &DocId,
        heads: &[[u8; 32]],
    ) -> Result<bool, DocError> {
        if heads.is_empty() {
            return Ok(true);
        }
        let Some(doc) = self.load(c, id)? else {
            return Ok(false);
        };
        Ok(heads
            .iter()
            .all(|h| doc.get_change_by_hash(&automerge::ChangeHash(*h)).is_some()))
    }

    /// The documents this replica holds for which `filter` holds, with their
    /// heads. Reads the whole table; a session's index is
    /// [`Docs::scope_index`], which reads only the store's scope.
    pub fn index(
        &self,
        c: &Connection,
        filter: impl Fn(&DocId) -> bool,
    ) -> Result<Vec<IndexEntry>, DocError> {
        let mut stmt = c.prepare_cached("SELECT doc_id, heads FROM docs ORDER BY doc_id")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, heads) = row?;
            let Ok(doc) = DocId::parse(&id) else { continue };
            if filter(&doc) {
                let heads = heads_from_blob(&heads);
                out.push((IndexEntry { doc, heads }, false));
            }
        }
        self.overlay_pending(&mut out, filter);
        Ok(out.into_iter().map(|(e, _)| e).collect())
    }

    /// The index of `store`'s scope ([`DocId::in_scope_of`]): every
    /// document in it with the heads the transaction holds and whether
    /// `peer` has acknowledged them whole ([`Docs::acknowledged`]), in id
    /// order. Read by the scope's key ranges ([`DocId::scope_ranges`]) with
    /// the peer's sync state joined in: it costs the store's documents, not
    /// every store's (the hub holds the whole chain's), and one statement
    /// per range rather than two per document.
    pub fn scope_index(
        &self,
        c: &Connection,
        store: &str,
        peer: &str,
    ) -> Result<Vec<(IndexEntry, bool)>, DocError> {
        let mut stmt = c.prepare_cached(
            "SELECT d.doc_id, d.heads, s.state FROM docs d
             LEFT JOIN sync_states s ON s.doc_id = d.doc_id AND s.peer = ?3
             WHERE d.doc_id >= ?1 AND d.doc_id < ?2 ORDER BY d.doc_id",
        )?;
        let mut out = Vec::new();
        for (from, to) in DocId::scope_ranges(store) {
            let rows = stmt.query_map(params![from, to, peer], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })?;
            for row in rows {
                let (id, heads, state) = row?;
                // the ranges hold exactly the scope (`DocId::scope_ranges`)
                let Ok(doc) = DocId::parse(&id) else { continue };
                let heads = heads_from_blob(&heads);
                let acked = !self.pending.contains_key(&doc)
                    && state.is_some_and(|s| shares_heads(&s, &heads));
                out.push((IndexEntry { doc, heads }, acked));
            }
        }
        self.overlay_pending(&mut out, |d| d.in_scope_of(store));
        Ok(out)
    }

    /// Documents changed in this batch carry their heads in memory (the
    /// index reaches the peer only after the batch committed), and are not
    /// acknowledged: their changes were never offered.
    fn overlay_pending(&self, out: &mut Vec<(IndexEntry, bool)>, filter: impl Fn(&DocId) -> bool) {
        if self.pending.is_empty() {
            return;
        }
        let blob = |m: &Mark| m.heads.iter().map(|h| h.0).collect::<Vec<_>>();
        for (e, acked) in out.iter_mut() {
            if let Some(p) = self.pending.get(&e.doc) {
                e.heads = blob(&p.now);
                *acked = false;
            }
        }
        for (id, p) in &self.pending {
            if filter(id) && !out.iter().any(|(e, _)| &e.doc == id) {
                let entry = IndexEntry {
                    doc: id.clone(),
                    heads: blob(&p.now),
                };
                out.push((entry, false));
            }
        }
        out.sort_by(|(a, _), (b, _)| a.doc.cmp(&b.doc));
    }

    /// Whether the peer is known to have every change of the document (its
    /// persisted shared heads equal ours): such a document can leave the index.
    pub fn acknowledged(&self, c: &Connection, id: &DocId, peer: &str) -> Result<bool, DocError> {
        if self.pending.contains_key(id) {
            // changes of this batch were never offered
            return Ok(false);
        }
        let ours: Option<Vec<u8>> = c
            .prepare_cached("SELECT heads FROM docs WHERE doc_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        let theirs: Option<Vec<u8>> = c
            .prepare_cached("SELECT state FROM sync_states WHERE doc_id = ?1 AND peer = ?2")?
            .query_row(params![id.as_str(), peer], |r| r.get(0))
            .optional()?;
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            return Ok(false);
        };
        Ok(shares_heads(&theirs, &heads_from_blob(&ours)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT, ReadDoc};
    use linli_shared::docs::json::put_record;

    #[test]
    fn touched_entries_carry_the_new_value_of_entries_written_as_one_string() {
        let mut doc = AutoCommit::new();
        put_record(&mut doc, "sales", "S1", &"one").unwrap();
        put_record(&mut doc, "sales", "S2", &"two").unwrap();
        let sales = doc.get(ROOT, "sales").unwrap().unwrap().1;
        // an entry of the nested layout
        let nested = doc.put_object(&sales, "S3", ObjType::Map).unwrap();
        doc.put(&nested, "qty", 1).unwrap();
        doc.commit();
        let before = doc.get_heads();

        put_record(&mut doc, "sales", "S1", &"one, changed").unwrap();
        doc.delete(&sales, "S2").unwrap();
        doc.put(&nested, "qty", 2).unwrap();
        put_record(&mut doc, "sales", "S4", &"four").unwrap();
        doc.commit();
        put_record(&mut doc, "sales", "S4", &"four, later").unwrap();
        put_record(&mut doc, "levels", "P1", &[3, 0]).unwrap();
        doc.commit();
        let after = doc.get_heads();

        let received = Received {
            new_changes: 2,
            touched: touched_entries(doc.diff(&before, &after)),
        };
        let keys = |s: &[&str]| s.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(received.keys("sales"), keys(&["S1", "S2", "S3", "S4"]));
        assert_eq!(received.keys("levels"), keys(&["P1"]));
        let text = |v: &str| Some(serde_json::to_string(v).unwrap());
        assert_eq!(
            received.touched["sales"],
            BTreeMap::from([
                ("S1".to_owned(), text("one, changed")),
                ("S2".to_owned(), None),
                ("S3".to_owned(), None),
                ("S4".to_owned(), text("four, later")),
            ]),
            "a deleted entry and a nested one are read from the document"
        );
        assert_eq!(received.touched["levels"]["P1"].as_deref(), Some("[3,0]"));

        let entries: Vec<_> = received
            .entries("sales")
            .map(|(k, v)| (k.as_str(), v.is_some()))
            .collect();
        assert_eq!(
            entries,
            [("S1", true), ("S2", false), ("S3", false), ("S4", true)]
        );
        assert_eq!(received.entries("refunds").count(), 0);
    }
}
