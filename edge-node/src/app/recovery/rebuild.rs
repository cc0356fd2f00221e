//! Rebuilds the store's own query tables from recovered ledgers and
//! fulfilment documents, so a PC that takes over can refund a sale, hand
//! over an order or answer a second scan of a code exactly as the PC that
//! recorded them would have. That includes promotions: the coupons its
//! counter took and gave back (ledger sections `coupon_redemptions`,
//! `coupon_voids`), so a coupon used before the crash is refused as used
//! and the allotment's rest is what it was; and what the hub sent it (the
//! hub's orders documents, sections `coupons` and `markdowns`): the
//! campaigns with their allotments and recalls, and the markdowns it
//! prices with; and what it gave back of recalled allotments (ledger
//! section `coupon_returns`), so it gives nothing back twice.
//!
//! Rows already in the tables (a database restored from a backup holds
//! part of the day) are left as they are; what the documents hold beyond
//! them is added. Nothing here is written to a document: every fact below
//! is already in one.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use linli_shared::coupon::{CounterCoupon, CounterRedemption, CounterReturn, CounterVoid};
use linli_shared::docs::json::{get_record, records};
use linli_shared::docs::ledger::{
    OrderFact, RefundFact, SaleFact, read_movements, read_orders, read_refunds_where, read_sales,
};
use linli_shared::docs::{DocId, DocKind};
use linli_shared::online::FulfilmentFact;
use linli_shared::pricing::StoreMarkdowns;
use linli_sync::doc_store::Docs;
use rusqlite::{Connection, OptionalExtension, params};

use crate::app::{AppError, promotions};

mod groupbuy;

pub use groupbuy::GroupBuysRebuilt;

/// What a rebuild added to the tables.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    pub sales: usize,
    pub refunds: usize,
    pub movements: usize,
    pub orders: usize,
    pub fulfilment: usize,
    /// Counter coupon redemptions added, and voids applied to them.
    pub coupon_redemptions: usize,
    pub coupon_voids: usize,
    /// Coupon campaigns this counter takes (with their allotments), and
    /// whether markdowns were restored.
    pub coupons: usize,
    pub markdowns: bool,
    /// Sales whose ticket number another sale of this database already
    /// carries (sold on a restored backup before it reached the hub): kept
    /// under the number with a `*` suffix.
    pub duplicate_tickets: usize,
    /// Group-buy campaigns, counter commitments and their refunds added.
    pub group_buys: GroupBuysRebuilt,
}

