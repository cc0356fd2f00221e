//! [`OrderRecords`] on SQLite: the `online_orders` table on the caller's
//! connection. The facts are JSON text (`fact`, `fulfilment`); `status`,
//! `conflict`, `customer_id`, `store_id`, `placed_at` and `pickup_code`
//! are copies of what the queries filter and sort by.

use chrono::{DateTime, Utc};
use linli_shared::online::{DerivedStatus, FulfilmentFact, HubOrderFact};
use linli_shared::order::OrderStatus;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{OnlinePurchase, OrderRecords, PlacedOrder, SessionOrder};
use crate::store::StoreError;
use crate::store::json_rows::rows;
use crate::time::ts;

impl OrderRecords for Connection {
    fn order(
        &self,
        order_id: &str,
    ) -> Result<Option<(HubOrderFact, Option<FulfilmentFact>)>, StoreError> {
        let row: Option<(String, Option<String>)> = self
            .prepare_cached("SELECT fact, fulfilment FROM online_orders WHERE order_id = ?1")?
            .query_row([order_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(row.and_then(|(f, ful)| {
            let fact: HubOrderFact = serde_json::from_str(&f).ok()?;
            Some((fact, ful.and_then(|x| serde_json::from_str(&x).ok())))
        }))
    }

    fn put_order(&self, fact: &HubOrderFact, derived: &DerivedStatus) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT INTO online_orders(order_id, store_id, customer_id, status, placed_at, pickup_code, fact, conflict)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(order_id) DO UPDATE SET status = excluded.status, fact = excluded.fact, conflict = excluded.conflict",
        )?
        .execute(params![
            fact.order_id,
            fact.store_id,
            fact.customer_id,
            derived.status.as_str(),
            fact.placed_at,
            fact.pickup_code,
            serde_json::to_string(fact).unwrap_or_default(),
            derived.conflict
        ])?;
        Ok(())
    }

    fn set_fulfilment(
        &self,
        order_id: &str,
        fulfilment: &FulfilmentFact,
        derived: &DerivedStatus,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "UPDATE online_orders SET fulfilment = ?2, status = ?3, conflict = ?4 WHERE order_id = ?1",
        )?
        .execute(params![
            order_id,
            serde_json::to_string(fulfilment).unwrap_or_default(),
            derived.status.as_str(),
            derived.conflict
        ])?;
        Ok(())
    }

    fn pickup_code_taken(&self, store: &str, code: &str) -> Result<bool, StoreError> {
        Ok(self
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM online_orders WHERE store_id = ?1 AND pickup_code = ?2
                 AND status NOT IN ('handed_over', 'delivered', 'cancelled'))",
            )?
            .query_row(params![store, code], |r| r.get(0))?)
    }

    fn order_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE customer_id = ?1",
            params![customer_id],
        )
    }

    fn recent_order_ids_of_customer(
        &self,
        customer_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE customer_id = ?1
             ORDER BY placed_at DESC, rowid DESC LIMIT ?2",
            params![customer_id, limit as i64],
        )
    }

    fn open_order_ids_of_customer(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE customer_id = ?1
             AND status IN ('placed', 'accepted', 'picked', 'ready', 'out_for_delivery')",
            params![customer_id],
        )
    }

    fn open_order_ids_of_store(&self, store: &str) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE store_id = ?1
             AND status IN ('placed', 'accepted', 'picked', 'ready')",
            params![store],
        )
    }

    fn open_order_ids_of_store_newest_first(&self, store: &str) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE store_id = ?1
             AND status IN ('placed', 'accepted', 'picked', 'ready') ORDER BY placed_at DESC, rowid DESC",
            params![store],
        )
    }

    fn open_pickup_order_ids(&self) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders
             WHERE status IN ('placed', 'accepted', 'picked', 'ready') AND pickup_code IS NOT NULL",
            params![],
        )
    }

    fn conflicted_order_ids(&self, store: &str) -> Result<Vec<String>, StoreError> {
        ids(
            self,
            "SELECT order_id FROM online_orders WHERE store_id = ?1 AND conflict IS NOT NULL",
            params![store],
        )
    }

    fn live_session_orders(&self, session_id: &str) -> Result<Vec<SessionOrder>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT o.status, o.fact FROM live_orders l JOIN online_orders o ON o.order_id = l.order_id
             WHERE l.session_id = ?1",
        )?;
        let rows = stmt.query_map([session_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (status, fact) = row?;
            let Ok(fact) = serde_json::from_str::<HubOrderFact>(&fact) else {
                continue;
            };
            out.push(SessionOrder {
                fact,
                cancelled: status == OrderStatus::Cancelled.as_str(),
            });
        }
        Ok(out)
    }

    fn orders_placed_between(
        &self,
        store: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<PlacedOrder>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT fact, fulfilment, status FROM online_orders
             WHERE store_id = ?1 AND placed_at >= ?2 AND placed_at < ?3",
        )?;
        let mut out = Vec::new();
        for row in stmt.query_map(params![store, ts(from), ts(to)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (fact, fulfilment, status) = row?;
            let Ok(fact) = serde_json::from_str::<HubOrderFact>(&fact) else {
                continue;
            };
            let fulfilment: FulfilmentFact = fulfilment
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            out.push(PlacedOrder {
                fact,
                fulfilment,
                cancelled: status == "cancelled",
            });
        }
        Ok(out)
    }

    fn online_purchases(&self) -> Result<Vec<OnlinePurchase>, StoreError> {
        let mut stmt = self.prepare_cached(
            "SELECT o.customer_id, o.fact FROM online_orders o
             WHERE o.status <> 'cancelled'
               AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.order_id AND p.state <> 'paid')",
        )?;
        let mut out = Vec::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let customer_id = r.get::<_, String>(0)?;
            let Ok(fact) = serde_json::from_str::<HubOrderFact>(&r.get::<_, String>(1)?) else {
                continue;
            };
            out.push(OnlinePurchase { customer_id, fact });
        }
        Ok(out)
    }

    fn known_store_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .prepare(
                "SELECT store_id FROM stores UNION SELECT store_id FROM hub_sales
                 UNION SELECT store_id FROM online_orders ORDER BY 1",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn order_rows_of_customer(&self, customer_id: &str) -> Result<Vec<Value>, StoreError> {
        rows(
            self,
            "SELECT * FROM online_orders WHERE customer_id = ?1 ORDER BY placed_at",
            &[&customer_id],
        )
    }

    fn erase_customer_from_orders(
        &self,
        customer_id: &str,
        tombstone: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.execute(
            "UPDATE online_orders SET customer_id = ?2,
               fact = CASE WHEN json_type(fact, '$.delivery') IS NULL
                 THEN json_set(fact, '$.customer_id', ?2, '$.customer_masked', '')
                 ELSE json_set(json_remove(fact, '$.delivery.address'),
                        '$.customer_id', ?2, '$.customer_masked', '',
                        '$.delivery.lat', json_extract(fact, '$.delivery.store_lat'),
                        '$.delivery.lon', json_extract(fact, '$.delivery.store_lon')) END
             WHERE customer_id = ?1",
            params![customer_id, tombstone],
        )?)
    }
}

/// The order ids a query of one column gives, in its order.
fn ids(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<String>, StoreError> {
    Ok(c.prepare_cached(sql)?
        .query_map(params, |r| r.get(0))?
        .collect::<Result<_, _>>()?)
}
