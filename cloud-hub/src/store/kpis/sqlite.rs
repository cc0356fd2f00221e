//! [`KpiFacts`] on SQLite: the fact rows on the caller's (read)
//! connection. Days are bound as `YYYY-MM-DD` text and times as RFC 3339
//! text, as the tables hold them (the measured query plans depend on it);
//! a sale's lines are JSON. Every statement runs per answer and per store,
//! so each is a cached statement.

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::kpi::instant as time;
use linli_shared::kpi::{
    Activity, CounterRefund, CounterSale, LiveSessionInfo, Member, Oversell, Sold, WriteOff,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::KpiFacts;
use crate::store::StoreError;
use crate::time::ts;

impl KpiFacts for Connection {
    fn counter_sales(
        &self,
        store: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<CounterSale>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT sale_id, created_at, cashier, total_fen, member_hash, lines FROM hub_sales
             WHERE store_id = ?1 AND day >= ?2 AND day <= ?3",
        )?;
        let rows = stmt.query_map(params![store, from.to_string(), to.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (sale_id, at, cashier, total_fen, member_hash, lines) = row?;
            let Some(at) = time(&at) else { continue };
            // straight to what the formulas read (a line's SKU and quantity)
            let lines: Vec<Sold> = serde_json::from_str(&lines).unwrap_or_default();
            out.push(CounterSale {
                store_id: store.to_owned(),
                sale_id,
                at,
                cashier,
                total_fen,
                member_hash,
                person_id: None,
                lines,
            });
        }
        Ok(out)
    }

    fn member_purchases(
        &self,
        store: &str,
        after: NaiveDate,
        through: NaiveDate,
    ) -> Result<Vec<CounterSale>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT created_at, member_hash FROM hub_sales
             WHERE store_id = ?1 AND day > ?2 AND day <= ?3 AND member_hash IS NOT NULL",
        )?;
        let rows = stmt.query_map(
            params![store, after.to_string(), through.to_string()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (at, member_hash) = row?;
            let Some(at) = time(&at) else { continue };
            out.push(CounterSale {
                store_id: store.to_owned(),
                sale_id: String::new(),
                at,
                cashier: String::new(),
                total_fen: 0,
                member_hash: Some(member_hash),
                person_id: None,
                lines: Vec::new(),
            });
        }
        Ok(out)
    }

    fn counter_refunds(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CounterRefund>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT refund_id, at, amount_fen FROM hub_refunds
             WHERE store_id = ?1 AND at >= ?2 AND at < ?3",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map(params![store, ts(from), ts(to)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })? {
            let (refund_id, at, amount_fen) = row?;
            if let Some(at) = time(&at) {
                out.push(CounterRefund {
                    store_id: store.to_owned(),
                    refund_id,
                    at,
                    amount_fen,
                });
            }
        }
        Ok(out)
    }

    fn write_offs(
        &self,
        store: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<WriteOff>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT sku, qty, at FROM hub_write_offs WHERE store_id = ?1 AND day >= ?2 AND day <= ?3",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map(params![store, from.to_string(), to.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
        })? {
            let (sku, qty, at) = row?;
            if let Some(at) = time(&at) {
                out.push(WriteOff {
                    store_id: store.to_owned(),
                    at,
                    sku,
                    qty,
                });
            }
        }
        Ok(out)
    }

    fn community_members(&self, store: &str) -> Result<Vec<Member>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT customer_id, since FROM community_members WHERE store_id = ?1",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map([store], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (customer_id, since) = row?;
            if let Some(since) = time(&since) {
                out.push(Member {
                    store_id: store.to_owned(),
                    customer_id,
                    since,
                });
            }
        }
        Ok(out)
    }

    fn member_activity(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Activity>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT customer_id, at FROM member_activity WHERE store_id = ?1 AND at >= ?2 AND at < ?3",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map(params![store, ts(from), ts(to)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (customer_id, at) = row?;
            if let Some(at) = time(&at) {
                out.push(Activity {
                    store_id: store.to_owned(),
                    customer_id,
                    at,
                });
            }
        }
        Ok(out)
    }

    fn oversells(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Oversell>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT order_id, created_at FROM exceptions WHERE store_id = ?1
             AND kind IN ('rerouted', 'refunded_oversold') AND created_at >= ?2 AND created_at < ?3",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map(params![store, ts(from), ts(to)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (order_id, at) = row?;
            if let Some(at) = time(&at) {
                out.push(Oversell {
                    store_id: store.to_owned(),
                    order_id,
                    at,
                });
            }
        }
        Ok(out)
    }

    fn live_sessions(&self, store: &str) -> Result<Vec<LiveSessionInfo>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT session_id, json_extract(session, '$.title'), created_by FROM live_sessions WHERE store_id = ?1",
        )?;
        let rows = stmt
            .query_map([store], |r| {
                Ok(LiveSessionInfo {
                    session_id: r.get(0)?,
                    store_id: store.to_owned(),
                    title: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    host: r.get(2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn newest_fact_at(&self, store: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT max(t) FROM (
                SELECT max(created_at) AS t FROM hub_sales WHERE store_id = ?1
                    AND day = (SELECT max(day) FROM hub_sales WHERE store_id = ?1)
                UNION ALL SELECT max(at) FROM hub_refunds WHERE store_id = ?1
                UNION ALL SELECT max(at) FROM hub_write_offs WHERE store_id = ?1)",
            )?
            .query_row([store], |r| r.get(0))
            .optional()?
            .flatten())
    }
}