/// Adds to the tables what the store's documents of `days` (oldest first)
/// hold and the tables do not.
pub(crate) fn tables(
    c: &Connection,
    docs: &mut Docs,
    store: &str,
    days: &[NaiveDate],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Rebuilt, AppError> {
    let mut out = Rebuilt::default();
    let mut orders: BTreeMap<String, OrderFact> = BTreeMap::new();
    let mut fulfilment: BTreeMap<String, FulfilmentFact> = BTreeMap::new();
    let mut redemptions: BTreeMap<String, CounterRedemption> = BTreeMap::new();
    let mut voids: BTreeMap<String, CounterVoid> = BTreeMap::new();
    let mut returns: BTreeMap<String, CounterReturn> = BTreeMap::new();
    let mut coupons: BTreeMap<String, CounterCoupon> = BTreeMap::new();
    let mut markdowns: Option<StoreMarkdowns> = None;
    for day in days {
        for (ledger, _) in docs.parts(c, &DocId::store_ledger(store, *day))? {
            debug_assert_eq!(ledger.kind(), DocKind::Ledger);
            let read = docs.read(c, &ledger, |d| {
                (
                    read_sales(d),
                    read_refunds_where(d, |_| true),
                    read_movements(d),
                    read_orders(d),
                    records::<CounterRedemption>(d, "coupon_redemptions"),
                    records::<CounterVoid>(d, "coupon_voids"),
                    records::<CounterReturn>(d, "coupon_returns"),
                )
            })?;
            if let Some((sales, refunds, movements, day_orders, taken, back, given)) = read {
                redemptions.extend(taken);
                voids.extend(back);
                for (id, r) in given {
                    // each a total: the largest is the last
                    if returns
                        .get(&id)
                        .is_none_or(|prev: &CounterReturn| r.returned_fen > prev.returned_fen)
                    {
                        returns.insert(id, r);
                    }
                }
                for s in &sales {
                    match sale(c, *day, s)? {
                        Added::No => {}
                        Added::Yes => out.sales += 1,
                        Added::Renumbered => {
                            out.sales += 1;
                            out.duplicate_tickets += 1;
                        }
                    }
                }
                for m in &movements {
                    out.movements += c
                        .prepare_cached(
                            "INSERT OR IGNORE INTO movements(movement_id, sku, kind, delta, reason, ref_id, staff, at)
                             SELECT ?1, ?2, ?3, ?4, NULLIF(?5, ''), NULLIF(?6, ''), ?7, ?8
                             WHERE EXISTS (SELECT 1 FROM products WHERE sku = ?2)",
                        )?
                        .execute(params![
                            m.movement_id,
                            m.sku,
                            m.kind,
                            m.delta,
                            m.reason,
                            m.ref_id,
                            m.staff,
                            m.at
                        ])?;
                }
                for r in &refunds {
                    if refund(c, r)? {
                        out.refunds += 1;
                    }
                }
                // a later day's (or part's) entry is the order's later state
                for o in day_orders {
                    orders.insert(o.order_id.clone(), o);
                }
            }
        }
        let fid = DocId::store_fulfilment(store, *day);
        if let Some(list) = docs.read(c, &fid, |d| records::<FulfilmentFact>(d, "orders"))? {
            for (id, f) in list {
                let merged = match fulfilment.remove(&id) {
                    Some(prev) => prev.merge(f),
                    None => f,
                };
                fulfilment.insert(id, merged);
            }
        }
        // what the hub sent this counter: a later day's allotment is the
        // larger (the hub only raises it), a higher version the newer list
        let hid = DocId::hub_orders(store, *day);
        let sent = docs.read(c, &hid, |d| {
            (
                records::<CounterCoupon>(d, "coupons"),
                get_record::<StoreMarkdowns>(d, "markdowns", "current"),
            )
        })?;
        if let Some((list, m)) = sent {
            for (id, cc) in list {
                let newer = coupons
                    .get(&id)
                    .is_none_or(|prev| cc.allotment.0 >= prev.allotment.0);
                if newer {
                    coupons.insert(id, cc);
                }
            }
            if let Some(m) = m
                && markdowns
                    .as_ref()
                    .is_none_or(|prev| m.version > prev.version)
            {
                markdowns = Some(m);
            }
        }
    }
    // sales first: a redemption belongs to a sale of these days
    let redemptions: Vec<_> = redemptions.into_values().collect();
    let voids: Vec<_> = voids.into_values().collect();
    (out.coupon_redemptions, out.coupon_voids) =
        promotions::restore_redemptions(c, &redemptions, &voids)?;
    let coupons: Vec<_> = coupons.into_iter().collect();
    promotions::save_coupons(c, &coupons)?;
    out.coupons = coupons.len();
    // a recalled campaign's return stays given: the counter stays closed
    let returns: Vec<_> = returns.into_values().collect();
    promotions::restore_returns(c, &returns)?;
    if let Some(m) = &markdowns {
        promotions::save_markdowns(c, m)?;
        out.markdowns = true;
    }
    for o in orders.values() {
        if order(c, o)? {
            out.orders += 1;
        }
    }
    for f in fulfilment.values() {
        out.fulfilment += fulfilment_row(c, f)?;
    }
    // after the movements: a campaign's goods in are among them
    out.group_buys = groupbuy::restore(c, docs, store, days, now)?;
    // orders restored from ledgers written before issue 12 carry the phone:
    // the store keeps only its hash
    if let Some(key) = crate::app::phones::stored_key(c)? {
        crate::app::phones::hide_plain_phones(c, &key)?;
    }
    Ok(out)
}

/// Makes every SKU's movement log add up to its recovered level: the
/// history before the recovered days is not here, so one opening movement
/// per SKU carries it (`stock.on_hand` = sum of `movements.delta`).
pub(crate) fn opening_balances(c: &Connection, at: &str) -> Result<usize, AppError> {
    let gaps: Vec<(String, i64)> = c
        .prepare(
            "SELECT s.sku, s.on_hand - COALESCE((SELECT SUM(delta) FROM movements m WHERE m.sku = s.sku), 0)
             FROM stock s",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut n = 0;
    for (sku, gap) in gaps.into_iter().filter(|(_, g)| *g != 0) {
        n += c.execute(
            "INSERT INTO movements(movement_id, sku, kind, delta, reason, ref_id, staff, at)
             VALUES (?1, ?2, 'count', ?3, ?4, NULL, 'system:recovery', ?5)",
            params![
                linli_sync::ids::ulid().to_string(),
                sku,
                gap,
                "opening balance recovered from the hub",
                at
            ],
        )?;
    }
    Ok(n)
}

enum Added {
    No,
    Yes,
    Renumbered,
}

/// A product's display fields, or the SKU itself when the catalog no
/// longer lists it.
fn product(c: &Connection, sku: &str) -> Result<(String, String, String), AppError> {
    Ok(
        c.prepare_cached("SELECT barcode, name, unit FROM products WHERE sku = ?1")?
            .query_row([sku], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?
            .unwrap_or_else(|| (String::new(), sku.to_owned(), "each".to_owned())),
    )
}

fn sale(c: &Connection, day: NaiveDate, s: &SaleFact) -> Result<Added, AppError> {
    let known: bool = c
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM sales WHERE sale_id = ?1)")?
        .query_row([&s.sale_id], |r| r.get(0))?;
    if known {
        return Ok(Added::No);
    }
    let seq: i64 = s
        .ticket_no
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let taken: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM sales WHERE ticket_no = ?1 OR (day = ?2 AND seq = ?3))",
        )?
        .query_row(params![s.ticket_no, day.to_string(), seq], |r| r.get(0))?;
    // a duplicate number keeps its receipt's digits, marked, and a sequence
    // outside the counter's range
    let (ticket, seq, added) = if taken {
        (
            format!("{}*", s.ticket_no),
            -(seq.max(1)) - i64::from(u32::MAX),
            Added::Renumbered,
        )
    } else {
        (s.ticket_no.clone(), seq, Added::Yes)
    };
    let tendered = if s.tendered_fen > 0 {
        s.tendered_fen
    } else {
        s.total_fen
    };
    c.prepare_cached(
        "INSERT INTO sales(sale_id, ticket_no, day, seq, total_fen, tendered_fen, change_fen, member_hash, cashier, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULLIF(?8, ''), ?9, ?10)",
    )?
    .execute(params![
        s.sale_id,
        ticket,
        day.to_string(),
        seq,
        s.total_fen,
        tendered,
        s.change_fen,
        s.member_hash,
        s.cashier,
        s.created_at
    ])?;
    for (i, l) in s.lines.iter().enumerate() {
        let (barcode, name, unit) = product(c, &l.sku)?;
        let unit_price = if l.unit_price_fen > 0 {
            l.unit_price_fen
        } else if unit == "kg" {
            // grams: the price per kg that gives this line's total
            (l.total_fen * 1000) / l.qty.max(1)
        } else {
            l.total_fen / l.qty.max(1)
        };
        c.prepare_cached(
            "INSERT INTO sale_lines(sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen, total_fen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            s.sale_id,
            i as u32 + 1,
            l.sku,
            barcode,
            name,
            unit,
            l.qty,
            unit_price,
            l.total_fen
        ])?;
        // a sale's movements are not in the ledger: they follow from its lines
        c.prepare_cached(
            "INSERT OR IGNORE INTO movements(movement_id, sku, kind, delta, reason, ref_id, staff, at)
             SELECT ?1, ?2, 'sale', ?3, NULL, ?4, ?5, ?6
             WHERE EXISTS (SELECT 1 FROM products WHERE sku = ?2)",
        )?
        .execute(params![
            format!("{}-{}", s.sale_id, i + 1),
            l.sku,
            -l.qty,
            s.sale_id,
            s.cashier,
            s.created_at
        ])?;
    }
    for (i, p) in s.payments.iter().enumerate() {
        c.prepare_cached(
            "INSERT INTO sale_payments(sale_id, idx, method, amount_fen) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![s.sale_id, i as u32, p.method, p.amount_fen])?;
    }
    Ok(added)
}

