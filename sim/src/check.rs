//! The invariants, read from the replicas' SQLite files as a person
//! auditing them would (read-only connections beside the writers).
//!
//! - **No acknowledged sale lost, none doubled, nothing half-written**: a
//!   store's `sales` are exactly the sales its counter was answered with
//!   (an answer the client never saw included), with their totals.
//! - **No phantom at the hub**: every sale the hub projected is one its
//!   store committed, with the same total.
//! - **Nothing the hub held is lost**: a sale the hub once held it holds
//!   after any cut, crash or restart.
//! - **Convergence**: once the network is idle, the hub holds every sale of
//!   every store and the stores' stock levels as the stores hold them.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use rusqlite::{Connection, OpenFlags};

/// Sale id → total, as a replica holds them.
pub type Sales = BTreeMap<String, i64>;
/// SKU → units on hand.
pub type Levels = BTreeMap<String, i64>;

/// Read-only connections to the replicas' files, kept for the run: a new
/// connection parses the whole schema again (that was half a run's time).
#[derive(Debug, Default)]
pub struct Auditor {
    conns: HashMap<PathBuf, Connection>,
}

impl Auditor {
    fn open(&mut self, db: &Path) -> anyhow::Result<&Connection> {
        if !self.conns.contains_key(db) {
            let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("open {}", db.display()))?;
            self.conns.insert(db.to_owned(), c);
        }
        self.conns
            .get(db)
            .ok_or_else(|| anyhow::anyhow!("{} not open", db.display()))
    }

    /// Closes the connection to `db` (a file about to be removed).
    pub fn forget(&mut self, db: &Path) {
        self.conns.remove(db);
    }

    /// A store's sales.
    pub fn store_sales(&mut self, db: &Path) -> anyhow::Result<Sales> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached("SELECT sale_id, total_fen FROM sales")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A store's stock levels.
    pub fn store_levels(&mut self, db: &Path) -> anyhow::Result<Levels> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached("SELECT sku, on_hand FROM stock")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sales the hub projected, per store.
    pub fn hub_sales(&mut self, db: &Path) -> anyhow::Result<BTreeMap<String, Sales>> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached("SELECT store_id, sale_id, total_fen FROM hub_sales")?;
        let mut out: BTreeMap<String, Sales> = BTreeMap::new();
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            out.entry(r.get(0)?)
                .or_default()
                .insert(r.get(1)?, r.get(2)?);
        }
        Ok(out)
    }

    /// The stock levels the hub projected for `store`.
    pub fn hub_levels(&mut self, db: &Path, store: &str) -> anyhow::Result<Levels> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached("SELECT sku, on_hand FROM hub_stock WHERE store_id = ?1")?;
        let rows = st.query_map([store], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A campaign's counter commitments at the hub: `<store>/<commitment>` →
    /// whether it counts (`active`) or was cancelled, and why.
    pub fn hub_counter_commitments(
        &mut self,
        db: &Path,
        group_buy: &str,
    ) -> anyhow::Result<BTreeMap<String, (String, Option<String>)>> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached(
            "SELECT commitment_id, status, cancel_reason FROM group_buy_commitments
             WHERE group_buy_id = ?1 AND source = 'counter'",
        )?;
        let rows = st.query_map([group_buy], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The online orders holding a coupon of campaign `coupon` at the hub
    /// (its redemptions not voided): order id → claim id.
    pub fn hub_online_coupons(
        &mut self,
        db: &Path,
        coupon: &str,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached(
            "SELECT subject_id, claim_id FROM coupon_redemptions
             WHERE coupon_id = ?1 AND channel = 'online' AND voided_at IS NULL",
        )?;
        let rows = st.query_map([coupon], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the hub counts of campaign `coupon` on orders it cancelled and
    /// a store handed over anyway (the money was given; the order's
    /// conflict is a manager's), fen.
    pub fn hub_conflicted_coupon_fen(&mut self, db: &Path, coupon: &str) -> anyhow::Result<i64> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached(
            "SELECT COALESCE(SUM(r.discount_fen), 0) FROM coupon_redemptions r
             JOIN online_orders o ON o.order_id = r.subject_id
             WHERE r.coupon_id = ?1 AND r.channel = 'online' AND r.voided_at IS NULL
               AND o.conflict IS NOT NULL",
        )?;
        Ok(st.query_row([coupon], |r| r.get(0))?)
    }

    /// A store's refunds, as it holds them.
    pub fn store_refunds(&mut self, db: &Path) -> anyhow::Result<Refunds> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached("SELECT refund_id, sale_id, amount_fen FROM refunds")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The refunds the hub projected for `store`.
    pub fn hub_refunds(&mut self, db: &Path, store: &str) -> anyhow::Result<Refunds> {
        let c = self.open(db)?;
        let mut st = c.prepare_cached(
            "SELECT refund_id, sale_id, amount_fen FROM hub_refunds WHERE store_id = ?1",
        )?;
        let rows = st.query_map([store], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A store's sales are exactly what its counter answered.
pub fn store_holds_what_it_answered(
    store: &str,
    held: &Sales,
    answered: &Sales,
) -> anyhow::Result<()> {
    let lost: Vec<_> = answered.keys().filter(|k| !held.contains_key(*k)).collect();
    ensure!(lost.is_empty(), "{store}: answered sales lost: {lost:?}");
    let extra: Vec<_> = held.keys().filter(|k| !answered.contains_key(*k)).collect();
    ensure!(
        extra.is_empty(),
        "{store}: sales no answer gave (doubled or half-written): {extra:?}"
    );
    for (id, total) in answered {
        ensure!(
            held[id] == *total,
            "{store}: sale {id} holds total {} but was answered {total}",
            held[id]
        );
    }
    Ok(())
}

/// The hub holds only sales the store committed, with their totals, and
/// never less than it once held.
pub fn hub_holds_only_real_sales(
    store: &str,
    at_hub: &Sales,
    committed: &Sales,
    once_held: &BTreeSet<String>,
) -> anyhow::Result<()> {
    for (id, total) in at_hub {
        match committed.get(id) {
            None => anyhow::bail!("{store}: the hub holds sale {id} the store never committed"),
            Some(t) => ensure!(
                t == total,
                "{store}: the hub holds sale {id} at {total}, the store at {t}"
            ),
        }
    }
    let lost: Vec<_> = once_held
        .iter()
        .filter(|k| !at_hub.contains_key(*k))
        .collect();
    ensure!(
        lost.is_empty(),
        "{store}: the hub lost sales it held: {lost:?}"
    );
    Ok(())
}

/// Once idle, the hub holds what the store holds.
pub fn converged(
    store: &str,
    at_hub: &Sales,
    committed: &Sales,
    hub_levels: &Levels,
    levels: &Levels,
) -> anyhow::Result<()> {
    let missing: Vec<_> = committed
        .keys()
        .filter(|k| !at_hub.contains_key(*k))
        .collect();
    ensure!(
        missing.is_empty(),
        "{store}: idle, and the hub lacks {} sales: {missing:?}",
        missing.len()
    );
    let differ: Vec<_> = levels
        .iter()
        .filter(|(sku, n)| hub_levels.get(*sku) != Some(n))
        .map(|(sku, n)| format!("{sku}: store {n}, hub {:?}", hub_levels.get(sku)))
        .collect();
    ensure!(
        differ.is_empty(),
        "{store}: idle, and stock differs: {differ:?}"
    );
    Ok(())
}

/// A store's refunds: refund id → (sale id, amount).
pub type Refunds = BTreeMap<String, (String, i64)>;

/// **Exactly-once refunds**: a store holds exactly the refunds it answered,
/// none gives back more than its sale took, and the hub holds only those
/// (all of them once `idle`).
pub fn refunds_once(
    store: &str,
    held: &Refunds,
    answered: &Refunds,
    at_hub: &Refunds,
    sales: &Sales,
    idle: bool,
) -> anyhow::Result<()> {
    ensure!(
        held == answered,
        "{store}: refunds held {held:?}, answered {answered:?}"
    );
    let mut per_sale: BTreeMap<&str, i64> = BTreeMap::new();
    for (sale, amount) in held.values() {
        *per_sale.entry(sale).or_default() += amount;
    }
    for (sale, back) in per_sale {
        let took = sales.get(sale).copied().unwrap_or(0);
        ensure!(
            back <= took,
            "{store}: sale {sale} took {took} and gave back {back}"
        );
    }
    for (id, r) in at_hub {
        ensure!(
            held.get(id) == Some(r),
            "{store}: the hub holds refund {id} {r:?}, the store {:?}",
            held.get(id)
        );
    }
    if idle {
        ensure!(
            at_hub.len() == held.len(),
            "{store}: idle, and the hub holds {} of {} refunds",
            at_hub.len(),
            held.len()
        );
    }
    Ok(())
}
