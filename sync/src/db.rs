//! SQLite, owned by one writer thread, with grouped durable commits.
//! Shared by the edge node and the hub; each brings its own migrations.
//!
//! Every write is a closure sent to the writer thread. The thread takes all
//! writes waiting in its queue (up to [`MAX_BATCH`]), runs each inside its own
//! `SAVEPOINT` within one transaction, then commits once. A write that fails
//! rolls back to its savepoint and does not disturb its neighbours; a failed
//! commit fails every write of the batch. Replies are sent only after the
//! commit returned. A [`Hooks::before_commit`] hook runs after the batch's
//! last write and before its `COMMIT`, in the same transaction (the hub
//! writes its documents' chunks there, once per batch).
//!
//! Durability: WAL with `synchronous=FULL`, so `COMMIT` returns only after the
//! WAL is fsynced. An acknowledged write therefore survives `kill -9` and power
//! loss; grouping amortises the fsync over concurrent writers.
//!
//! Reads run on a small pool of read-only connections on the blocking pool,
//! which WAL lets proceed while the writer commits.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

/// Largest number of writes grouped into one commit.
pub const MAX_BATCH: usize = 256;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or migrated.
    #[error("cannot open database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    /// SQLite refused a statement.
    #[error("database error: {0}")]
    Sql(String),
    /// The commit of a batch failed, so none of its writes happened.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The store is shutting down or its writer thread is gone.
    #[error("database is closed")]
    Closed,
    /// A write panicked; it was rolled back.
    #[error("internal error in a database write")]
    Panicked,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sql(e.to_string())
    }
}

type Finisher = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: given the transaction's connection, it runs and returns what
/// answers its caller after the commit; given an error (the transaction
/// could not begin), it answers with that error without running.
type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Finisher + Send>;

enum Msg {
    Write(Job),
    /// Finish what is queued, checkpoint, close.
    Stop,
}

/// Called after every batch with its duration, its size and whether it
/// committed (metrics; and caches of what the batch wrote must be dropped
/// when it did not).
pub type CommitObserver = Arc<dyn Fn(Duration, usize, bool) + Send + Sync>;

/// Called after the last write of a batch and before its `COMMIT`, in the
/// batch's transaction and outside every write's savepoint: what it writes
/// commits with the batch or not at all. An error (or a panic) fails the
/// whole batch: it is rolled back and every write of it answered with
/// [`StoreError::Commit`]. The hub persists its documents' changes of the
/// batch here, once per document instead of once per write
/// ([`crate::doc_store::Docs::persist_pending`]).
pub type BeforeCommit = Arc<dyn Fn(&Connection) -> Result<(), StoreError> + Send + Sync>;

/// What the writer thread calls around each batch's commit.
#[derive(Clone, Default)]
pub struct Hooks {
    /// See [`BeforeCommit`].
    pub before_commit: Option<BeforeCommit>,
    /// See [`CommitObserver`].
    pub on_commit: Option<CommitObserver>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("before_commit", &self.before_commit.is_some())
            .field("on_commit", &self.on_commit.is_some())
            .finish()
    }
}

/// Handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: Writer,
    readers: Arc<ReadPool>,
}

/// Who runs the writes.
#[derive(Clone)]
enum Writer {
    /// The writer thread, fed by a channel: it groups the writes queued
    /// meanwhile into one commit (a node's and the hub's).
    Thread {
        tx: mpsc::Sender<Msg>,
        handle: Arc<Mutex<Option<JoinHandle<()>>>>,
    },
    /// Each write runs and commits on the thread that calls it, and reads
    /// run there too: a deterministic simulation's whole run on one thread
    /// ([`InlineWrites`]). `None` once closed.
    Inline(Arc<Mutex<Option<InlineWriter>>>),
}

struct InlineWriter {
    conn: Connection,
    hooks: Hooks,
}

