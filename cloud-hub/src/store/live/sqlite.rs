//! [`LiveRecords`] on SQLite: the live-session tables on the caller's
//! connection. A session is JSON text; times are RFC 3339 text.

use chrono::{DateTime, Utc};
use linli_shared::live::LiveSession;
use rusqlite::{Connection, OptionalExtension, ToSql, params};

use super::LiveRecords;
use crate::store::StoreError;
use crate::time::ts;

/// The sessions a query of their JSON gives, in its order, skipping a row
/// that does not decode.
fn sessions(c: &Connection, sql: &str, p: &[&dyn ToSql]) -> Result<Vec<LiveSession>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(s) = serde_json::from_str::<LiveSession>(&row?) {
            out.push(s);
        }
    }
    Ok(out)
}

impl LiveRecords for Connection {
    fn live_session(&self, session_id: &str) -> Result<Option<LiveSession>, StoreError> {
        let row: Option<String> = self
            .prepare_cached("SELECT session FROM live_sessions WHERE session_id = ?1")?
            .query_row([session_id], |r| r.get(0))
            .optional()?;
        row.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Undecodable(e.to_string())))
            .transpose()
    }

    fn put_live_session(
        &self,
        s: &LiveSession,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(s).map_err(|e| StoreError::Sql(e.to_string()))?;
        self.prepare_cached(
            "INSERT INTO live_sessions(session_id, store_id, status, starts_at, session, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(session_id) DO UPDATE SET status = excluded.status, session = excluded.session",
        )?
        .execute(params![
            s.session_id,
            s.store_id,
            s.status.as_str(),
            ts(s.starts_at),
            json,
            by,
            ts(now)
        ])?;
        Ok(())
    }

    fn attribute_order(&self, session_id: &str, order_id: &str) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT OR IGNORE INTO live_orders(session_id, order_id) VALUES (?1, ?2)",
        )?
        .execute(params![session_id, order_id])?;
        Ok(())
    }

    fn shown_live_sessions(&self, store_id: &str) -> Result<Vec<LiveSession>, StoreError> {
        sessions(
            self,
            "SELECT session FROM live_sessions WHERE store_id = ?1 AND status IN ('started', 'ended')
         ORDER BY starts_at DESC LIMIT 20",
            &[&store_id],
        )
    }

    fn live_sessions_of(&self, store_id: &str) -> Result<Vec<LiveSession>, StoreError> {
        sessions(
            self,
            "SELECT session FROM live_sessions WHERE store_id = ?1 ORDER BY starts_at DESC LIMIT 50",
            &[&store_id],
        )
    }

    fn live_sessions_since(&self, since: DateTime<Utc>) -> Result<Vec<LiveSession>, StoreError> {
        sessions(
            self,
            "SELECT session FROM live_sessions WHERE status IN ('started', 'ended') AND starts_at >= ?1
                     ORDER BY starts_at DESC LIMIT 200",
            &[&ts(since)],
        )
    }
}
