//! Deferred persistence (the hub's write path, issue 11): a replica whose
//! writer persists each document once per batch, before the commit
//! ([`Docs::persist_pending`] as a [`Hooks::before_commit`]), keeps the
//! rules of per-change persistence:
//!
//! - nothing of a failed write stays, in the database or in memory, while
//!   the writes beside it in the batch commit, each document's changes of
//!   the batch in one chunk;
//! - a batch that does not commit leaves neither the chunk nor the change
//!   in memory;
//! - a change is not offered to a peer before its batch committed, even to
//!   a write of the same batch;
//! - what was acknowledged survives a restart.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDate;
use linli_shared::docs::stock::{Level, read_levels, set_level};
use linli_shared::docs::{DocId, Owner};
use linli_sync::db::{Hooks, Store, StoreError, migrate};
use linli_sync::doc_store::{DocError, Docs, MIGRATION};
use rusqlite::Connection;

fn schema(c: &mut Connection) -> rusqlite::Result<()> {
    migrate(c, &[MIGRATION])
}

#[derive(Debug)]
#[allow(dead_code)] // the fields are read through `Debug` in failure messages
enum E {
    Doc(DocError),
    Store(StoreError),
    /// The use case's own failure after it changed a document.
    Refused,
}

impl From<DocError> for E {
    fn from(e: DocError) -> Self {
        E::Doc(e)
    }
}

impl From<StoreError> for E {
    fn from(e: StoreError) -> Self {
        E::Store(e)
    }
}

type Shared = Arc<Mutex<Option<Docs>>>;

/// The hub's replica, wired as `Hub::open_with` wires it: deferred
/// persistence, every write a job, the pending changes persisted before the
/// commit. `fail_commit` set to `n` ≥ 0 makes the before-commit step of the
/// batch after the next `n` ones fail.
struct Hub {
    path: PathBuf,
    store: Store,
    docs: Shared,
    fail_commit: Arc<AtomicI32>,
}

