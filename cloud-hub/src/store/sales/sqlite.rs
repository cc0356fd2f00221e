//! [`SaleRecords`] on SQLite: the counter's ledger tables on the caller's
//! connection. Times are RFC 3339 text as the ledger holds them, days
//! `YYYY-MM-DD`; a sale's lines are JSON. Every statement runs per synced
//! batch, so each is a cached statement, prepared once per call.

use linli_shared::docs::ledger::{MovementFact, RefundFact, SaleFact};
use rusqlite::{Connection, params};

use super::SaleRecords;
use crate::store::StoreError;

impl SaleRecords for Connection {
    fn add_sales(&self, store: &str, day: &str, sales: &[SaleFact]) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(
            "INSERT OR IGNORE INTO hub_sales(store_id, sale_id, day, ticket_no, total_fen, cashier, created_at, lines, member_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for s in sales {
            let lines = serde_json::to_string(&s.lines).unwrap_or_default();
            let member = (!s.member_hash.is_empty()).then_some(s.member_hash.as_str());
            stmt.execute(params![
                store,
                s.sale_id,
                day,
                s.ticket_no,
                s.total_fen,
                s.cashier,
                s.created_at,
                lines,
                member
            ])?;
        }
        Ok(())
    }

    fn add_refunds(&self, store: &str, refunds: &[RefundFact]) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(
            "INSERT OR IGNORE INTO hub_refunds(store_id, refund_id, sale_id, amount_fen, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for r in refunds {
            stmt.execute(params![store, r.refund_id, r.sale_id, r.amount_fen, r.at])?;
        }
        Ok(())
    }

    fn add_write_offs(
        &self,
        store: &str,
        day: &str,
        waste: &[&MovementFact],
    ) -> Result<(), StoreError> {
        let mut stmt = self.prepare_cached(
            "INSERT OR IGNORE INTO hub_write_offs(store_id, movement_id, day, sku, qty, staff, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for m in waste {
            stmt.execute(params![
                store,
                m.movement_id,
                day,
                m.sku,
                -m.delta,
                m.staff,
                m.at
            ])?;
        }
        Ok(())
    }
}
