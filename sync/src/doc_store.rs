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
    /// ~0.3 ms, measured in release on 1,500 SKUs).
    pub touched: BTreeMap<String, BTreeSet<String>>,
}

/// Root section → keys touched by `patches` (what applying a message did,
/// recorded by a [`PatchLog`] while it was applied: its cost follows the
/// size of the message, where `AutoCommit::diff` between two heads scans
/// every op of the document; that diff was ~85 % of the hub's CPU per sale
/// late in a busy day, measured with `perf` on `sync_bench` part 2b).
fn touched_keys(patches: Vec<automerge::Patch>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in patches {
        let key = match (p.path.first(), p.path.get(1), &p.action) {
            (Some((_, Prop::Map(section))), Some((_, Prop::Map(key))), _) => {
                Some((section.clone(), key.clone()))
            }
            (Some((_, Prop::Map(section))), None, PatchAction::PutMap { key, .. })
            | (Some((_, Prop::Map(section))), None, PatchAction::DeleteMap { key }) => {
                Some((section.clone(), key.clone()))
            }
            _ => None,
        };
        if let Some((section, key)) = key {
            out.entry(section).or_default().insert(key);
        }
    }
    out
}

/// The document cache and sync states of one replica.
#[derive(Debug)]
pub struct Docs {
    owner: Owner,
    actor: ActorId,
    docs: HashMap<DocId, AutoCommit>,
    states: HashMap<(DocId, String), sync::State>,
    /// Owned documents with local changes written in the current, not yet
    /// committed, transaction. They are not offered to peers until the
    /// commit: a change a peer received but this replica lost in a crash
    /// would come back with the same actor and sequence number and
    /// different content, which automerge cannot reconcile.
    uncommitted: HashSet<DocId>,
    /// Recovery of a new database: this replica accepts its own documents
    /// back from the peer that holds them ([`Docs::set_recovering`]).
    recovering: bool,
}

