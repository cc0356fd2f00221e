//! The hub's compactor: its documents' snapshots are saved off the writer.
//!
//! The hub persists its documents once per writer batch (deferred
//! persistence); when a batch's chunks make a document's compaction due,
//! the commit hands a copy of the document here
//! ([`linli_sync::doc_store::Compaction`]). This thread saves each copy
//! whole (the costly half: tens of milliseconds for a busy day's orders
//! document, which every order queued behind it on the writer waited for)
//! and writes the snapshot back in a write job of its own, at the default
//! scheduling priority (not [`linli_sync::background`]'s lowest: a busy
//! hub's compactor then fell behind, docs/DECISIONS.md "The sale's tail").
//! It ends when the writer does (its sender lives in the writer's commit
//! hook); a snapshot it could not write leaves the document's chunks as
//! they were.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};

use linli_sync::db::{Store, StoreError};
use linli_sync::doc_store::{Compaction, Docs};

/// Where the writer's commit hook sends the copies to save.
pub(crate) type Compactions = Sender<Vec<Compaction>>;

/// The channel the commit hook sends on, and what [`start`] receives.
pub(crate) fn channel() -> (Compactions, Receiver<Vec<Compaction>>) {
    std::sync::mpsc::channel()
}

/// Starts the compactor thread for the hub's `store` and `docs`.
pub(crate) fn start(
    store: Store,
    docs: Arc<Mutex<Option<Docs>>>,
    copies: Receiver<Vec<Compaction>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("doc-compactor".into())
        .spawn(move || {
            while let Ok(batch) = copies.recv() {
                for copy in batch {
                    compact(&store, &docs, copy);
                }
            }
        })
        .map(drop)
}

fn compact(store: &Store, docs: &Arc<Mutex<Option<Docs>>>, copy: Compaction) {
    let id = copy.id().clone();
    let saved = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| copy.save())) {
        Ok(saved) => saved,
        Err(_) => {
            tracing::error!(%id, "saving the document whole panicked; its chunks stay");
            give_up(docs, &id);
            return;
        }
    };
    let bytes = saved.len();
    let d = docs.clone();
    let written = store.write_blocking(move |c| {
        let mut g = d.lock().unwrap_or_else(PoisonError::into_inner);
        match g.as_mut() {
            Some(docs) => docs
                .write_compacted(c, saved)
                .map_err(|e| StoreError::Sql(e.to_string())),
            None => Ok(false),
        }
    });
    match written {
        Ok(true) => tracing::debug!(%id, bytes, "document compacted off the writer"),
        Ok(false) => tracing::debug!(%id, "compaction skipped: the document changed meanwhile"),
        Err(e) => {
            tracing::warn!(%id, error = %e, "compaction not written; the chunks stay");
            give_up(docs, &id);
        }
    }
}

/// The document may be compacted again by a later copy.
fn give_up(docs: &Arc<Mutex<Option<Docs>>>, id: &linli_shared::docs::DocId) {
    if let Some(docs) = docs.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
        docs.compaction_given_up(id);
    }
}
