//! The two sync rules that keep replicas convergent, each shown on two real
//! replicas (a store and the hub, each with its own SQLite file, writer
//! thread and commit observer, wired as the node and the hub wire them):
//!
//! - a change leaves a replica only once it is durable there: a write job
//!   that changed a document and then failed is rolled back, and its change
//!   is never offered to the peer;
//! - a restarted replica never reuses an actor's sequence number, even when
//!   its database lost changes the peer already holds (restored backup);
//! - a message generated on a read connection (the store's uplink does, off
//!   its writer) offers and acknowledges only what is committed.
//!
//! Before these rules, both cases ended with the hub holding a change under
//! the store's actor and sequence number that the store then reused for a
//! different change: the hub refuses it (`DuplicateSeqNumber`) on every
//! session, forever.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use automerge::ChangeHash;
use chrono::NaiveDate;
use linli_shared::docs::stock::{Level, read_levels, set_level};
use linli_shared::docs::{DocId, Owner};
use linli_sync::db::{Store, StoreError, migrate};
use linli_sync::doc_store::{DocError, Docs, MIGRATION, Sealed};
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

/// Sets the level of `sku` (none reserved) in a stock document.
fn put_level(
    d: &mut automerge::AutoCommit,
    sku: &str,
    on_hand: i64,
) -> Result<(), automerge::AutomergeError> {
    set_level(
        d,
        sku,
        Level {
            on_hand,
            reserved: 0,
        },
    )
}

/// One replica: a database with its writer and its documents.
struct Replica {
    path: PathBuf,
    owner: Owner,
    store: Store,
    docs: Arc<Mutex<Option<Docs>>>,
}

impl Replica {
    async fn open(path: &Path, owner: Owner) -> Replica {
        let docs: Arc<Mutex<Option<Docs>>> = Arc::new(Mutex::new(None));
        let d = docs.clone();
        let store = Store::open(
            path,
            schema,
            Some(Arc::new(move |_, _, committed| {
                if let Some(docs) = d.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    docs.batch_ended(committed);
                }
            })),
        )
        .unwrap();
        let r = Replica {
            path: path.to_owned(),
            owner,
            store,
            docs,
        };
        let (owner, docs) = (r.owner.clone(), r.docs.clone());
        r.store
            .write(move |c| {
                *docs.lock().unwrap_or_else(PoisonError::into_inner) = Some(Docs::open(c, owner)?);
                Ok::<_, E>(())
            })
            .await
            .unwrap();
        r
    }

    /// Stops the writer and opens the same file again: a process restart.
    async fn restart(self) -> Replica {
        self.store.shutdown().await;
        let (path, owner) = (self.path.clone(), self.owner.clone());
        drop(self);
        Replica::open(&path, owner).await
    }

    async fn with_docs<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &mut Docs) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let docs = self.docs.clone();
        self.store
            .write(move |c| {
                let mut g = docs.lock().unwrap_or_else(PoisonError::into_inner);
                f(c, g.as_mut().ok_or(E::Store(StoreError::Closed))?)
            })
            .await
    }

    /// Sets the level of `sku` in one write job; `then_fail` makes the job
    /// fail after the document changed (as a use case whose later step
    /// fails does), so the job is rolled back.
    async fn set(&self, id: &DocId, sku: &str, on_hand: i64, then_fail: bool) -> Result<(), E> {
        let (id, sku) = (id.clone(), sku.to_owned());
        self.with_docs(move |c, docs| {
            docs.change(c, &id, |d| put_level(d, &sku, on_hand))?;
            if then_fail {
                return Err(E::Refused);
            }
            Ok(())
        })
        .await
    }

    /// Copies the document on a read connection and sets the level of
    /// `sku` on the copy, off the writer (a store's drain, first half).
    async fn set_on_copy(&self, id: &DocId, sku: &str, on_hand: i64) -> Sealed {
        let (id, sku, docs) = (id.clone(), sku.to_owned(), self.docs.clone());
        self.store
            .read(move |r| {
                let mut copy = docs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_mut()
                    .ok_or(E::Store(StoreError::Closed))?
                    .checkout(r, &id)?;
                copy.change(1, |d| put_level(d, &sku, on_hand))?;
                Ok::<_, E>(copy.seal().unwrap())
            })
            .await
            .unwrap()
    }

    /// Persists a sealed copy in one write job (a drain, second half);
    /// `then_fail` makes the job fail after it persisted.
    async fn persist(&self, sealed: Sealed, then_fail: bool) -> Result<(), E> {
        self.with_docs(move |c, docs| {
            docs.persist_sealed(c, vec![sealed])?;
            if then_fail {
                return Err(E::Refused);
            }
            Ok(())
        })
        .await
    }

    async fn level(&self, id: &DocId, sku: &str) -> Option<i64> {
        let (id, sku) = (id.clone(), sku.to_owned());
        self.with_docs(move |c, docs| {
            Ok(docs
                .read(c, &id, |d| read_levels(d).get(&sku).map(|l| l.on_hand))?
                .flatten())
        })
        .await
        .unwrap()
    }

    /// The persisted heads of the document.
    async fn heads(&self, id: &DocId) -> Vec<ChangeHash> {
        let id = id.clone();
        let mut h: Vec<ChangeHash> = self
            .with_docs(move |c, docs| {
                Ok(docs
                    .index(c, |d| d == &id)?
                    .into_iter()
                    .flat_map(|e| e.heads)
                    .map(ChangeHash)
                    .collect())
            })
            .await
            .unwrap();
        h.sort();
        h
    }

    /// Every change of the document: (actor, sequence number) -> hash.
    async fn changes(&self, id: &DocId) -> BTreeMap<(Vec<u8>, u64), ChangeHash> {
        let id = id.clone();
        self.with_docs(move |c, docs| {
            Ok(docs
                .read(c, &id, |d| {
                    let mut d = d.clone();
                    d.get_changes(&[])
                        .iter()
                        .map(|ch| ((ch.actor_id().to_bytes().to_vec(), ch.seq()), ch.hash()))
                        .collect()
                })?
                .unwrap_or_default())
        })
        .await
        .unwrap()
    }

    async fn generate(&self, id: &DocId, peer: &str) -> Result<Option<Vec<u8>>, E> {
        let (id, peer) = (id.clone(), peer.to_owned());
        self.with_docs(move |c, docs| Ok(docs.generate(c, &id, &peer)?))
            .await
    }

    async fn receive(&self, id: &DocId, peer: &str, owner: &Owner, msg: Vec<u8>) -> Result<(), E> {
        let (id, peer, owner) = (id.clone(), peer.to_owned(), owner.clone());
        self.with_docs(move |c, docs| {
            docs.receive(c, &id, &peer, &owner, &msg)?;
            Ok(())
        })
        .await
    }

    async fn end_session(&self, peer: &str) {
        let peer = peer.to_owned();
        self.with_docs(move |_, docs| {
            docs.end_session(&peer);
            Ok(())
        })
        .await
        .unwrap();
    }
}