impl Hub {
    async fn open(path: &Path) -> Hub {
        let docs: Shared = Arc::new(Mutex::new(None));
        let fail_commit = Arc::new(AtomicI32::new(-1));
        let (d1, d2, fail) = (docs.clone(), docs.clone(), fail_commit.clone());
        let store = Store::open_with_hooks(
            path,
            schema,
            Hooks {
                before_commit: Some(Arc::new(move |c: &Connection| {
                    if let Some(docs) = d1.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                        docs.persist_pending(c)
                            .map_err(|e| StoreError::Sql(e.to_string()))?;
                    }
                    let n = fail.load(Ordering::SeqCst);
                    if n >= 0 {
                        fail.store(n - 1, Ordering::SeqCst);
                    }
                    if n == 0 {
                        return Err(StoreError::Sql("disk full".into()));
                    }
                    Ok(())
                })),
                on_commit: Some(Arc::new(move |_, _, committed| {
                    if let Some(docs) = d2.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                        docs.batch_ended(committed);
                    }
                })),
            },
        )
        .unwrap();
        let hub = Hub {
            path: path.to_owned(),
            store,
            docs,
            fail_commit,
        };
        let docs = hub.docs.clone();
        hub.store
            .write(move |c| {
                let mut d = Docs::open(c, Owner::Hub)?;
                d.defer_persistence();
                *docs.lock().unwrap_or_else(PoisonError::into_inner) = Some(d);
                Ok::<_, E>(())
            })
            .await
            .unwrap();
        hub
    }

    async fn restart(self) -> Hub {
        self.store.shutdown().await;
        let path = self.path.clone();
        drop(self);
        Hub::open(&path).await
    }

    /// A write job, bracketed as `Hub::with_docs` brackets it.
    fn job<T, F>(&self, f: F) -> impl std::future::Future<Output = Result<T, E>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Docs) -> Result<T, E> + Send + 'static,
    {
        let docs = self.docs.clone();
        let store = self.store.clone();
        async move {
            store
                .write(move |c| {
                    let mut g = docs.lock().unwrap_or_else(PoisonError::into_inner);
                    let d = g.as_mut().ok_or(E::Store(StoreError::Closed))?;
                    d.begin_job(c);
                    let r = f(c, d);
                    d.end_job(c, r.is_ok());
                    r
                })
                .await
        }
    }

    /// Holds the writer thread until `release` is called, so that the
    /// writes sent meanwhile queue up and run as one batch.
    async fn hold_writer(&self) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let store = self.store.clone();
        let held = tokio::spawn(async move {
            store
                .write(move |_c| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv_timeout(Duration::from_secs(10));
                    Ok::<_, StoreError>(())
                })
                .await
                .unwrap();
        });
        started_rx.await.unwrap();
        (release_tx, held)
    }

    /// Spawns a write and returns once it waits in the writer's queue, so
    /// that writes queued one after another run in that order.
    async fn queue<T: Send + 'static>(
        &self,
        write: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        let before = self.store.queued();
        let handle = tokio::spawn(write);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.store.queued() <= before {
            assert!(std::time::Instant::now() < deadline, "write never queued");
            tokio::task::yield_now().await;
        }
        handle
    }

    async fn level(&self, id: &DocId, sku: &str) -> Option<i64> {
        let (id, sku) = (id.clone(), sku.to_owned());
        self.job(move |c, docs| {
            Ok(docs
                .read(c, &id, |d| read_levels(d).get(&sku).map(|l| l.on_hand))?
                .flatten())
        })
        .await
        .unwrap()
    }

    /// (chunks, changes) of the document in the database, and the number of
    /// changes in the cached document.
    async fn counts(&self, id: &DocId) -> (i64, i64, usize) {
        let id = id.clone();
        self.job(move |c, docs| {
            let chunks = c
                .query_row(
                    "SELECT count(*) FROM doc_chunks WHERE doc_id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .map_err(DocError::from)?;
            let changes = c
                .query_row(
                    "SELECT coalesce(max(changes), 0) FROM docs WHERE doc_id = ?1",
                    [id.as_str()],
                    |r| r.get(0),
                )
                .map_err(DocError::from)?;
            let in_memory = docs
                .read(c, &id, |d| d.clone().get_changes(&[]).len())?
                .unwrap_or(0);
            Ok((chunks, changes, in_memory))
        })
        .await
        .unwrap()
    }

    async fn generate(&self, id: &DocId, peer: &str) -> Option<Vec<u8>> {
        let (id, peer) = (id.clone(), peer.to_owned());
        self.job(move |c, docs| Ok(docs.generate(c, &id, &peer)?))
            .await
            .unwrap()
    }
}

/// A job that sets `sku` of the document to `on_hand`, then fails if asked
/// to (a use case whose later step fails after it changed the document).
fn set(
    id: &DocId,
    sku: &str,
    on_hand: i64,
    then_fail: bool,
) -> impl FnOnce(&Connection, &mut Docs) -> Result<(), E> + Send + 'static {
    let (id, sku) = (id.clone(), sku.to_owned());
    move |c, docs| {
        docs.change(c, &id, |d| {
            set_level(
                d,
                &sku,
                Level {
                    on_hand,
                    reserved: 0,
                },
            )
        })?;
        if then_fail {
            return Err(E::Refused);
        }
        Ok(())
    }
}

