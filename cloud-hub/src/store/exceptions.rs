//! Exceptions for the regional manager: `raise` records one (a row in
//! `exceptions`, and a warning in the log) in the caller's transaction;
//! `newest` lists them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

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

/// An exception for the regional manager.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Exception {
    pub id: i64,
    pub store_id: String,
    pub order_id: String,
    /// `rerouted`, `refunded_oversold`, `cancelled_but_handed_over`.
    pub kind: String,
    pub detail: String,
    pub created_at: String,
}

/// The newest 500 exceptions, newest first.
pub(crate) fn newest(c: &Connection) -> Result<Vec<Exception>, StoreError> {
    Ok(c
        .prepare_cached("SELECT id, store_id, order_id, kind, detail, created_at FROM exceptions ORDER BY id DESC LIMIT 500")?
        .query_map([], |r| {
            Ok(Exception {
                id: r.get(0)?,
                store_id: r.get(1)?,
                order_id: r.get(2)?,
                kind: r.get(3)?,
                detail: r.get(4)?,
                created_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?)
}