thread_local! {
    static INLINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// While held, a [`Store`] opened on this thread runs its writes and
/// reads on the thread that calls them, one commit per write, instead of
/// on a writer thread and the blocking pool. For the deterministic
/// simulation (`linli-sim`), which runs a hub and its stores on one
/// thread: no thread hop, so no scheduling between threads decides an
/// order, and a run costs half the CPU (docs/DECISIONS.md, "The
/// simulation on one thread"). Never for a node or a hub that serves:
/// a write then blocks the async task that makes it, and writes are not
/// grouped.
#[derive(Debug)]
#[must_use = "stores are inline only while the guard is held"]
pub struct InlineWrites {
    was: bool,
}

impl InlineWrites {
    /// Stores opened on this thread from now on, until the guard drops,
    /// are inline.
    pub fn enter() -> InlineWrites {
        InlineWrites {
            was: INLINE.with(|f| f.replace(true)),
        }
    }
}

impl Drop for InlineWrites {
    fn drop(&mut self) {
        let was = self.was;
        INLINE.with(|f| f.set(was));
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.readers.path)
            .finish()
    }
}

/// Prepared statements a connection keeps (`prepare_cached`). rusqlite's
/// default is 16, fewer than the distinct statements of one hub order
/// (validation, rights, live pricing, pickup code, payment, documents, the
/// query tables, the idempotency record): the cache turned over and every
/// statement was parsed again (`sqlite3Prepare` ~5 % of the hub writer's
/// time in a live burst).
const STATEMENT_CACHE: usize = 256;

fn open_conn(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The query planner's stability guarantee: a plan never depends on the
    // values bound. Without it SQLite 3.54 (bundled, built with STAT4)
    // marks any statement of the shape `WHERE a = ?1 ORDER BY b` to be
    // prepared again every time `?1` is rebound, so a cached statement
    // was parsed and planned on every use (`refunds_of`: ~5 % of the hub
    // writer's time in a live burst). The chain's queries have one good
    // plan each and no `LIKE ?`; measured in `statements_are_not_prepared_again`.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Brings a schema up to date (see `migrate`).
pub type Migrate = fn(&mut Connection) -> rusqlite::Result<()>;

/// Applies numbered migrations by `PRAGMA user_version`; each step is one
/// transaction, so a crash mid-migration leaves the previous version intact.
/// Never edit a released migration; append a new one.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(0);
    for (i, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    Ok(())
}

/// Creates `dir` (and missing parents) readable only by its owner (0700 on
/// Unix), and tightens it to 0700 if it exists: a database's directory holds
/// its `-wal` and `-shm` files, and staff, sales and customers are in them.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(
        dir,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
    )?;
    Ok(())
}

