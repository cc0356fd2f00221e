//! The store node's database: the shared SQLite writer of `linli_sync::db`
//! with the node's own schema ([`schema`]).

pub mod schema;

use std::path::Path;

pub use linli_sync::db::{CommitObserver, MAX_BATCH, Store, StoreError};

/// Opens (creating and migrating if needed) the node's database for a
/// one-off writer, e.g. the `staff add` command.
pub fn open_writer_conn(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    linli_sync::db::open_writer_conn(path, schema::migrate)
}

/// Opens the node's database with its writer thread.
pub fn open(path: &Path, on_commit: Option<CommitObserver>) -> Result<Store, StoreError> {
    Store::open(path, schema::migrate, on_commit)
}
