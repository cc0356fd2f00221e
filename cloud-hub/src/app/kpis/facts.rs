//! The KPI fact rows of a period, read through [`KpiFacts`] (and the
//! orders' and group-buys' records), tied to persons; and the write-offs
//! the ledger projection records.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Days;
use linli_shared::docs::ledger::MovementFact;
use linli_shared::kpi::instant as time;
use linli_shared::kpi::{
    COHORT_DAYS, Facts, GroupBuyCounterMoney, GroupBuyOutcome, OnlineOrder, Period,
};
use rusqlite::Connection;

use crate::error::HubError;
use crate::people::{People, PeopleCache};
use crate::store::groupbuys::{DecidedGroupBuy, GroupBuyRecords};
use crate::store::kpis::KpiFacts;
use crate::store::orders::OrderRecords;
use crate::store::sales::SaleRecords;
use crate::time::ts;

/// Records the waste among a ledger part's movements (a write-off, or a
/// refunded line thrown away), once each, with the ledger's business day.
pub fn project_write_offs(
    c: &Connection,
    store: &str,
    day: &str,
    movements: &[MovementFact],
) -> Result<(), HubError> {
    let waste: Vec<&MovementFact> = movements.iter().filter(|m| m.kind == "waste").collect();
    c.add_write_offs(store, day, &waste)?;
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
    let (from, to) = (p.start(), p.end());
    let (start, end) = (ts(from), ts(to));
    let end_ahead = to + chrono::Duration::days(COHORT_DAYS as i64);
    for store in stores {
        f.sales.append(&mut c.counter_sales(store, p.from, p.to)?);
        // after the period only the 30-day repurchase rate reads sales: a
        // member's purchase, its time and member hash alone
        f.sales.append(&mut c.member_purchases(store, p.to, ahead)?);
        f.refunds.append(&mut c.counter_refunds(store, from, to)?);
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
        f.write_offs.append(&mut c.write_offs(store, p.from, p.to)?);
        for o in c.orders_placed_between(store, from, end_ahead)? {
            if let Some(o) = OnlineOrder::from_records(&o.fact, &o.fulfilment, o.cancelled) {
                f.orders.push(o);
            }
        }
        f.members.append(&mut c.community_members(store)?);
        f.activity.append(&mut c.member_activity(store, from, to)?);
        // an online order the store could not serve because it sold the
        // goods at the counter: moved to another store, or refunded
        f.oversells.append(&mut c.oversells(store, from, to)?);
        f.live_sessions.append(&mut c.live_sessions(store)?);
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
    Ok(c.newest_fact_at(store)?)
}
