//! Compaction off the writer (deferred persistence, the hub).
//!
//! A document's chunks are replaced by one snapshot when they outgrow it.
//! Saving a document whole costs what its history costs (a day's orders
//! document at the hub: tens of milliseconds, most of it deflate), and on
//! the writer thread every write queued behind it waited: in a live burst
//! those saves were the p99 (`live_burst_bench`: p99 ~50 ms with them on
//! the writer, ~10 ms without; docs/DECISIONS.md, "Compaction off the
//! writer"). So with deferred persistence a chunk that makes compaction due
//! only marks its document; once the batch commits the cached document
//! (which then holds exactly what the database does) is copied, and the
//! copy is saved on another thread ([`Compaction::save`]). A later write
//! job puts the snapshot in ([`Docs::write_compacted`]): it replaces the
//! chunks up to the one the copy was taken at, and the chunks written since
//! stay, loaded after the snapshot. If that chunk is gone by then (the
//! document was compacted or removed meanwhile) nothing is written.
//!
//! Nothing here can lose a change: the snapshot holds every change of the
//! chunks it replaces (the copy was taken after they committed), and a
//! snapshot that is never written leaves the chunks as they were.

use std::collections::{HashMap, HashSet};

use automerge::AutoCommit;
use linli_shared::docs::DocId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{DocError, Docs};

/// A copy of a document as committed, to be saved whole.
#[derive(Debug)]
pub struct Compaction {
    id: DocId,
    doc: AutoCommit,
    /// The last chunk the copy holds.
    upto: i64,
}

/// A document saved whole, to replace its chunks up to `upto`.
#[derive(Debug)]
pub struct Compacted {
    id: DocId,
    bytes: Vec<u8>,
    upto: i64,
}

/// The compactions of one replica's documents.
#[derive(Debug, Default)]
pub(super) struct Compactions {
    /// Due in the open batch: each document with its last chunk's `seq`.
    due: HashMap<DocId, i64>,
    /// Copied after a commit, not yet taken by [`Docs::take_compactions`].
    ready: Vec<Compaction>,
    /// Taken and not yet written or given up: a document is compacted by
    /// one copy at a time.
    in_flight: HashSet<DocId>,
}

impl Compactions {
    /// A chunk (`seq`) of the document was written; `due`: it made the
    /// document's compaction due. The copy covers the batch's last chunk.
    pub(super) fn wrote(&mut self, id: &DocId, seq: i64, due: bool) {
        if let Some(upto) = self.due.get_mut(id) {
            *upto = seq;
        } else if due && !self.in_flight.contains(id) {
            self.due.insert(id.clone(), seq);
        }
    }

    /// The batch was rolled back: its chunks are gone.
    pub(super) fn rolled_back(&mut self) {
        self.due.clear();
    }
}

impl Compaction {
    /// The document to compact.
    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// Saves the copy whole: the costly half, on any thread.
    pub fn save(mut self) -> Compacted {
        Compacted {
            bytes: self.doc.save(),
            id: self.id,
            upto: self.upto,
        }
    }
}

impl Compacted {
    /// The document compacted.
    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// The snapshot's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the snapshot is empty (never, for a saved document).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Docs {
    /// Copies the documents whose compaction became due in the batch that
    /// just committed (the cache then holds what the database does).
    pub(super) fn copy_due(&mut self) {
        for (id, upto) in std::mem::take(&mut self.compact.due) {
            if let Some(doc) = self.docs.get(&id) {
                self.compact.in_flight.insert(id.clone());
                self.compact.ready.push(Compaction {
                    id,
                    doc: doc.clone(),
                    upto,
                });
            }
        }
    }

    /// The copies to save whole ([`Compaction::save`], off the writer);
    /// each must come back through [`Docs::write_compacted`] or
    /// [`Docs::compaction_given_up`].
    pub fn take_compactions(&mut self) -> Vec<Compaction> {
        std::mem::take(&mut self.compact.ready)
    }

    /// Writes a snapshot saved off the writer, in the caller's transaction:
    /// it replaces the document's chunks up to the one its copy was taken
    /// at. Returns whether it was written (not if that chunk is gone).
    pub fn write_compacted(&mut self, c: &Connection, done: Compacted) -> Result<bool, DocError> {
        self.compact.in_flight.remove(&done.id);
        let still: Option<i64> = c
            .query_row(
                "SELECT seq FROM doc_chunks WHERE doc_id = ?1 AND seq = ?2",
                params![done.id.as_str(), done.upto],
                |r| r.get(0),
            )
            .optional()?;
        if still.is_none() {
            return Ok(false);
        }
        c.execute(
            "DELETE FROM doc_chunks WHERE doc_id = ?1 AND seq <= ?2",
            params![done.id.as_str(), done.upto],
        )?;
        c.execute(
            "INSERT INTO doc_chunks(doc_id, kind, bytes) VALUES (?1, 'snapshot', ?2)",
            params![done.id.as_str(), done.bytes],
        )?;
        c.execute(
            "UPDATE docs SET snapshot_bytes = ?2,
                 chunk_bytes = (SELECT coalesce(sum(length(bytes)), 0) FROM doc_chunks
                                WHERE doc_id = ?1 AND kind = 'incremental')
             WHERE doc_id = ?1",
            params![done.id.as_str(), done.bytes.len() as i64],
        )?;
        Ok(true)
    }

    /// A copy taken by [`Docs::take_compactions`] will not come back (its
    /// save failed or the hub is closing): the document may be compacted
    /// again.
    pub fn compaction_given_up(&mut self, id: &DocId) {
        self.compact.in_flight.remove(id);
    }
}
