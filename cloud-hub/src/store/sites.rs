//! The store directory as the hub keeps it: `stores`, one row per store
//! with its site (where it is, whom it serves, its hours) as JSON, behind
//! the [`SiteRecords`] trait.
//!
//! The trait is every question and every write the use cases put to the
//! table, in domain types ([`linli_shared::geo::StoreSite`]): no SQL and
//! no database type in its signatures, so a PostgreSQL hub implements the
//! same trait. The SQLite implementation (`sqlite`) is for the caller's
//! `rusqlite::Connection`. A row whose site does not decode is skipped, as
//! if the directory did not have the store.

use chrono::{DateTime, Utc};
use linli_shared::geo::StoreSite;

use super::StoreError;

mod sqlite;

/// The `stores` table's operations.
pub trait SiteRecords {
    /// Every store's site, by store id.
    fn sites(&self) -> Result<Vec<StoreSite>, StoreError>;

    /// Records a store's site (replacing the one it had) as of `now`.
    fn put_site(&self, site: &StoreSite, now: DateTime<Utc>) -> Result<(), StoreError>;
}
