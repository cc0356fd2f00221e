//! [`MarkdownRecords`] on SQLite: the markdowns table on the caller's
//! connection. A store's list is JSON text; times are RFC 3339 text.

use chrono::{DateTime, Utc};
use linli_shared::pricing::{Markdown, StoreMarkdowns};
use rusqlite::{Connection, OptionalExtension, params};

use super::MarkdownRecords;
use crate::store::StoreError;
use crate::time::ts;

impl MarkdownRecords for Connection {
    fn store_markdowns(&self, store_id: &str) -> Result<StoreMarkdowns, StoreError> {
        let row: Option<(u32, String)> = self
            .prepare_cached("SELECT version, markdowns FROM markdowns WHERE store_id = ?1")?
            .query_row([store_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match row {
            Some((version, list)) => StoreMarkdowns {
                store_id: store_id.to_owned(),
                version,
                markdowns: serde_json::from_str(&list).unwrap_or_default(),
            },
            None => StoreMarkdowns {
                store_id: store_id.to_owned(),
                ..Default::default()
            },
        })
    }

    fn replace_markdowns(
        &self,
        store_id: &str,
        list: &[Markdown],
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        Ok(self
            .prepare_cached(
                "INSERT INTO markdowns(store_id, version, markdowns, updated_by, updated_at)
                         VALUES (?1, 1, ?2, ?3, ?4)
                         ON CONFLICT(store_id) DO UPDATE SET version = version + 1,
                             markdowns = excluded.markdowns, updated_by = excluded.updated_by,
                             updated_at = excluded.updated_at
                         RETURNING version",
            )?
            .query_row(
                params![
                    store_id,
                    serde_json::to_string(list).unwrap_or_default(),
                    by,
                    ts(now)
                ],
                |r| r.get(0),
            )?)
    }
}
