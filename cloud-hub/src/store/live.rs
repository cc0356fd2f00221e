//! The records of live sessions: `live_sessions` (one row per session,
//! holding it as JSON, with its store, status and start beside it for the
//! lists) and `live_orders` (the orders a session priced), behind the
//! [`LiveRecords`] trait.
//!
//! The trait is every question and every write the use cases put to these
//! tables, in domain types: no SQL and no database type in its signatures,
//! so a PostgreSQL hub implements the same trait. The SQLite
//! implementation (`sqlite`) is for the caller's `rusqlite::Connection`:
//! the writer's transaction or a read connection, so an order's
//! attribution commits with its order. The rules (which moves a session
//! allows, whose prices apply when) are [`linli_shared::live`] and the use
//! cases': these methods only read and write what they are told.
//!
//! A listed session whose row does not decode is skipped, as if the hub
//! did not have it; one asked for by its id is given with why it does not
//! decode, for the use case to refuse. The orders a session priced are
//! read through [`super::orders::OrderRecords`] (they are online orders);
//! the KPIs still read `live_sessions` themselves.

use chrono::{DateTime, Utc};
use linli_shared::live::LiveSession;

use super::StoreError;

mod sqlite;

/// Every read and write of the live-session tables.
pub trait LiveRecords {
    /// A session, if the hub has it ([`StoreError::Undecodable`] if its
    /// row does not decode).
    fn live_session(&self, session_id: &str) -> Result<Option<LiveSession>, StoreError>;

    /// Records a session (`by` and `now` only on its first save) or its
    /// new status and state.
    fn put_live_session(
        &self,
        session: &LiveSession,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Counts an order toward the session that priced it (once).
    fn attribute_order(&self, session_id: &str, order_id: &str) -> Result<(), StoreError>;

    /// A store's newest sessions started or ended, by start, newest first
    /// (20 at most): those whose prices may apply now.
    fn shown_live_sessions(&self, store_id: &str) -> Result<Vec<LiveSession>, StoreError>;

    /// A store's newest sessions, by start, newest first (50 at most).
    fn live_sessions_of(&self, store_id: &str) -> Result<Vec<LiveSession>, StoreError>;

    /// Every store's sessions started or ended that start at or after
    /// `since`, newest first (200 at most).
    fn live_sessions_since(&self, since: DateTime<Utc>) -> Result<Vec<LiveSession>, StoreError>;
}