fn heads_blob(heads: &[ChangeHash]) -> Vec<u8> {
    heads.iter().flat_map(|h| h.0).collect()
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

impl Docs {
    /// The documents of the replica `owner`, with a fresh actor id under the
    /// owner's prefix. A new actor per open (per process start) means a
    /// change that was offered but lost in a crash, or a restored backup,
    /// can never collide with a new change under the same actor and
    /// sequence number (automerge cannot reconcile that). The last actor is
    /// recorded in `doc_meta` for diagnosis only.
    pub fn open(c: &Connection, owner: Owner) -> Result<Docs, DocError> {
        let actor = owner.actor(rand::random());
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
        })
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Drops a document from the cache (it reloads from its chunks).
    pub fn evict(&mut self, id: &DocId) {
        self.docs.remove(id);
    }

    /// Drops a document and its in-session sync states: memory held what
    /// the transaction does not (a rolled-back write). Both reload from the
    /// database, and the sync with every peer restarts from the persisted
    /// shared heads.
    fn forget(&mut self, id: &DocId) {
        self.docs.remove(id);
        self.states.retain(|(d, _), _| d != id);
    }

    /// The writer's transaction committed: local changes may now be offered.
    pub fn committed(&mut self) {
        self.uncommitted.clear();
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
        self.uncommitted.clear();
        self.docs.clear();
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
        let Some(doc) = self.docs.get_mut(id) else {
            return Ok(true);
        };
        let stored: Option<Vec<u8>> = c
            .prepare_cached("SELECT heads FROM docs WHERE doc_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        let mut ours: Vec<[u8; 32]> = doc.get_heads().iter().map(|h| h.0).collect();
        let mut disk = stored.map(|b| heads_from_blob(&b)).unwrap_or_default();
        ours.sort_unstable();
        disk.sort_unstable();
        Ok(ours == disk)
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
                c.prepare_cached("SELECT bytes FROM doc_chunks WHERE doc_id = ?1 ORDER BY seq")?;
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
    /// caller's transaction. Returns whether anything changed.
    pub fn change(
        &mut self,
        c: &Connection,
        id: &DocId,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<bool, DocError> {
        if id.owner() != self.owner {
            return Err(DocError::Refused(format!("this replica does not own {id}")));
        }
        let result = (|| {
            let doc = self.load_or_empty(c, id)?;
            f(doc)?;
            doc.commit();
            Ok::<_, DocError>(())
        })();
        match result.and_then(|()| self.persist(c, id)) {
            Ok(changed) => Ok(changed),
            Err(e) => {
                self.evict(id);
                Err(e)
            }
        }
    }

    /// Writes the document's unsaved changes as an incremental chunk, and
    /// compacts into a snapshot when the chunks outgrow it.
    fn persist(&mut self, c: &Connection, id: &DocId) -> Result<bool, DocError> {
        let Some(doc) = self.docs.get_mut(id) else {
            return Ok(false);
        };
        let chunk = doc.save_incremental();
        if chunk.is_empty() {
            return Ok(false);
        }
        let heads = heads_blob(&doc.get_heads());
        c.prepare_cached(
            "INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'incremental', ?2)",
        )?
        .execute(params![id.as_str(), chunk])?;
        if id.owner() == self.owner {
            self.uncommitted.insert(id.clone());
        }
        let (snapshot_bytes, chunk_bytes): (i64, i64) = c
            .prepare_cached(
                "INSERT INTO docs(doc_id, heads, changes, chunk_bytes, updated_seq)
                 VALUES (?1, ?2, 1, ?3, last_insert_rowid())
                 ON CONFLICT(doc_id) DO UPDATE SET heads = excluded.heads, changes = changes + 1,
                     chunk_bytes = chunk_bytes + excluded.chunk_bytes, updated_seq = excluded.updated_seq
                 RETURNING snapshot_bytes, chunk_bytes",
            )?
            .query_row(params![id.as_str(), heads, chunk.len() as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if chunk_bytes > snapshot_bytes.max(64 * 1024) {
            let snapshot = doc.save();
            c.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [id.as_str()])?;
            c.execute(
                "INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'snapshot', ?2)",
                params![id.as_str(), snapshot],
            )?;
            c.execute(
                "UPDATE docs SET snapshot_bytes = ?2, chunk_bytes = 0 WHERE doc_id = ?1",
                params![id.as_str(), snapshot.len() as i64],
            )?;
        }
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

    /// The next sync message for `peer` about `id`, if any.
    pub fn generate(
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
        self.save_state(c, id, peer)?;
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
            let new = doc.get_changes(&before);
            if let Some(bad) = new.iter().find(|ch| !owner.owns_actor(ch.actor_id())) {
                return Err(DocError::Refused(format!(
                    "a change to {id} was made by actor {} which is not {owner:?}",
                    bad.actor_id()
                )));
            }
            let n = new.len();
            let touched = if n > 0 {
                touched_keys(doc.make_patches(&mut log))
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
                if let Err(e) = self
                    .persist(c, id)
                    .and_then(|_| self.save_state(c, id, peer))
                {
                    self.forget(id);
                    return Err(e);
                }
                Ok(r)
            }
            Err(e) => {
                // nothing of the message stays: reload the document from disk
                // and restart this document's sync with the peer
                self.evict(id);
                self.states.remove(&(id.clone(), peer.to_owned()));
                Err(e)
            }
        }
    }

    /// The documents this replica holds for which `filter` holds, with their
    /// heads: the index sent at the start of a session.
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
                out.push(IndexEntry {
                    doc,
                    heads: heads_from_blob(&heads),
                });
            }
        }
        Ok(out)
    }

    /// Whether the peer is known to have every change of the document (its
    /// persisted shared heads equal ours): such a document can leave the index.
    pub fn acknowledged(&self, c: &Connection, id: &DocId, peer: &str) -> Result<bool, DocError> {
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
        let Ok(state) = sync::State::decode(&theirs) else {
            return Ok(false);
        };
        let mut a = heads_from_blob(&ours);
        let mut b: Vec<[u8; 32]> = state.shared_heads.iter().map(|h| h.0).collect();
        a.sort();
        b.sort();
        Ok(a == b)
    }
}
