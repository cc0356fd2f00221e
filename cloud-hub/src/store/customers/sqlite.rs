//! [`CustomerRecords`] on SQLite: the customer tables on the caller's
//! connection. Times are RFC 3339 text; an erasure's aliases are a JSON
//! array of account ids. Every statement but an erasure's writes runs per
//! request or per synced batch, so each is a cached statement.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use linli_shared::identity::{Cluster, NeverMerge, SourceRecord};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{CustomerRecords, ErasureRecord, ErasureStoreRecord, MergeRecord, NewErasure, Session};
use crate::store::StoreError;
use crate::store::json_rows::rows;
use crate::time::ts;

fn source_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<SourceRecord> {
    Ok(SourceRecord {
        record_id: r.get(0)?,
        source: r.get(1)?,
        phone: r.get(2)?,
        openid: r.get(3)?,
        unionid: r.get(4)?,
        member_card: r.get(5)?,
        nickname: r.get(6)?,
        store_id: r.get(7)?,
    })
}

impl CustomerRecords for Connection {
    fn put_identity_records(&self, records: &[SourceRecord], now: &str) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(
            "INSERT INTO identity_records
               (record_id, source, phone, openid, unionid, member_card, nickname, store_id, imported_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (record_id) DO UPDATE SET
               source = excluded.source, phone = excluded.phone, openid = excluded.openid,
               unionid = excluded.unionid, member_card = excluded.member_card,
               nickname = excluded.nickname, store_id = excluded.store_id,
               imported_at = excluded.imported_at",
        )?;
        for r in records {
            stmt.execute(params![
                r.record_id,
                r.source,
                r.phone,
                r.openid,
                r.unionid,
                r.member_card,
                r.nickname,
                r.store_id,
                now
            ])?;
        }
        Ok(())
    }

