//! The chain's numbers from the store's own books (issue 12, DESIGN.md §8):
//! the figures the store's data decides — counter sales and refunds,
//! write-offs, online orders it fulfilled, hand-overs and staff — with the
//! very formulas the hub uses ([`linli_shared::kpi`]), so the two can be
//! compared for the same period. Community, live-session names, oversells
//! and group-buys are the hub's facts: here they are empty (`null`).

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use linli_shared::Unit;
use linli_shared::kpi::instant as time;
use linli_shared::kpi::{
    self, COHORT_DAYS, CounterRefund, CounterSale, Facts, Figures, GroupBuyCounterMoney,
    OnlineOrder, Period, Price, Sold, WriteOff,
};
use linli_shared::online::{FulfilmentFact, HubOrderFact, derive_status};
use linli_shared::order::OrderStatus;
use rusqlite::{Connection, params};

use super::{Actor, App, AppError, invalid, ts};

impl App {
    /// The store's figures over `from..=to` (a manager's).
    pub async fn kpis(
        &self,
        actor: &Actor,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Figures, AppError> {
        actor.require_manager("the store's figures")?;
        let period = Period::new(from, to, self.settings.utc_offset);
        if to < from || period.days() > kpi::MAX_PERIOD_DAYS {
            return Err(invalid(
                "to",
                format!(
                    "结束日期不能早于开始日期，区间最长 {} 天 (to must not be before from; at most {} days)",
                    kpi::MAX_PERIOD_DAYS,
                    kpi::MAX_PERIOD_DAYS
                ),
            ));
        }
        let now = self.now();
        let store_id = self.settings.store_id.clone();
        self.store
            .read(move |c| {
                let (facts, prices) = load(c, &store_id, &period)?;
                Ok::<_, AppError>(kpi::compute(
                    &facts,
                    &period,
                    now.min(period.end()),
                    &prices,
                ))
            })
            .await
    }
}

fn load(
    c: &Connection,
    store_id: &str,
    p: &Period,
) -> Result<(Facts, BTreeMap<String, Price>), AppError> {
    let mut f = Facts::default();
    let ahead =
        p.to.checked_add_days(Days::new(COHORT_DAYS))
            .unwrap_or(p.to);
    let (start, end) = (ts(p.start()), ts(p.end()));
    let end_ahead = ts(p.end() + chrono::Duration::days(COHORT_DAYS as i64));
    let mut lines: BTreeMap<String, Vec<Sold>> = BTreeMap::new();
    let mut stmt = c.prepare(
        "SELECT l.sale_id, l.sku, l.qty FROM sale_lines l JOIN sales s ON s.sale_id = l.sale_id
         WHERE s.day >= ?1 AND s.day <= ?2 ORDER BY l.sale_id, l.line_no",
    )?;
    for row in stmt.query_map(params![p.from.to_string(), ahead.to_string()], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?))
    })? {
        let (sale, sku, qty) = row?;
        lines.entry(sale).or_default().push(Sold { sku, qty });
    }
    let mut stmt = c.prepare(
        "SELECT sale_id, created_at, cashier, total_fen, member_hash FROM sales
         WHERE day >= ?1 AND day <= ?2",
    )?;
    for row in stmt.query_map(params![p.from.to_string(), ahead.to_string()], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })? {
        let (sale_id, at, cashier, total_fen, member_hash) = row?;
        let Some(at) = time(&at) else { continue };
        f.sales.push(CounterSale {
            store_id: store_id.to_owned(),
            lines: lines.remove(&sale_id).unwrap_or_default(),
            sale_id,
            at,
            cashier,
            total_fen,
            member_hash: member_hash.filter(|h| !h.is_empty()),
            // a store cannot tie its members to online customers
            person_id: None,
        });
    }
    let mut stmt = c.prepare(
        "SELECT refund_id, created_at, amount_fen FROM refunds WHERE created_at >= ?1 AND created_at < ?2",
    )?;
    for row in stmt.query_map(params![start, end], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })? {
        let (refund_id, at, amount_fen) = row?;
        if let Some(at) = time(&at) {
            f.refunds.push(CounterRefund {
                store_id: store_id.to_owned(),
                refund_id,
                at,
                amount_fen,
            });
        }
    }
    let mut stmt = c.prepare(
        "SELECT sku, -delta, at FROM movements WHERE kind = 'waste' AND at >= ?1 AND at < ?2",
    )?;
    for row in stmt.query_map(params![start, end], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
    })? {
        let (sku, qty, at) = row?;
        if let Some(at) = time(&at) {
            f.write_offs.push(WriteOff {
                store_id: store_id.to_owned(),
                at,
                sku,
                qty,
            });
        }
    }
    let mut stmt = c.prepare(
        "SELECT o.fact, f.fact FROM online_orders o LEFT JOIN fulfilment f ON f.order_id = o.order_id
         WHERE o.placed_at >= ?1 AND o.placed_at < ?2",
    )?;
    for row in stmt.query_map(params![start, end_ahead], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })? {
        let (fact, ful) = row?;
        let Ok(fact) = serde_json::from_str::<HubOrderFact>(&fact) else {
            continue;
        };
        let ful: Option<FulfilmentFact> = ful.and_then(|s| serde_json::from_str(&s).ok());
        let cancelled = derive_status(&fact, ful.as_ref()).status == OrderStatus::Cancelled;
        if let Some(o) = OnlineOrder::from_records(&fact, &ful.unwrap_or_default(), cancelled) {
            f.orders.push(o);
        }
    }
    // group-buy money at this counter: taken, and given back (as the day
    // report counts it)
    let mut stmt = c.prepare(
        "SELECT k.at, coalesce(k.amount_fen, k.qty * coalesce(json_extract(g.terms, '$.price_fen'), 0))
         FROM group_buy_commitments k LEFT JOIN group_buys g ON g.group_buy_id = k.group_buy_id
         WHERE k.at >= ?1 AND k.at < ?2
         UNION ALL
         SELECT created_at, -amount_fen FROM group_buy_refunds WHERE created_at >= ?1 AND created_at < ?2",
    )?;
    for row in stmt.query_map(params![start, end], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (at, fen) = row?;
        if let Some(at) = time(&at) {
            f.group_buy_counter_money.push(GroupBuyCounterMoney {
                store_id: store_id.to_owned(),
                at,
                fen,
            });
        }
    }
    let mut prices = BTreeMap::new();
    let mut stmt = c.prepare("SELECT sku, price_fen, unit FROM products")?;
    for row in stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
    })? {
        let (sku, fen, unit) = row?;
        let unit = if unit == "kg" { Unit::Kg } else { Unit::Each };
        prices.insert(sku, Price { fen, unit });
    }
    Ok((f, prices))
}