/// Runs the sync protocol between the store and the hub until neither has
/// anything to say; fails on the first error either side reports.
async fn sync(store: &Replica, hub: &Replica, id: &DocId) -> Result<(), E> {
    let store_owner = store.owner.clone();
    for _ in 0..50 {
        let up = store.generate(id, "hub").await?;
        let sent_up = up.is_some();
        if let Some(m) = up {
            hub.receive(id, "S001", &store_owner, m).await?;
        }
        let down = hub.generate(id, "S001").await?;
        let sent_down = down.is_some();
        if let Some(m) = down {
            store.receive(id, "hub", &Owner::Hub, m).await?;
        }
        if !sent_up && !sent_down {
            return Ok(());
        }
    }
    panic!("the sync of {id} did not settle in 50 rounds");
}

/// Ends both sides' sessions (a connection dropped), as the uplink does.
async fn disconnect(store: &Replica, hub: &Replica) {
    store.end_session("hub").await;
    hub.end_session("S001").await;
}

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_change_never_reaches_the_hub_and_a_restart_converges() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::Store("S001".into());
    let store = Replica::open(&dir.path().join("store.db"), owner).await;
    let hub = Replica::open(&dir.path().join("hub.db"), Owner::Hub).await;
    let id = DocId::store_stock("S001", day());

    store.set(&id, "P00001", 10, false).await.unwrap();
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(10));

    // a sale changes the stock document, then a later step of its write
    // fails: the job is rolled back and the sale never happened
    let r = store.set(&id, "P00001", 9, true).await;
    assert!(matches!(r, Err(E::Refused)), "{r:?}");
    assert_eq!(store.level(&id, "P00001").await, Some(10));
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(
        hub.level(&id, "P00001").await,
        Some(10),
        "the hub received a change the store rolled back"
    );

    // the store is killed and restarts on its database; the next sale
    // must reach the hub and both must end with the same document
    disconnect(&store, &hub).await;
    let store = store.restart().await;
    store.set(&id, "P00001", 8, false).await.unwrap();
    sync(&store, &hub, &id)
        .await
        .expect("the hub refused the store's change after its restart");
    assert_eq!(hub.level(&id, "P00001").await, Some(8));
    assert_eq!(store.heads(&id).await, hub.heads(&id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_restored_from_a_backup_never_reuses_a_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::Store("S001".into());
    let db = dir.path().join("store.db");
    let store = Replica::open(&db, owner).await;
    let hub = Replica::open(&dir.path().join("hub.db"), Owner::Hub).await;
    let id = DocId::store_stock("S001", day());

    store.set(&id, "P00001", 10, false).await.unwrap();
    sync(&store, &hub, &id).await.unwrap();

    // a backup of the store's database, then a change the hub receives
    store.store.shutdown().await;
    let backup = dir.path().join("backup.db");
    std::fs::copy(&db, &backup).unwrap();
    let store = store.restart().await;
    store.set(&id, "P00001", 9, false).await.unwrap();
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(9));

    // the store's disk is lost and the backup restored: the change the hub
    // holds is gone from the store, and the store writes a new one
    disconnect(&store, &hub).await;
    store.store.shutdown().await;
    let path = store.path.clone();
    drop(store);
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
    }
    std::fs::copy(&backup, &path).unwrap();
    let store = Replica::open(&path, Owner::Store("S001".into())).await;
    assert_eq!(store.level(&id, "P00001").await, Some(10));
    store.set(&id, "P00001", 7, false).await.unwrap();
    // the hub can never hand the store's lost change back (only the owner
    // writes its documents); what must hold is that no actor and sequence
    // number names two different changes on the two replicas, or the hub
    // refuses every later change of the store, forever
    let ours = store.changes(&id).await;
    let theirs = hub.changes(&id).await;
    for (key, hash) in &ours {
        if let Some(other) = theirs.get(key) {
            assert_eq!(
                hash, other,
                "actor and sequence number {key:?} name two different changes"
            );
        }
    }

    // the first sync shows the store it is behind what it once sent:
    // refused whole, nothing applied, until the store recovers
    let before = store.heads(&id).await;
    match sync(&store, &hub, &id).await {
        Err(E::Doc(DocError::Behind(_))) => {}
        other => panic!("a database older than what it sent must be told so: {other:?}"),
    }
    assert_eq!(store.heads(&id).await, before, "nothing applied");
    store
        .with_docs(|_, docs| {
            docs.set_recovering(true);
            Ok(())
        })
        .await
        .unwrap();
    // (the session that saw it ends; the next one starts afresh)
    disconnect(&store, &hub).await;
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(
        store.changes(&id).await,
        hub.changes(&id).await,
        "recovered: both hold every change"
    );
}