    fn identity_records_of(&self, customer_id: &str) -> Result<Vec<SourceRecord>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT record_id, source, phone, openid, unionid, member_card, nickname, store_id
             FROM identity_records WHERE customer_id = ?1 ORDER BY record_id",
        )?;
        let rows = stmt
            .query_map([customer_id], source_record)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn merges_of(&self, customer_id: &str) -> Result<Vec<MergeRecord>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT rule, value, record_a, record_b FROM identity_merges
             WHERE customer_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt
            .query_map([customer_id], |r| {
                Ok(MergeRecord {
                    rule: r.get(0)?,
                    value: r.get(1)?,
                    record_a: r.get(2)?,
                    record_b: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn all_identity_records(&self) -> Result<Vec<(SourceRecord, Option<String>)>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT record_id, source, phone, openid, unionid, member_card, nickname, store_id,
                    customer_id
             FROM identity_records",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((source_record(r)?, r.get(8)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn never_merge_pairs(&self) -> Result<Vec<NeverMerge>, StoreError> {
        Ok(self
            .prepare_cached("SELECT record_a, record_b FROM identity_never_merge")?
            .query_map([], |r| Ok(NeverMerge(r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn retired_customer_ids(&self) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT customer_id FROM identity_customers WHERE retired_at IS NOT NULL",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn save_customers(
        &self,
        clusters: &[Cluster],
        ids: &[String],
        now: &str,
    ) -> Result<(), StoreError> {
        let mut set_customer = self
            .prepare_cached("UPDATE identity_records SET customer_id = ?2 WHERE record_id = ?1")?;
        let mut add_customer = self.prepare_cached(
            "INSERT OR IGNORE INTO identity_customers (customer_id, created_at) VALUES (?1, ?2)",
        )?;
        let mut add_merge = self.prepare_cached(
            "INSERT INTO identity_merges (customer_id, rule, value, record_a, record_b)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        self.prepare_cached("DELETE FROM identity_merges")?
            .execute([])?;
        for (cl, id) in clusters.iter().zip(ids) {
            add_customer.execute(params![id, now])?;
            for r in &cl.records {
                set_customer.execute(params![r, id])?;
            }
            for m in &cl.merges {
                add_merge.execute(params![id, m.rule.as_str(), m.value, m.a, m.b])?;
            }
        }
        // Ids no record holds any more are retired, never given again.
        self.prepare_cached(
            "UPDATE identity_customers SET retired_at = ?1
             WHERE retired_at IS NULL AND NOT EXISTS
               (SELECT 1 FROM identity_records r WHERE r.customer_id = identity_customers.customer_id)",
        )?
        .execute([now])?;
        Ok(())
    }

    fn add_never_merge(&self, pairs: &[NeverMerge], by: &str, now: &str) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(
            "INSERT OR IGNORE INTO identity_never_merge (record_a, record_b, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for NeverMerge(a, b) in pairs {
            stmt.execute(params![a, b, by, now])?;
        }
        Ok(())
    }

    fn identity_record_ids_of(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .prepare_cached("SELECT record_id FROM identity_records WHERE customer_id = ?1")?
            .query_map([customer_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn delete_never_merge_of(&self, record_id: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM identity_never_merge WHERE record_a = ?1 OR record_b = ?1",
            [record_id],
        )?)
    }

    fn delete_identity_records_of(&self, customer_id: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM identity_records WHERE customer_id = ?1",
            [customer_id],
        )?)
    }

    fn delete_merges_of(&self, customer_id: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM identity_merges WHERE customer_id = ?1",
            [customer_id],
        )?)
    }

    fn retire_customer_id(&self, customer_id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.execute(
            "UPDATE identity_customers SET retired_at = coalesce(retired_at, ?2) WHERE customer_id = ?1",
            params![customer_id, ts(now)],
        )?;
        Ok(())
    }

    fn add_session(
        &self,
        token_hash: &str,
        account: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO customer_sessions(token_hash, customer_id, expires_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![token_hash, account, ts(expires_at)])?;
        Ok(())
    }

    fn session(&self, token_hash: &str) -> Result<Option<Session>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT s.customer_id, cu.phone, s.expires_at FROM customer_sessions s
                     JOIN customers cu ON cu.customer_id = s.customer_id WHERE s.token_hash = ?1",
            )?
            .query_row([token_hash], |r| {
                Ok(Session {
                    customer_id: r.get(0)?,
                    phone: r.get(1)?,
                    expires_at: DateTime::parse_from_rfc3339(&r.get::<_, String>(2)?)
                        .ok()
                        .map(|t| t.to_utc()),
                })
            })
            .optional()?)
    }

    fn delete_sessions_of(&self, account: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "DELETE FROM customer_sessions WHERE customer_id = ?1",
            [account],
        )?)
    }

    fn delete_account(&self, account: &str) -> Result<usize, StoreError> {
        Ok(self.execute("DELETE FROM customers WHERE customer_id = ?1", [account])?)
    }

    fn account_rows(&self, account: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT customer_id, phone, openid, member_hash, masked_phone, created_at FROM customers WHERE customer_id = ?1",
            &[&account],
        )
    }

    fn counter_sale_rows_of_member(&self, member_hash: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM hub_sales WHERE member_hash = ?1 ORDER BY created_at",
            &[&member_hash],
        )
    }

    fn counter_refund_rows_of_member(&self, member_hash: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT r.* FROM hub_refunds r JOIN hub_sales s
               ON s.store_id = r.store_id AND s.sale_id = r.sale_id
             WHERE s.member_hash = ?1 ORDER BY r.at",
            &[&member_hash],
        )
    }

    fn forget_member_hash(&self, member_hash: &str) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE hub_sales SET member_hash = NULL WHERE member_hash = ?1",
            [member_hash],
        )?)
    }

    fn erased_as(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT erasure_id FROM erasures
             WHERE customer_id = ?1 OR EXISTS (SELECT 1 FROM json_each(aliases) WHERE value = ?1)",
            )?
            .query_row([id], |r| r.get(0))
            .optional()?)
    }

    fn add_erasure(&self, e: &NewErasure<'_>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO erasures(erasure_id, customer_id, aliases, tombstone, requested_by, requested_at, hub_rows)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.erasure_id,
                e.customer_id,
                serde_json::to_string(e.aliases).unwrap_or_default(),
                e.tombstone,
                e.requested_by,
                ts(e.requested_at),
                e.hub_rows
            ],
        )?;
        Ok(())
    }

    fn add_erasure_store(&self, erasure_id: &str, store_id: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO erasure_stores(erasure_id, store_id) VALUES (?1, ?2)",
            params![erasure_id, store_id],
        )?;
        Ok(())
    }

    fn confirm_erasure(
        &self,
        erasure_id: &str,
        store_id: &str,
        at: &str,
        rows: i64,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO erasure_stores(erasure_id, store_id, confirmed_at, rows) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(erasure_id, store_id) DO UPDATE SET
               confirmed_at = excluded.confirmed_at, rows = excluded.rows
             WHERE erasure_stores.confirmed_at IS NULL",
        )?
        .execute(params![erasure_id, store_id, at, rows])?;
        Ok(())
    }

    fn erasure(&self, erasure_id: &str) -> Result<Option<ErasureRecord>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT customer_id, tombstone, requested_by, requested_at, hub_rows
                 FROM erasures WHERE erasure_id = ?1",
            )?
            .query_row([erasure_id], |r| {
                Ok(ErasureRecord {
                    customer_id: r.get(0)?,
                    tombstone: r.get(1)?,
                    requested_by: r.get(2)?,
                    requested_at: r.get(3)?,
                    hub_rows: r.get(4)?,
                })
            })
            .optional()?)
    }

    fn erasure_stores(&self, erasure_id: &str) -> Result<Vec<ErasureStoreRecord>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT store_id, confirmed_at, rows FROM erasure_stores
                 WHERE erasure_id = ?1 ORDER BY store_id",
            )?
            .query_map([erasure_id], |r| {
                Ok(ErasureStoreRecord {
                    store_id: r.get(0)?,
                    confirmed_at: r.get(1)?,
                    rows: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }
}
