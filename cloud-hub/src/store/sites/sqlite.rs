//! [`SiteRecords`] on SQLite: the `stores` table on the caller's
//! connection. A site is JSON text, `updated_at` RFC 3339 text. Both
//! statements run when the directory is imported or reloaded, not per
//! request, so neither is cached.

use chrono::{DateTime, Utc};
use linli_shared::geo::StoreSite;
use rusqlite::{Connection, params};

use super::SiteRecords;
use crate::store::StoreError;
use crate::time::ts;

impl SiteRecords for Connection {
    fn sites(&self) -> Result<Vec<StoreSite>, StoreError> {
        let sites: Vec<String> = self
            .prepare("SELECT site FROM stores ORDER BY store_id")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(sites
            .iter()
            .filter_map(|s| serde_json::from_str(s).ok())
            .collect())
    }

    fn put_site(&self, s: &StoreSite, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO stores(store_id, site, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT(store_id) DO UPDATE SET site = excluded.site, updated_at = excluded.updated_at",
            params![s.store_id, serde_json::to_string(s).unwrap_or_default(), ts(now)],
        )?;
        Ok(())
    }
}