/// A change made on a copy off the writer (a store's drain) follows the
/// same rule: it is offered only once persisted and committed; a copy of
/// a document written since it was taken is refused, with nothing written;
/// a persisted copy whose write job then failed is rolled back with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_a_copy_leaves_only_once_persisted_and_never_over_a_newer_write() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::Store("S001".into());
    let store = Replica::open(&dir.path().join("store.db"), owner).await;
    let hub = Replica::open(&dir.path().join("hub.db"), Owner::Hub).await;
    let id = DocId::store_stock("S001", day());

    // a document not stored yet is copied as a new one
    let first = store.set_on_copy(&id, "P00001", 10).await;
    assert_eq!(
        store.level(&id, "P00001").await,
        None,
        "only the copy has it"
    );
    assert_eq!(
        store.generate(&id, "hub").await.unwrap(),
        None,
        "nothing offered"
    );
    store.persist(first, false).await.unwrap();
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(10));

    // made, not persisted: not offered
    let copy = store.set_on_copy(&id, "P00001", 8).await;
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(10));
    assert_eq!(store.level(&id, "P00001").await, Some(10));
    store.persist(copy, false).await.unwrap();
    assert_eq!(store.level(&id, "P00001").await, Some(8));
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(8));

    // the document is written after the copy was taken: refused whole
    let stale = store.set_on_copy(&id, "P00001", 7).await;
    store.set(&id, "P00001", 6, false).await.unwrap();
    let heads = store.heads(&id).await;
    match store.persist(stale, false).await {
        Err(E::Doc(DocError::Outdated(doc))) => assert_eq!(doc, id),
        other => panic!("a copy older than the document must be refused: {other:?}"),
    }
    assert_eq!(store.heads(&id).await, heads, "nothing written");
    assert_eq!(store.level(&id, "P00001").await, Some(6));

    // persisted, then its write job fails: rolled back with it, never offered
    let lost = store.set_on_copy(&id, "P00001", 5).await;
    assert!(matches!(store.persist(lost, true).await, Err(E::Refused)));
    assert_eq!(store.heads(&id).await, heads);
    assert_eq!(store.level(&id, "P00001").await, Some(6));
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(6));

    // and the next change (on a copy again) goes on from what is stored
    let next = store.set_on_copy(&id, "P00001", 4).await;
    store.persist(next, false).await.unwrap();
    let store = store.restart().await;
    disconnect(&store, &hub).await;
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(hub.level(&id, "P00001").await, Some(4));
    assert_eq!(store.changes(&id).await, hub.changes(&id).await);
}

