//! The records of store markdowns: `markdowns` (one row per store, its
//! current list as JSON at its version), behind the [`MarkdownRecords`]
//! trait.
//!
//! The trait is every question and every write the use cases put to this
//! table, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so an order is priced
//! with the list its transaction sees. The rules (what a markdown may
//! lower, when it applies) are [`linli_shared::pricing`] and the use
//! cases': these methods only read and write what they are told.
//!
//! A list that does not decode reads as empty, at its version.

use chrono::{DateTime, Utc};
use linli_shared::pricing::{Markdown, StoreMarkdowns};

use super::StoreError;

mod sqlite;

/// Every read and write of the markdowns table.
pub trait MarkdownRecords {
    /// A store's markdowns (version 0 and none if never set).
    fn store_markdowns(&self, store_id: &str) -> Result<StoreMarkdowns, StoreError>;

    /// Replaces a store's markdowns, by `by` at `now`, a version up (the
    /// first is version 1); the new version.
    fn replace_markdowns(
        &self,
        store_id: &str,
        list: &[Markdown],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError>;
}
