//! Exceptions for the regional manager: `raise` records one (a row in
//! `exceptions`, and a warning in the log) in the caller's transaction.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::StoreError;
use crate::time::ts;

/// Records an exception (`kind`, in words: `detail`) about `order_id` at
/// `store` for the regional manager.
pub(crate) fn raise(
    c: &Connection,
    store: &str,
    order_id: &str,
    kind: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tracing::warn!(
        store,
        order_id,
        kind,
        detail,
        "exception raised for the regional manager"
    );
    c.prepare_cached(
        "INSERT INTO exceptions(store_id, order_id, kind, detail, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![store, order_id, kind, detail, ts(now)])?;
    Ok(())
}