fn doc() -> DocId {
    DocId::hub_stock("S001", NaiveDate::from_ymd_opt(2026, 11, 25).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_leaves_nothing_and_its_batch_neighbours_share_one_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(&dir.path().join("hub.db")).await;
    let id = doc();
    hub.job(set(&id, "P00000", 5, false)).await.unwrap();
    assert_eq!(hub.counts(&id).await, (1, 1, 1));

    // five writes in one batch; the third changes the document and fails,
    // the fourth changes it, then panics
    let (release, held) = hub.hold_writer().await;
    let mut writes = Vec::new();
    for (i, fail) in [false, false, true, false, false].into_iter().enumerate() {
        let sku = format!("P0000{}", i + 1);
        writes.push(hub.queue(hub.job(set(&id, &sku, i as i64 + 1, fail))).await);
    }
    let sku = "P00009".to_owned();
    let i = id.clone();
    let panics = hub
        .queue(hub.job(move |c, docs| -> Result<(), E> {
            set(&i, &sku, 9, false)(c, docs)?;
            panic!("a bug after the change");
        }))
        .await;
    let last = hub.queue(hub.job(set(&id, "P00008", 8, false))).await;
    release.send(()).unwrap();
    held.await.unwrap();
    let results: Vec<bool> = futures_ok(writes).await;
    assert_eq!(results, [true, true, false, true, true]);
    assert!(matches!(
        panics.await.unwrap(),
        Err(E::Store(StoreError::Panicked))
    ));
    last.await.unwrap().unwrap();

    for (sku, want) in [
        ("P00001", Some(1)),
        ("P00002", Some(2)),
        ("P00003", None),
        ("P00004", Some(4)),
        ("P00005", Some(5)),
        ("P00008", Some(8)),
        ("P00009", None),
    ] {
        assert_eq!(hub.level(&id, sku).await, want, "{sku}");
    }
    // the five changes that committed are one chunk, and memory holds
    // exactly what the database does
    assert_eq!(hub.counts(&id).await, (2, 6, 6));

    // and so does a restart
    let hub = hub.restart().await;
    assert_eq!(hub.counts(&id).await, (2, 6, 6));
    assert_eq!(hub.level(&id, "P00008").await, Some(8));
    assert_eq!(hub.level(&id, "P00003").await, None);
}

async fn futures_ok(writes: Vec<tokio::task::JoinHandle<Result<(), E>>>) -> Vec<bool> {
    let mut out = Vec::new();
    for w in writes {
        out.push(w.await.unwrap().is_ok());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_does_not_commit_leaves_neither_chunk_nor_change() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(&dir.path().join("hub.db")).await;
    let id = doc();
    hub.job(set(&id, "P00001", 1, false)).await.unwrap();
    assert_eq!(hub.counts(&id).await, (1, 1, 1));

    // the batch's chunk is written, then its commit fails
    let (release, held) = hub.hold_writer().await;
    let a = hub.queue(hub.job(set(&id, "P00001", 2, false))).await;
    let b = hub.queue(hub.job(set(&id, "P00002", 2, false))).await;
    // (the batch holding the writer commits; the next one does not)
    hub.fail_commit.store(1, Ordering::SeqCst);
    release.send(()).unwrap();
    let _ = held.await;
    assert!(matches!(
        a.await.unwrap(),
        Err(E::Store(StoreError::Commit(_)))
    ));
    assert!(matches!(
        b.await.unwrap(),
        Err(E::Store(StoreError::Commit(_)))
    ));

    assert_eq!(hub.counts(&id).await, (1, 1, 1), "no chunk, no change");
    assert_eq!(hub.level(&id, "P00001").await, Some(1));
    assert_eq!(hub.level(&id, "P00002").await, None);

    // the next change builds on what is stored, and is stored
    hub.job(set(&id, "P00002", 3, false)).await.unwrap();
    assert_eq!(hub.counts(&id).await, (2, 2, 2));
    let hub = hub.restart().await;
    assert_eq!(hub.level(&id, "P00002").await, Some(3));
    assert_eq!(hub.level(&id, "P00001").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_offered_only_after_its_batch_committed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(&dir.path().join("hub.db")).await;
    let id = doc();

    // a change and, in the same batch, a request for what to send the store
    let (release, held) = hub.hold_writer().await;
    let i = id.clone();
    let change = hub
        .queue(hub.job(move |c, docs| {
            set(&i, "P00001", 1, false)(c, docs)?;
            // not even by the job that made it
            assert!(docs.generate(c, &i, "S001")?.is_none());
            Ok(())
        }))
        .await;
    let (i, i2) = (id.clone(), id.clone());
    let offer = hub
        .queue(hub.job(move |c, docs| {
            let msg = docs.generate(c, &i, "S001")?;
            // the index, read in the batch, reaches the store after the commit:
            // it names the document with its heads in memory
            let index = docs.index(c, |d| d == &i2)?;
            Ok((msg, index, docs.acknowledged(c, &i2, "S001")?))
        }))
        .await;
    release.send(()).unwrap();
    held.await.unwrap();
    change.await.unwrap().unwrap();
    let (msg, index, acknowledged) = offer.await.unwrap().unwrap();
    assert!(msg.is_none(), "offered before its batch committed");
    assert_eq!(index.len(), 1);
    assert!(!acknowledged);

    // committed: offered, and the index names the same heads
    assert!(hub.generate(&id, "S001").await.is_some());
    let i = id.clone();
    let stored = hub
        .job(move |c, docs| Ok(docs.index(c, |d| d == &i)?))
        .await
        .unwrap();
    assert_eq!(stored, index);
}

/// Sets `n` SKUs of the document at once (one change, ~20 bytes a SKU).
fn set_many(
    id: &DocId,
    n: usize,
    on_hand: i64,
) -> impl FnOnce(&Connection, &mut Docs) -> Result<(), E> + Send + 'static {
    let id = id.clone();
    move |c, docs| {
        docs.change(c, &id, |d| {
            for k in 0..n {
                set_level(
                    d,
                    &format!("P{k:05}"),
                    Level {
                        on_hand: on_hand + k as i64,
                        reserved: 0,
                    },
                )?;
            }
            Ok(())
        })?;
        Ok(())
    }
}

async fn take(hub: &Hub) -> Vec<linli_sync::doc_store::Compaction> {
    hub.job(|_c, docs| Ok(docs.take_compactions()))
        .await
        .unwrap()
}

/// Compaction off the writer: a batch that makes it due hands over a copy
/// as committed; its snapshot, saved on another thread, replaces the chunks
/// up to the copy and leaves the ones written since; a rolled-back batch
/// hands over nothing; a snapshot whose chunks are gone is not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_saved_off_the_writer_replaces_only_the_chunks_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(&dir.path().join("hub.db")).await;
    let id = doc();

    // chunks grow until compaction is due; each batch that made it due
    // hands over one copy, and no second while that one is out
    let mut copies = Vec::new();
    for round in 0..200 {
        hub.job(set_many(&id, 400, round * 1_000)).await.unwrap();
        copies.extend(take(&hub).await);
        if !copies.is_empty() {
            break;
        }
    }
    assert_eq!(copies.len(), 1, "one copy once the chunks outgrow 64 KiB");
    let (chunks_before, ..) = hub.counts(&id).await;
    assert!(chunks_before > 1);
    hub.job(set_many(&id, 400, 7_000_000)).await.unwrap();
    assert!(take(&hub).await.is_empty(), "one copy at a time");

    // a change after the copy: its chunk stays beside the snapshot
    hub.job(set(&id, "P99999", 42, false)).await.unwrap();
    let saved = std::thread::spawn(move || copies.remove(0).save())
        .join()
        .unwrap();
    assert!(
        hub.job(move |c, docs| Ok(docs.write_compacted(c, saved)?))
            .await
            .unwrap()
    );
    let (chunks, ..) = hub.counts(&id).await;
    assert_eq!(
        chunks, 3,
        "the snapshot and the two chunks written after the copy"
    );
    let hub = hub.restart().await;
    assert_eq!(hub.level(&id, "P99999").await, Some(42));
    assert_eq!(hub.level(&id, "P00399").await, Some(7_000_399));

    // a batch that makes compaction due and does not commit hands over
    // nothing
    let mut next = Vec::new();
    for round in 0..200 {
        hub.fail_commit.store(0, Ordering::SeqCst);
        let r = hub.job(set_many(&id, 400, round)).await;
        assert!(matches!(r, Err(E::Store(StoreError::Commit(_)))));
        assert!(take(&hub).await.is_empty());
        hub.job(set_many(&id, 400, round)).await.unwrap();
        next.extend(take(&hub).await);
        if !next.is_empty() {
            break;
        }
    }
    assert_eq!(next.len(), 1);

    // the chunks are gone meanwhile (the document was removed): nothing is
    // written
    let i = id.clone();
    hub.job(move |c, _docs| {
        c.execute("DELETE FROM doc_chunks WHERE doc_id = ?1", [i.as_str()])
            .map_err(DocError::from)?;
        Ok(())
    })
    .await
    .unwrap();
    let saved = next.remove(0).save();
    assert!(
        !hub.job(move |c, docs| Ok(docs.write_compacted(c, saved)?))
            .await
            .unwrap()
    );
    assert_eq!(hub.counts(&id).await.0, 0);
}