/// Adds a refund and marks its lines refunded; a refund whose lines were
/// not recorded (older entries) and whose amount is what was left of the
/// sale refunds every line whole.
fn refund(c: &Connection, r: &RefundFact) -> Result<bool, AppError> {
    let known: bool = c
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM refunds WHERE refund_id = ?1)
                 OR NOT EXISTS(SELECT 1 FROM sales WHERE sale_id = ?2)",
        )?
        .query_row(params![r.refund_id, r.sale_id], |row| row.get(0))?;
    if known {
        return Ok(false);
    }
    let mut lines: Vec<(u32, i64, i64, String)> = r
        .lines
        .iter()
        .map(|l| (l.line_no, l.qty, l.amount_fen, l.disposition.clone()))
        .collect();
    if lines.is_empty() {
        let left: Vec<(u32, i64, i64)> = c
            .prepare_cached(
                "SELECT line_no, qty - refunded_qty, total_fen - refunded_fen FROM sale_lines
                 WHERE sale_id = ?1 AND refunded_qty < qty ORDER BY line_no",
            )?
            .query_map([&r.sale_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        if left.iter().map(|l| l.2).sum::<i64>() == r.amount_fen {
            lines = left
                .into_iter()
                .map(|(n, q, a)| (n, q, a, "restock".to_owned()))
                .collect();
        }
    }
    c.prepare_cached(
        "INSERT INTO refunds(refund_id, sale_id, amount_fen, reason, staff, created_at)
         VALUES (?1, ?2, ?3, NULLIF(?4, ''), ?5, ?6)",
    )?
    .execute(params![
        r.refund_id,
        r.sale_id,
        r.amount_fen,
        r.reason,
        r.staff,
        r.at
    ])?;
    for (line_no, qty, amount, disposition) in &lines {
        let updated = c
            .prepare_cached(
                "UPDATE sale_lines SET refunded_qty = refunded_qty + ?1, refunded_fen = refunded_fen + ?2
                 WHERE sale_id = ?3 AND line_no = ?4 AND refunded_qty + ?1 <= qty AND refunded_fen + ?2 <= total_fen",
            )?
            .execute(params![qty, amount, r.sale_id, line_no])?;
        if updated == 1 {
            c.prepare_cached(
                "INSERT INTO refund_lines(refund_id, line_no, qty, amount_fen, disposition) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![r.refund_id, line_no, qty, amount, disposition])?;
        }
    }
    Ok(true)
}

/// Adds a pickup order taken at the counter (its latest state), or moves
/// the row a restored backup holds forward to it; entries written before orders carried their terms
/// cannot be handed over elsewhere and are skipped.
fn order(c: &Connection, o: &OrderFact) -> Result<bool, AppError> {
    let Some(d) = &o.detail else {
        return Ok(false);
    };
    let or_null = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let here: Option<(String, bool)> = c
        .prepare_cached("SELECT status, closed_at IS NOT NULL FROM orders WHERE order_id = ?1")?
        .query_row([&o.order_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((status, closed)) = here {
        // an order only moves forward (placed, then handed over or
        // cancelled; its hold released once): take the further state
        let moved =
            (status == "placed" && o.status != "placed") || (!closed && !d.closed_at.is_empty());
        if !moved {
            return Ok(false);
        }
        c.prepare_cached(
            "UPDATE orders SET status = CASE WHEN status = 'placed' THEN ?2 ELSE status END,
                 handed_over_at = COALESCE(handed_over_at, ?3), handed_over_by = COALESCE(handed_over_by, ?4),
                 closed_at = COALESCE(closed_at, ?5), closed_by = COALESCE(closed_by, ?6)
             WHERE order_id = ?1",
        )?
        .execute(params![
            o.order_id,
            o.status,
            or_null(&o.handed_over_at),
            or_null(&o.handed_over_by),
            or_null(&d.closed_at),
            or_null(&d.closed_by)
        ])?;
        return Ok(true);
    }
    let code_taken: bool = c
        .prepare_cached("SELECT EXISTS(SELECT 1 FROM orders WHERE pickup_code = ?1)")?
        .query_row([&d.pickup_code], |r| r.get(0))?;
    if code_taken {
        tracing::warn!(order = %o.order_id, "a recovered order's pickup code is taken here; not restored");
        return Ok(false);
    }
    c.prepare_cached(
        "INSERT INTO orders(order_id, channel, fulfilment, customer_phone, pickup_code, status, total_fen,
                            created_at, created_by, expires_at, handed_over_at, handed_over_by, closed_at, closed_by,
                            customer_hash, customer_masked)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        o.order_id,
        d.channel,
        d.fulfilment,
        // only an old entry has one; hashed and emptied before the end
        d.customer_phone,
        d.pickup_code,
        o.status,
        o.total_fen,
        o.created_at,
        d.created_by,
        d.expires_at,
        or_null(&o.handed_over_at),
        or_null(&o.handed_over_by),
        or_null(&d.closed_at),
        or_null(&d.closed_by),
        d.customer_hash,
        d.customer_masked
    ])?;
    for (i, l) in d.lines.iter().enumerate() {
        let (_, name, unit) = product(c, &l.sku)?;
        c.prepare_cached(
            "INSERT INTO order_lines(order_id, line_no, sku, name, unit, qty, unit_price_fen, total_fen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            o.order_id,
            i as u32 + 1,
            l.sku,
            name,
            unit,
            l.qty,
            l.unit_price_fen,
            l.total_fen
        ])?;
    }
    Ok(true)
}

/// What the store did with an online order; merged with a row already
/// here (a restored backup's older state).
fn fulfilment_row(c: &Connection, f: &FulfilmentFact) -> Result<usize, AppError> {
    let here: Option<String> = c
        .prepare_cached("SELECT fact FROM fulfilment WHERE order_id = ?1")?
        .query_row([&f.order_id], |r| r.get(0))
        .optional()?;
    let merged = match here.and_then(|s| serde_json::from_str::<FulfilmentFact>(&s).ok()) {
        Some(prev) if prev == *f => return Ok(0),
        Some(prev) => prev.merge(f.clone()),
        None => f.clone(),
    };
    let open = !(merged.handed_over_at.is_some() || merged.delivered_at.is_some());
    let at = merged
        .handed_over_at
        .clone()
        .or_else(|| merged.delivered_at.clone())
        .unwrap_or_default();
    Ok(c.prepare_cached(
        "INSERT INTO fulfilment(order_id, fact, open, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(order_id) DO UPDATE SET fact = excluded.fact, open = excluded.open",
    )?
    .execute(params![
        merged.order_id,
        serde_json::to_string(&merged).unwrap_or_default(),
        open,
        at
    ])?)
}