/// A write job run in a batch that is kept open (its transaction begun,
/// not committed) until [`HeldBatch::commit`].
struct HeldBatch {
    commit: std::sync::mpsc::Sender<()>,
    jobs: Vec<tokio::task::JoinHandle<Result<(), E>>>,
}

impl HeldBatch {
    /// Runs `job` on `r`'s writer and returns once it ran, its batch open.
    async fn open(
        r: &Replica,
        job: impl FnOnce(&Connection, &mut Docs) -> Result<(), E> + Send + 'static,
    ) -> HeldBatch {
        // hold the writer in a batch of its own, then queue the job and a
        // job that keeps their batch from committing until told
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (holding_tx, holding_rx) = tokio::sync::oneshot::channel::<()>();
        let s = r.store.clone();
        let held = tokio::spawn(async move {
            s.write(move |_| {
                let _ = holding_tx.send(());
                hold_rx.recv().unwrap();
                Ok::<_, E>(())
            })
            .await
        });
        holding_rx.await.unwrap();
        let (s, docs) = (r.store.clone(), r.docs.clone());
        let run = tokio::spawn(async move {
            s.write(move |c| {
                let mut g = docs.lock().unwrap_or_else(PoisonError::into_inner);
                job(c, g.as_mut().ok_or(E::Store(StoreError::Closed))?)
            })
            .await
        });
        let (commit, commit_rx) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let s = r.store.clone();
        let blocker = tokio::spawn(async move {
            s.write(move |_| {
                let _ = entered_tx.send(());
                commit_rx.recv().unwrap();
                Ok::<_, E>(())
            })
            .await
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while r.store.queued() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the two jobs never queued"
            );
            tokio::task::yield_now().await;
        }
        hold_tx.send(()).unwrap();
        held.await.unwrap().unwrap();
        entered_rx.await.unwrap();
        HeldBatch {
            commit,
            jobs: vec![run, blocker],
        }
    }

    async fn commit(self) {
        self.commit.send(()).unwrap();
        for j in self.jobs {
            j.await.unwrap().unwrap();
        }
    }
}

/// A message for `peer` generated on one of `r`'s read connections, as
/// the store's uplink does.
async fn generate_on_reader(r: &Replica, id: &DocId, peer: &str) -> Option<Vec<u8>> {
    let (id, peer, docs) = (id.clone(), peer.to_owned(), r.docs.clone());
    r.store
        .read(move |c| {
            let mut g = docs.lock().unwrap_or_else(PoisonError::into_inner);
            Ok::<_, E>(g.as_mut().unwrap().generate_unsaved(c, &id, &peer)?)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_generated_on_a_read_connection_offers_only_committed_changes() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Owner::Store("S001".into());
    let store = Replica::open(&dir.path().join("store.db"), owner.clone()).await;
    let hub = Replica::open(&dir.path().join("hub.db"), Owner::Hub).await;
    let id = DocId::store_stock("S001", day());
    store.set(&id, "P00001", 10, false).await.unwrap();
    sync(&store, &hub, &id).await.unwrap();

    // the store's own change, its batch not committed: nothing offered
    let i = id.clone();
    let batch = HeldBatch::open(&store, move |c, docs| {
        docs.change(c, &i, |d| put_level(d, "P00001", 9))?;
        Ok(())
    })
    .await;
    assert_eq!(generate_on_reader(&store, &id, "hub").await, None);
    batch.commit().await;
    let msg = generate_on_reader(&store, &id, "hub").await;
    let msg = msg.expect("the committed change is offered");

    // the peer's change, received in a batch not committed: not
    // acknowledged, and the document not reloaded from the older state
    let i = id.clone();
    let batch = HeldBatch::open(&hub, move |c, docs| {
        docs.receive(c, &i, "S001", &Owner::Store("S001".into()), &msg)?;
        Ok(())
    })
    .await;
    assert_eq!(generate_on_reader(&hub, &id, "S001").await, None);
    batch.commit().await;
    assert_eq!(hub.level(&id, "P00001").await, Some(9));
    assert!(generate_on_reader(&hub, &id, "S001").await.is_some());
    sync(&store, &hub, &id).await.unwrap();
    assert_eq!(store.changes(&id).await, hub.changes(&id).await);
}
