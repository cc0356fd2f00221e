//! Changes to a replica's own documents made outside the writer's
//! transaction, persisted later by a short write: the automerge work of a
//! change (the ops, the commit, the incremental save) runs wherever the
//! caller likes, and only the chunk's rows go through the writer.
//!
//! 1. [`Docs::checkout`] copies an owned document as a transaction holds it
//!    (a read connection's snapshot is enough), with the heads stored then;
//! 2. [`Checkout::change`] changes the copy, as often as needed, and
//!    [`Checkout::seal`] saves what changed as one chunk (and the whole
//!    document too, when the chunk makes the stored chunks due for
//!    compaction into a new snapshot);
//! 3. [`Docs::persist_sealed`], in the writer's transaction, writes the
//!    chunks, provided every document's stored heads are still the ones it
//!    was copied at (nobody else wrote it meanwhile), and puts the copies
//!    into the cache in place of the documents they were taken from.
//!
//! The cache never holds a change the database does not: until step 3 the
//! change is only in the copy, and after it the document is uncommitted
//! (not offered to a peer) until the writer's transaction commits, as with
//! [`Docs::change`]. A copy that is never persisted is simply dropped.

use automerge::{AutoCommit, ChangeHash};
use linli_shared::docs::{DocId, new_doc};
use rusqlite::{Connection, OptionalExtension};

use super::{DocError, Docs, compaction_due, heads_from_blob, write_chunk, write_snapshot};

/// A copy of an owned document, taken to be changed off the writer.
#[derive(Debug)]
pub struct Checkout {
    id: DocId,
    /// The heads the database held when the copy was taken (empty: the
    /// document was not stored yet).
    base: Vec<ChangeHash>,
    doc: AutoCommit,
    /// Records the copy's changes count towards the part's limit.
    records: i64,
    /// The stored snapshot's and chunks' sizes when the copy was taken.
    stored_bytes: (i64, i64),
}

/// A copy's changes, saved as one chunk and waiting for the writer.
#[derive(Debug)]
pub struct Sealed {
    id: DocId,
    base: Vec<ChangeHash>,
    heads: Vec<ChangeHash>,
    chunk: Vec<u8>,
    records: i64,
    doc: AutoCommit,
    /// The document saved whole, when the chunk makes the chunks outgrow
    /// the snapshot: the compaction's save is done off the writer too.
    snapshot: Option<Vec<u8>>,
}

impl Sealed {
    /// The document the chunk belongs to.
    pub fn id(&self) -> &DocId {
        &self.id
    }
}

fn same_heads(a: &[ChangeHash], b: &[ChangeHash]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

impl Docs {
    /// A copy of the owned document `id` as the transaction of `c` holds it
    /// (a new document with its header if it is not stored). Not for a
    /// replica with deferred persistence.
    pub fn checkout(&mut self, c: &Connection, id: &DocId) -> Result<Checkout, DocError> {
        if id.owner() != self.owner {
            return Err(DocError::Refused(format!("this replica does not own {id}")));
        }
        if self.deferred {
            return Err(DocError::Message(format!(
                "{id}: a replica with deferred persistence changes its documents in its write jobs"
            )));
        }
        let (base, stored_bytes) = c
            .prepare_cached(
                "SELECT heads, snapshot_bytes, chunk_bytes FROM docs WHERE doc_id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, (r.get(1)?, r.get(2)?)))
            })
            .optional()?
            .map(|(heads, bytes)| {
                let heads = heads_from_blob(&heads).into_iter().map(ChangeHash);
                (heads.collect(), bytes)
            })
            .unwrap_or_default();
        let doc = match self.load(c, id)? {
            Some(doc) => doc.clone(),
            None => new_doc(id, self.actor.clone())?,
        };
        Ok(Checkout {
            id: id.clone(),
            base,
            doc,
            records: 0,
            stored_bytes,
        })
    }

    /// Writes sealed copies' chunks in the writer's transaction and puts
    /// the copies into the cache. Refused, with nothing written, if any of
    /// the documents was written since its copy was taken
    /// ([`DocError::Outdated`]). Each document
    /// is offered to peers once the transaction commits. Returns the
    /// documents written.
    pub fn persist_sealed(
        &mut self,
        c: &Connection,
        sealed: Vec<Sealed>,
    ) -> Result<Vec<DocId>, DocError> {
        for s in &sealed {
            let stored = self.stored_heads(c, &s.id)?;
            if !same_heads(&stored, &s.base) {
                return Err(DocError::Outdated(s.id.clone()));
            }
        }
        let mut written = Vec::with_capacity(sealed.len());
        for s in sealed {
            let Sealed {
                id,
                heads,
                chunk,
                records,
                mut doc,
                snapshot,
                ..
            } = s;
            if write_chunk(c, &id, &chunk, &heads, records)?.1 {
                write_snapshot(c, &id, &snapshot.unwrap_or_else(|| doc.save()))?;
            }
            self.verified
                .insert(id.clone(), (crate::db::rollbacks(), heads));
            self.uncommitted.insert(id.clone());
            self.docs.insert(id.clone(), doc);
            written.push(id);
        }
        Ok(written)
    }
}

impl Checkout {
    /// The document copied.
    pub fn id(&self) -> &DocId {
        &self.id
    }

    /// Makes one change of `records` records on the copy; returns whether
    /// anything changed. After an error the copy must be dropped.
    pub fn change(
        &mut self,
        records: usize,
        f: impl FnOnce(&mut AutoCommit) -> Result<(), automerge::AutomergeError>,
    ) -> Result<bool, DocError> {
        f(&mut self.doc)?;
        let changed = self.doc.commit().is_some();
        if changed {
            self.records += i64::try_from(records.max(1)).unwrap_or(i64::MAX);
        }
        Ok(changed)
    }

    /// The copy's changes as one chunk for [`Docs::persist_sealed`];
    /// `None` if nothing changed (a new document's header alone is not
    /// written).
    pub fn seal(mut self) -> Option<Sealed> {
        if self.records == 0 {
            return None;
        }
        let chunk = self.doc.save_incremental();
        let (snapshot_bytes, chunk_bytes) = self.stored_bytes;
        let grown = chunk_bytes.saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
        let snapshot = compaction_due(snapshot_bytes, grown).then(|| self.doc.save());
        Some(Sealed {
            heads: self.doc.get_heads(),
            id: self.id,
            base: self.base,
            chunk,
            records: self.records,
            doc: self.doc,
            snapshot,
        })
    }
}
