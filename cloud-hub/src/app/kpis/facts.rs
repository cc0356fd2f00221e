//! The KPI fact rows as the hub holds them: every SQL string the figures
//! read, and the write-offs table the ledger projection fills.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Days;
use linli_shared::docs::ledger::MovementFact;
use linli_shared::kpi::instant as time;
use linli_shared::kpi::{
    Activity, COHORT_DAYS, CounterRefund, CounterSale, Facts, GroupBuyCounterMoney,
    GroupBuyOutcome, LiveSessionInfo, Member, OnlineOrder, Oversell, Period, Sold, WriteOff,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::HubError;
use crate::people::{People, PeopleCache};
use crate::store::groupbuys::{DecidedGroupBuy, GroupBuyRecords};
use crate::store::orders::OrderRecords;
use crate::time::ts;

/// Records the waste among a ledger part's movements (a write-off, or a
/// refunded line thrown away), once each, with the ledger's business day.
pub fn project_write_offs(
    c: &Connection,
    store: &str,
    day: &str,
    movements: &[MovementFact],
) -> Result<(), HubError> {
    let mut stmt = c.prepare_cached(
        "INSERT OR IGNORE INTO hub_write_offs(store_id, movement_id, day, sku, qty, staff, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for m in movements.iter().filter(|m| m.kind == "waste") {
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

/// What the figures of `stores` over `p` read beyond each store's own
/// rows: the group-buys they took part in and the people the hub knows
/// (read again only when they changed, `key` is the chain's member key).
pub(crate) struct ChainFacts {
    pub group_buys: Vec<GroupBuyOutcome>,
    pub people: Arc<People>,
}

/// Reads the [`ChainFacts`] of `stores` over `p`.
pub(crate) fn load_chain(
    c: &Connection,
    stores: &[String],
    p: &Period,
    people: &PeopleCache,
    key: &[u8; 32],
) -> Result<ChainFacts, HubError> {
    Ok(ChainFacts {
        group_buys: group_buys(c, stores, p)?,
        people: people.get(c, key)?,
    })
}

/// Ties each member's counter sale and each online order to the person it
/// belongs to (`people`), so that one person buying at the
/// counter one day and online another is one repurchasing customer. A
/// member hash no single known person holds stays a member of its own.
pub(crate) fn with_persons(people: &People, f: &mut Facts) {
    for s in &mut f.sales {
        s.person_id = s
            .member_hash
            .as_deref()
            .and_then(|h| people.of_hash(h))
            .map(str::to_owned);
    }
    for o in &mut f.orders {
        o.person_id = people.of_online(&o.customer_id).map(str::to_owned);
    }
}

/// Every row of `stores` the figures over `p` read (all but the group-buys).
/// Sales and online orders reach [`COHORT_DAYS`] past the period (the
/// 30-day repurchase rate).
pub(crate) fn load_stores(
    c: &Connection,
    stores: &[String],
    p: &Period,
) -> Result<Facts, HubError> {
    let mut f = Facts::default();
    let ahead =
        p.to.checked_add_days(Days::new(COHORT_DAYS))
            .unwrap_or(p.to);
    let (start, end) = (ts(p.start()), ts(p.end()));
    let end_ahead = p.end() + chrono::Duration::days(COHORT_DAYS as i64);
    for store in stores {
        let mut stmt = c.prepare_cached(
            "SELECT sale_id, created_at, cashier, total_fen, member_hash, lines FROM hub_sales
             WHERE store_id = ?1 AND day >= ?2 AND day <= ?3",
        )?;
        let rows = stmt.query_map(params![store, p.from.to_string(), p.to.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?;
        for row in rows {
            let (sale_id, at, cashier, total_fen, member_hash, lines) = row?;
            let Some(at) = time(&at) else { continue };
            // straight to what the formulas read (a line's SKU and quantity)
            let lines: Vec<Sold> = serde_json::from_str(&lines).unwrap_or_default();
            f.sales.push(CounterSale {
                store_id: store.clone(),
                sale_id,
                at,
                cashier,
                total_fen,
                member_hash,
                person_id: None,
                lines,
            });
        }
        // after the period only the 30-day repurchase rate reads sales: a
        // member's purchase, its time and member hash alone
        let mut stmt = c.prepare_cached(
            "SELECT created_at, member_hash FROM hub_sales
             WHERE store_id = ?1 AND day > ?2 AND day <= ?3 AND member_hash IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![store, p.to.to_string(), ahead.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (at, member_hash) = row?;
            let Some(at) = time(&at) else { continue };
            f.sales.push(CounterSale {
                store_id: store.clone(),
                sale_id: String::new(),
                at,
                cashier: String::new(),
                total_fen: 0,
                member_hash: Some(member_hash),
                person_id: None,
                lines: Vec::new(),
            });
        }
        let mut stmt = c.prepare_cached(
            "SELECT refund_id, at, amount_fen FROM hub_refunds
             WHERE store_id = ?1 AND at >= ?2 AND at < ?3",
        )?;
        for row in stmt.query_map(params![store, start, end], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
        })? {
            let (refund_id, at, amount_fen) = row?;
            if let Some(at) = time(&at) {
                f.refunds.push(CounterRefund {
                    store_id: store.clone(),
                    refund_id,
                    at,
                    amount_fen,
                });
            }
        }
        // group-buy money at the counter: taken, and given back
        for (at, fen) in c.counter_money_between(store, &start, &end)? {
            if let Some(at) = time(&at) {
                f.group_buy_counter_money.push(GroupBuyCounterMoney {
                    store_id: store.clone(),
                    at,
                    fen,
                });
            }
        }
        let mut stmt = c.prepare_cached(
            "SELECT sku, qty, at FROM hub_write_offs WHERE store_id = ?1 AND day >= ?2 AND day <= ?3",
        )?;
        for row in stmt.query_map(params![store, p.from.to_string(), p.to.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
        })? {
            let (sku, qty, at) = row?;
            if let Some(at) = time(&at) {
                f.write_offs.push(WriteOff {
                    store_id: store.clone(),
                    at,
                    sku,
                    qty,
                });
            }
        }
        for o in c.orders_placed_between(store, p.start(), end_ahead)? {
            if let Some(o) = OnlineOrder::from_records(&o.fact, &o.fulfilment, o.cancelled) {
                f.orders.push(o);
            }
        }
        let mut stmt = c.prepare_cached(
            "SELECT customer_id, since FROM community_members WHERE store_id = ?1",
        )?;
        for row in stmt.query_map([store], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (customer_id, since) = row?;
            if let Some(since) = time(&since) {
                f.members.push(Member {
                    store_id: store.clone(),
                    customer_id,
                    since,
                });
            }
        }
        let mut stmt = c.prepare_cached(
            "SELECT customer_id, at FROM member_activity WHERE store_id = ?1 AND at >= ?2 AND at < ?3",
        )?;
        for row in stmt.query_map(params![store, start, end], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (customer_id, at) = row?;
            if let Some(at) = time(&at) {
                f.activity.push(Activity {
                    store_id: store.clone(),
                    customer_id,
                    at,
                });
            }
        }
        // an online order the store could not serve because it sold the
        // goods at the counter: moved to another store, or refunded
        let mut stmt = c.prepare_cached(
            "SELECT order_id, created_at FROM exceptions WHERE store_id = ?1
             AND kind IN ('rerouted', 'refunded_oversold') AND created_at >= ?2 AND created_at < ?3",
        )?;
        for row in stmt.query_map(params![store, start, end], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })? {
            let (order_id, at) = row?;
            if let Some(at) = time(&at) {
                f.oversells.push(Oversell {
                    store_id: store.clone(),
                    order_id,
                    at,
                });
            }
        }
        let mut stmt = c.prepare_cached(
            "SELECT session_id, json_extract(session, '$.title'), created_by FROM live_sessions WHERE store_id = ?1",
        )?;
        for row in stmt.query_map([store], |r| {
            Ok(LiveSessionInfo {
                session_id: r.get(0)?,
                store_id: store.clone(),
                title: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                host: r.get(2)?,
            })
        })? {
            f.live_sessions.push(row?);
        }
    }
    Ok(f)
}

/// The group-buys decided in `p` that any of `stores` took part in.
fn group_buys(
    c: &Connection,
    stores: &[String],
    p: &Period,
) -> Result<Vec<GroupBuyOutcome>, HubError> {
    let (start, end) = (ts(p.start()), ts(p.end()));
    let mut out = Vec::new();
    // group-buys decided in the period that any of the stores took part in
    // (a campaign is decided when it reaches its threshold or fails)
    let wanted: BTreeSet<&str> = stores.iter().map(String::as_str).collect();
    for DecidedGroupBuy {
        group_buy_id,
        store_ids,
        state,
        at,
    } in c.decided_between(&start, &end)?
    {
        if !store_ids.iter().any(|s| wanted.contains(s.as_str())) {
            continue;
        }
        if let Some(decided_at) = time(&at) {
            out.push(GroupBuyOutcome {
                group_buy_id,
                store_ids,
                decided_at,
                succeeded: state != "failed",
            });
        }
    }
    Ok(out)
}

/// The time of the newest fact the hub holds from `store`: a sale, a
/// refund or a write-off it recorded.
pub(crate) fn newest_fact_at(c: &Connection, store: &str) -> Result<Option<String>, HubError> {
    let newest: Option<String> = c
        .prepare_cached(
            "SELECT max(t) FROM (
                SELECT max(created_at) AS t FROM hub_sales WHERE store_id = ?1
                    AND day = (SELECT max(day) FROM hub_sales WHERE store_id = ?1)
                UNION ALL SELECT max(at) FROM hub_refunds WHERE store_id = ?1
                UNION ALL SELECT max(at) FROM hub_write_offs WHERE store_id = ?1)",
        )?
        .query_row([store], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(newest)
}