/// Makes the database at `path` private before SQLite opens it: its
/// directory 0700 (see [`create_private_dir`]), the file created 0600 (or
/// tightened to it), and any `-wal`/`-shm` left from an earlier run tightened
/// too. SQLite creates the `-wal` and `-shm` files with the database file's
/// own mode, so they are born 0600 as well.
fn make_private(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            if let Err(e) = std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The WAL's size, in pages, at which a commit also checkpoints it
/// (SQLite's default is 1,000). A checkpoint copies the WAL's pages into
/// the database file and fsyncs it, in the commit that crosses the mark,
/// and whoever waits for that commit (a sale, or a sale queued behind a
/// drain's commit) waits for the checkpoint: at 1,000 pages a store's sale
/// (~20 pages) paid for one every ~50 sales, and those were most of
/// `POST /api/v1/sales`'s slowest percent. At 4,000 a checkpoint came
/// every ~200 sales; on days of slow fsyncs that still put the p99 over
/// its 3 ms goal (2.48–3.43 ms in six runs, two within it). At 10,000 a
/// checkpoint comes every ~500 sales: p99 1.52–2.71 ms in six runs
/// alternating with those, all within; each checkpoint takes longer (the
/// slowest sale 5.1–9.9 ms against 4.5–7.1), and the WAL file stays at
/// ~40 MB. docs/DECISIONS.md, "The sale's tail" and "Checkpoints every
/// 10,000 pages".
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;

/// Opens (creating if needed) and migrates a database file, applying the
/// durable pragmas. Used by the writer thread and by offline CLI commands.
/// The file and its directory are private to the owner (`make_private`).
pub fn open_writer_conn(path: &Path, migrate: Migrate) -> Result<Connection, StoreError> {
    let err = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    make_private(path).map_err(|e| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut conn = open_conn(path, OpenFlags::default()).map_err(err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(err)?;
    // FULL: the WAL is fsynced at every commit; see the module docs.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    // each write's savepoint keeps the pages it changes in a sub-journal
    // (only for rolling back to the savepoint, never for recovery): in
    // memory, not spilled to a temporary file with a write(2) per page
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(err)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(err)?;
    migrate(&mut conn).map_err(err)?;
    Ok(conn)
}

impl Store {
    /// Opens the database at `path` and starts the writer thread.
    pub fn open(
        path: &Path,
        migrate: Migrate,
        on_commit: Option<CommitObserver>,
    ) -> Result<Store, StoreError> {
        Self::open_with_hooks(
            path,
            migrate,
            Hooks {
                before_commit: None,
                on_commit,
            },
        )
    }

    /// Opens the database at `path` and starts the writer thread, which
    /// calls `hooks` around every batch's commit.
    pub fn open_with_hooks(
        path: &Path,
        migrate: Migrate,
        hooks: Hooks,
    ) -> Result<Store, StoreError> {
        let conn = open_writer_conn(path, migrate)?;
        let writer = if INLINE.with(std::cell::Cell::get) {
            Writer::Inline(Arc::new(Mutex::new(Some(InlineWriter { conn, hooks }))))
        } else {
            let (tx, rx) = mpsc::channel::<Msg>(4 * MAX_BATCH);
            let handle = std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || writer_loop(conn, rx, hooks))
                .map_err(|e| StoreError::Open {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            Writer::Thread {
                tx,
                handle: Arc::new(Mutex::new(Some(handle))),
            }
        };
        Ok(Store {
            writer,
            readers: Arc::new(ReadPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Whether writes and reads run on the caller's thread
    /// ([`InlineWrites`]): work a node would hand to a thread of its own
    /// runs in line too.
    pub fn is_inline(&self) -> bool {
        matches!(self.writer, Writer::Inline(_))
    }

    /// Runs `job` as a batch of its own on the caller's thread.
    fn write_inline(inline: &Mutex<Option<InlineWriter>>, job: Job) -> Result<(), StoreError> {
        let g = inline
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(w) = g.as_ref() else {
            return Err(StoreError::Closed);
        };
        commit_batch(&w.conn, &mut vec![job], &w.hooks);
        Ok(())
    }

    /// Runs `f` in the writer's transaction and returns its result once the
    /// transaction is durably committed. If `f` fails, its writes are rolled
    /// back and nothing of it is committed.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job = make_job(f, reply_tx);
        match &self.writer {
            Writer::Thread { tx, .. } => tx
                .send(Msg::Write(job))
                .await
                .map_err(|_| StoreError::Closed)?,
            Writer::Inline(w) => Self::write_inline(w, job)?,
        }
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Store::write`] for a thread outside the async runtime (it blocks
    /// that thread until the commit; it panics inside the runtime).
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job = make_job(f, reply_tx);
        match &self.writer {
            Writer::Thread { tx, .. } => tx
                .blocking_send(Msg::Write(job))
                .map_err(|_| StoreError::Closed)?,
            Writer::Inline(w) => Self::write_inline(w, job)?,
        }
        reply_rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Writes sent and not yet taken by the writer thread.
    pub fn queued(&self) -> usize {
        match &self.writer {
            Writer::Thread { tx, .. } => tx.max_capacity() - tx.capacity(),
            Writer::Inline(_) => 0,
        }
    }

    /// Runs a read on a pooled read-only connection, off the async runtime.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let pool = self.readers.clone();
        if self.is_inline() {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.give_back(conn);
            return out;
        }
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.give_back(conn);
            out
        })
        .await
        .map_err(|_| StoreError::Panicked)?
    }

    /// A read-only connection of its own, for a reader that keeps one (the
    /// store's outbox drain, on its own thread); like the pool's, it sees
    /// what was committed when its read transaction began.
    pub fn open_reader(&self) -> Result<Connection, StoreError> {
        self.readers.open()
    }

    /// Lets queued writes finish, checkpoints the WAL and closes the
    /// database; later writes fail with [`StoreError::Closed`]. Waits for the
    /// writer thread. Any clone may call it; the first call does the work.
    pub fn close(&self) {
        match &self.writer {
            Writer::Thread { tx, handle } => {
                let handle = handle.lock().ok().and_then(|mut h| h.take());
                if let Some(h) = handle
                    && tx.blocking_send(Msg::Stop).is_ok()
                {
                    let _ = h.join();
                }
            }
            Writer::Inline(w) => {
                let taken = w.lock().ok().and_then(|mut g| g.take());
                if let Some(w) = taken {
                    close_conn(w.conn);
                }
            }
        }
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
    }

    /// Async form of [`Store::close`] for use inside the runtime.
    pub async fn shutdown(&self) {
        let Writer::Thread { tx, handle } = &self.writer else {
            return self.close();
        };
        let handle = handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle
            && tx.send(Msg::Stop).await.is_ok()
        {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.clear();
        }
    }
}

fn make_job<T, E, F>(f: F, reply: oneshot::Sender<Result<T, E>>) -> Job
where
    F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    Box::new(move |conn: Result<&Connection, StoreError>| {
        let result = match conn {
            Ok(conn) => in_savepoint(conn, f),
            Err(e) => Err(E::from(e)),
        };
        Box::new(move |commit: Result<(), StoreError>| {
            let out = match (result, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Ok(_), Err(e)) => Err(E::from(e)),
                (Err(e), _) => Err(e),
            };
            // the caller may have gone away (client disconnected); the write
            // is committed regardless and a retry finds it by idempotency key
            let _ = reply.send(out);
        })
    })
}

/// Rollbacks of a write (a job rolled back to its savepoint, a batch whose
/// commit failed) in this process, by any writer.
static ROLLBACKS: AtomicU64 = AtomicU64::new(0);

/// How many writes were rolled back in this process so far: state held in
/// memory that matched the database before may not after this changes
/// (the document cache's check of its heads against the database is skipped
/// while it does not: [`crate::doc_store::Docs`]).
pub fn rollbacks() -> u64 {
    ROLLBACKS.load(Ordering::Acquire)
}

fn rolled_back() {
    ROLLBACKS.fetch_add(1, Ordering::AcqRel);
}

/// Runs a statement of the writer's own (`BEGIN`, `COMMIT`, a job's
/// savepoint) from the connection's cache: parsing them again at every
/// job was ~2 % of the hub writer's time in a live burst, and a store's
/// single sales make a batch each.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn in_savepoint<T, E, F>(conn: &Connection, f: F) -> Result<T, E>
where
    F: FnOnce(&Connection) -> Result<T, E>,
    E: From<StoreError>,
{
    exec_cached(conn, "SAVEPOINT job").map_err(StoreError::from)?;
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)));
    let out = match out {
        Ok(r) => r,
        Err(_) => Err(E::from(StoreError::Panicked)),
    };
    if out.is_err() {
        rolled_back();
        exec_cached(conn, "ROLLBACK TO job").map_err(StoreError::from)?;
    }
    exec_cached(conn, "RELEASE job").map_err(StoreError::from)?;
    out
}

/// A write batch that takes this long is logged: every write queued
/// behind it waited as long.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(250);

fn writer_loop(conn: Connection, mut rx: mpsc::Receiver<Msg>, hooks: Hooks) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        if !stopping {
            match rx.blocking_recv() {
                Some(Msg::Write(job)) => batch.push(job),
                Some(Msg::Stop) | None => {
                    // refuse new writes; what is queued still commits below
                    stopping = true;
                    rx.close();
                }
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Write(job)) => batch.push(job),
                Ok(Msg::Stop) => {
                    stopping = true;
                    rx.close();
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            if stopping {
                break;
            }
            continue;
        }
        commit_batch(&conn, &mut batch, &hooks);
    }
    close_conn(conn);
}

/// Runs `batch` in one transaction, commits it (or rolls it all back) and
/// answers each write.
fn commit_batch(conn: &Connection, batch: &mut Vec<Job>, hooks: &Hooks) {
    let started = Instant::now();
    let n = batch.len();
    let (commit, finishers) = match exec_cached(conn, "BEGIN IMMEDIATE") {
        Ok(()) => {
            let finishers: Vec<Finisher> = batch.drain(..).map(|job| job(Ok(conn))).collect();
            let commit = before_commit(conn, hooks.before_commit.as_ref()).and_then(|()| {
                exec_cached(conn, "COMMIT").map_err(|e| StoreError::Commit(e.to_string()))
            });
            if commit.is_err() {
                rolled_back();
                let _ = conn.execute_batch("ROLLBACK");
            }
            (commit, finishers)
        }
        Err(e) => {
            let err = StoreError::Commit(e.to_string());
            // never run: each caller gets the real error
            let finishers = batch.drain(..).map(|job| job(Err(err.clone()))).collect();
            (Err(err), finishers)
        }
    };
    if let Err(e) = &commit {
        tracing::error!(error = %e, batch = n, "commit failed");
    }
    let took = started.elapsed();
    if took >= SLOW_BATCH {
        // every write waiting behind it waited this long too
        tracing::warn!(batch = n, ms = took.as_millis() as u64, "slow write batch");
    }
    // observers (metrics, cache invalidation after a failed commit) run
    // before anyone is answered
    if let Some(obs) = &hooks.on_commit {
        obs(started.elapsed(), n, commit.is_ok());
    }
    for finish in finishers {
        finish(commit.clone());
    }
}

/// Checkpoints the WAL into the database file and closes the connection.
fn close_conn(conn: Connection) {
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "checkpoint at close failed");
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "closing the database failed");
    }
    tracing::info!("database closed");
}

/// Runs the before-commit hook, if any; its failure or panic is the
/// batch's commit failure.
fn before_commit(conn: &Connection, hook: Option<&BeforeCommit>) -> Result<(), StoreError> {
    let Some(hook) = hook else {
        return Ok(());
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| hook(conn))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::Commit(format!("before commit: {e}"))),
        Err(_) => Err(StoreError::Commit("before commit: panicked".into())),
    }
}

/// How much of the database file a reader maps (address space, not memory).
const READER_MMAP_BYTES: i64 = 1 << 30;

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        self.open()
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = open_conn(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // a reader maps the file instead of copying each page it reads
        // into its own cache: the writer's commits reset a reader's page
        // cache, so a report over a month of rows read every page again
        // with a `pread` (~7 % of a region's month of figures, measured in
        // kpi_bench); the mapping shares the OS page cache
        conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 8
        {
            idle.push(conn);
        }
    }
}

/// `N` integer columns of a row, from column `from` on (grow-only totals
/// and other fixed groups of counters).
pub fn row_i64s<const N: usize>(r: &rusqlite::Row<'_>, from: usize) -> rusqlite::Result<[i64; N]> {
    let mut out = [0i64; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = r.get(from + i)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached statement that filters on a bound value and sorts is
    /// prepared once, not again at every new binding (see [`open_conn`]).
    #[test]
    fn statements_are_not_prepared_again() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_conn(&dir.path().join("t.db"), OpenFlags::default()).unwrap();
        c.execute_batch(
            "CREATE TABLE q (s TEXT NOT NULL, id TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (s, id));",
        )
        .unwrap();
        let sql = "SELECT id FROM q WHERE s = ?1 ORDER BY at, id";
        for i in 0..20 {
            let mut st = c.prepare_cached(sql).unwrap();
            let ids: Vec<String> = st
                .query_map([format!("S{i}")], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(ids.is_empty());
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "prepared again at binding {i}"
            );
        }
    }

    /// The writer's durable pragmas, read back from SQLite: WAL, an fsync
    /// at every commit, checkpoints at [`WAL_AUTOCHECKPOINT_PAGES`].
    #[test]
    fn the_writer_commits_durably_and_checkpoints_at_its_mark() {
        let dir = tempfile::tempdir().unwrap();
        let c = open_writer_conn(&dir.path().join("t.db"), |_| Ok(())).unwrap();
        let mode: String = c
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        let sync: i64 = c
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        let mark: i64 = c
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(
            (mode.as_str(), sync, mark),
            ("wal", 2, WAL_AUTOCHECKPOINT_PAGES)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_write_leaves_nothing_and_neighbours_commit() {
        let dir = tempfile::tempdir().unwrap();
        fn schema(c: &mut Connection) -> rusqlite::Result<()> {
            migrate(
                c,
                &["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"],
            )
        }
        let store = Store::open(&dir.path().join("t.db"), schema, None).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50i64 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.write(move |c: &Connection| {
                    c.execute(
                        "INSERT INTO meta(key, value) VALUES (?1, 'x')",
                        [format!("k{i}")],
                    )?;
                    if i % 2 == 0 {
                        return Err(StoreError::Sql("refused".into()));
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 25);
        let n: i64 = store
            .read(|c: &Connection| {
                c.query_row("SELECT count(*) FROM meta WHERE key LIKE 'k%'", [], |r| {
                    r.get(0)
                })
                .map_err(StoreError::from)
            })
            .await
            .unwrap();
        assert_eq!(n, 25);
        store.shutdown().await;
        let late = store.write(|_c: &Connection| Ok::<_, StoreError>(())).await;
        assert!(matches!(late, Err(StoreError::Closed)));
    }

    /// Issue 8 item 17: the database, its `-wal` and `-shm` files are 0600
    /// and its directory 0700, however open the process umask; a database
    /// left with open modes by an older version is tightened on open.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn database_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        fn schema(c: &mut Connection) -> rusqlite::Result<()> {
            migrate(c, &["CREATE TABLE meta (key TEXT PRIMARY KEY);"])
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let with = |suffix: &str, p: &Path| {
            let mut s = p.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("store");
        let path = dir.join("t.db");
        let store = Store::open(&path, schema, None).unwrap();
        store
            .write(|c: &Connection| {
                c.execute("INSERT INTO meta(key) VALUES ('a')", [])?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&with("-wal", &path)), 0o600);
        assert_eq!(mode(&with("-shm", &path)), 0o600);
        store.shutdown().await;

        // an older version's open modes are tightened
        let open = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        open(&dir, 0o755);
        open(&path, 0o644);
        let store = Store::open(&path, schema, None).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        store.shutdown().await;
    }

    fn meta_schema(c: &mut Connection) -> rusqlite::Result<()> {
        migrate(c, &["CREATE TABLE meta (key TEXT PRIMARY KEY);"])
    }

    /// Under [`InlineWrites`] a store's writes and reads run on the thread
    /// that makes them, each write a commit of its own that a failure
    /// rolls back, its hooks called as the writer thread calls them; a
    /// store opened without the guard (or after it dropped) keeps its
    /// writer thread.
    #[test]
    fn an_inline_store_runs_on_the_callers_thread() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let here = std::thread::current().id();
        let commits = Arc::new(AtomicU64::new(0));
        let seen = commits.clone();
        let observer: CommitObserver = Arc::new(move |_, n, ok| {
            assert_eq!((n, ok), (1, true));
            seen.fetch_add(1, Ordering::AcqRel);
        });
        let guard = InlineWrites::enter();
        let store = Store::open(&dir.path().join("i.db"), meta_schema, Some(observer)).unwrap();
        assert!(store.is_inline());
        rt.block_on(async {
            let on = store
                .write(|c: &Connection| {
                    c.execute("INSERT INTO meta(key) VALUES ('a')", [])?;
                    Ok::<_, StoreError>(std::thread::current().id())
                })
                .await
                .unwrap();
            assert_eq!(on, here);
            let refused = store
                .write(|c: &Connection| {
                    c.execute("INSERT INTO meta(key) VALUES ('b')", [])?;
                    Err::<(), _>(StoreError::Sql("refused".into()))
                })
                .await;
            assert!(refused.is_err());
            let (keys, on) = store
                .read(|c: &Connection| {
                    let keys: String =
                        c.query_row("SELECT group_concat(key) FROM meta", [], |r| r.get(0))?;
                    Ok::<_, StoreError>((keys, std::thread::current().id()))
                })
                .await
                .unwrap();
            assert_eq!((keys.as_str(), on), ("a", here));
            store.shutdown().await;
            let late = store.write(|_c: &Connection| Ok::<_, StoreError>(())).await;
            assert!(matches!(late, Err(StoreError::Closed)));
        });
        // the refused write's batch committed nothing but still ran its hook
        assert_eq!(commits.load(Ordering::Acquire), 2);
        drop(guard);

        let threaded = Store::open(&dir.path().join("t.db"), meta_schema, None).unwrap();
        assert!(!threaded.is_inline());
        let on = threaded
            .write_blocking(|_c: &Connection| Ok::<_, StoreError>(std::thread::current().id()))
            .unwrap();
        assert_ne!(on, here);
        threaded.close();
    }
}
