//! The end-of-day report a store manager closes the till with: the business
//! day's sales by payment method, its refunds, and the cash that should be
//! in the drawer.
//!
//! Refunds carry no payment method of their own, so the report states the
//! rule it applies: a refund is paid back in cash up to the cash its sale
//! took (cash tendered minus change, less what earlier refunds of the same
//! sale already paid back in cash), and the rest by the sale's first
//! non-cash method. Cash expected = cash taken by the day's sales − cash paid
//! back by the day's refunds (no opening float is recorded).
//!
//! Group-buy commitments taken at the counter are paid there too, by the
//! method the cashier chose (cash unless said), but are no sales: the
//! report shows them on their own lines (what the day's counter
//! commitments came to, and what was given back at the counter:
//! `group_buy_refunds`, one per commitment, cancelled while open or its
//! campaign failed; the failed ones also on a line of their own), and by
//! method in each payment line's `group_buys_fen` (taken that day less
//! given back that day, paid back the way it was paid). The drawer counts
//! them: cash expected = the cash line's `net_fen + group_buys_fen`.
//! `sales_fen`, `refunds_fen` and `net_fen` stay the sales' own figures.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, NaiveTime, TimeZone};
use linli_shared::sale::PaymentMethod;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use super::{Actor, App, AppError, ts};

/// One payment method's part of the day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MethodTotal {
    pub method: PaymentMethod,
    /// Taken by the day's sales (cash net of change), fen.
    pub sales_fen: i64,
    /// Paid back by the day's refunds, fen.
    pub refunds_fen: i64,
    /// `sales_fen - refunds_fen`.
    pub net_fen: i64,
    /// Group-buy commitments taken at the counter by this method that day,
    /// less those given back that day (paid back as they were paid), fen.
    #[serde(default)]
    pub group_buys_fen: i64,
}

/// A business day at the store, as the manager closes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayReport {
    pub store_id: String,
    pub business_day: NaiveDate,
    /// Number of sales (tickets).
    pub sales_count: i64,
    /// What the day's sales came to, fen.
    pub sales_fen: i64,
    /// Number of refunds recorded that day (of any day's sales).
    pub refunds_count: i64,
    pub refunds_fen: i64,
    /// `sales_fen - refunds_fen`.
    pub net_fen: i64,
    /// Every payment method, in a fixed order (cash, WeChat Pay, Alipay, card).
    pub payments: Vec<MethodTotal>,
    /// Cash that should be in the drawer from this day's business: the
    /// sales' cash net of refunds, and the counter commitments' cash net
    /// of what was given back.
    pub cash_expected_fen: i64,
    /// Group-buy commitments taken at this counter that day (any since
    /// cancelled included), and what they came to, fen.
    pub group_buy_commitments_count: i64,
    pub group_buy_commitments_fen: i64,
    /// Counter commitments given back at the counter that day (of any
    /// day's commitments; cancelled or their campaign failed), and how
    /// much, fen.
    pub group_buy_refunds_count: i64,
    pub group_buy_refunds_fen: i64,
    /// Of them, those refunded because their campaign failed.
    #[serde(default)]
    pub group_buy_failed_refunds_count: i64,
    #[serde(default)]
    pub group_buy_failed_refunds_fen: i64,
}

const METHODS: [PaymentMethod; 4] = [
    PaymentMethod::Cash,
    PaymentMethod::WechatPay,
    PaymentMethod::Alipay,
    PaymentMethod::Card,
];

/// A sale's payments: what each method took (cash net of change).
fn sale_taken(c: &Connection, sale_id: &str) -> Result<Vec<(PaymentMethod, i64)>, AppError> {
    let change: i64 = c
        .prepare_cached("SELECT change_fen FROM sales WHERE sale_id = ?1")?
        .query_row([sale_id], |r| r.get(0))?;
    let rows: Vec<(String, i64)> = c
        .prepare_cached(
            "SELECT method, amount_fen FROM sale_payments WHERE sale_id = ?1 ORDER BY idx",
        )?
        .query_map([sale_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut change_left = change;
    Ok(rows
        .into_iter()
        .map(|(m, amount)| {
            let m = PaymentMethod::parse(&m).unwrap_or(PaymentMethod::Cash);
            let mut amount = amount;
            if m == PaymentMethod::Cash {
                let c = change_left.min(amount);
                amount -= c;
                change_left -= c;
            }
            (m, amount)
        })
        .collect())
}

/// How a refund of `amount` is paid back, given the sale's payments and the
/// cash earlier refunds of the same sale already paid back.
fn refund_split(
    taken: &[(PaymentMethod, i64)],
    earlier_cash: i64,
    amount: i64,
) -> Vec<(PaymentMethod, i64)> {
    let cash_taken: i64 = taken
        .iter()
        .filter(|(m, _)| *m == PaymentMethod::Cash)
        .map(|(_, a)| a)
        .sum();
    let cash = amount.min((cash_taken - earlier_cash).max(0));
    let other = taken
        .iter()
        .map(|(m, _)| *m)
        .find(|m| *m != PaymentMethod::Cash)
        .unwrap_or(PaymentMethod::Cash);
    let mut out = vec![(PaymentMethod::Cash, cash)];
    if amount > cash {
        out.push((other, amount - cash));
    }
    out
}

impl App {
    /// The end-of-day report of `day` (a manager's).
    pub async fn day_report(&self, actor: &Actor, day: NaiveDate) -> Result<DayReport, AppError> {
        actor.require_manager("the end-of-day report")?;
        let offset = self.settings.utc_offset;
        let local = |d: NaiveDate| {
            offset
                .from_local_datetime(&d.and_time(NaiveTime::MIN))
                .single()
                .map(|t| ts(t.to_utc()))
                .unwrap_or_default()
        };
        let from = local(day);
        let to = local(day.checked_add_days(Days::new(1)).unwrap_or(day));
        let store_id = self.settings.store_id.clone();
        self.store
            .read(move |c| {
                let mut by: BTreeMap<&'static str, (i64, i64)> = BTreeMap::new();
                let (sales_count, sales_fen): (i64, i64) = c.query_row(
                    "SELECT count(*), coalesce(sum(total_fen), 0) FROM sales WHERE day = ?1",
                    [day.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let ids: Vec<String> = c
                    .prepare("SELECT sale_id FROM sales WHERE day = ?1")?
                    .query_map([day.to_string()], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for id in &ids {
                    for (m, a) in sale_taken(c, id)? {
                        by.entry(m.as_str()).or_default().0 += a;
                    }
                }
                let refunds: Vec<(String, String, i64, String)> = c
                    .prepare(
                        "SELECT refund_id, sale_id, amount_fen, created_at FROM refunds
                         WHERE created_at >= ?1 AND created_at < ?2 ORDER BY created_at, refund_id",
                    )?
                    .query_map(params![from, to], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?;
                let mut refunds_fen = 0;
                for (refund_id, sale_id, amount, at) in &refunds {
                    refunds_fen += amount;
                    let taken = sale_taken(c, sale_id)?;
                    // cash paid back by this sale's earlier refunds
                    let earlier: Vec<i64> = c
                        .prepare_cached(
                            "SELECT amount_fen FROM refunds WHERE sale_id = ?1
                             AND (created_at < ?2 OR (created_at = ?2 AND refund_id < ?3))
                             ORDER BY created_at, refund_id",
                        )?
                        .query_map(params![sale_id, at, refund_id], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    let mut earlier_cash = 0;
                    for a in earlier {
                        earlier_cash += refund_split(&taken, earlier_cash, a)
                            .iter()
                            .filter(|(m, _)| *m == PaymentMethod::Cash)
                            .map(|(_, a)| a)
                            .sum::<i64>();
                    }
                    for (m, a) in refund_split(&taken, earlier_cash, *amount) {
                        by.entry(m.as_str()).or_default().1 += a;
                    }
                }
                // counter commitments by method: taken that day, less
                // given back that day (each paid back as it was paid)
                let mut group_buys: BTreeMap<String, i64> = BTreeMap::new();
                let taken: Vec<(String, i64)> = c
                    .prepare(
                        "SELECT k.method, coalesce(sum(coalesce(k.amount_fen,
                                    k.qty * coalesce(json_extract(g.terms, '$.price_fen'), 0))), 0)
                         FROM group_buy_commitments k LEFT JOIN group_buys g ON g.group_buy_id = k.group_buy_id
                         WHERE k.at >= ?1 AND k.at < ?2 GROUP BY k.method",
                    )?
                    .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let given: Vec<(String, i64)> = c
                    .prepare(
                        "SELECT k.method, coalesce(sum(r.amount_fen), 0)
                         FROM group_buy_refunds r JOIN group_buy_commitments k ON k.commitment_id = r.commitment_id
                         WHERE r.created_at >= ?1 AND r.created_at < ?2 GROUP BY k.method",
                    )?
                    .query_map(params![from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (m, a) in taken {
                    *group_buys.entry(m).or_default() += a;
                }
                for (m, a) in given {
                    *group_buys.entry(m).or_default() -= a;
                }
                let payments: Vec<MethodTotal> = METHODS
                    .iter()
                    .map(|m| {
                        let (s, r) = by.get(m.as_str()).copied().unwrap_or_default();
                        MethodTotal {
                            method: *m,
                            sales_fen: s,
                            refunds_fen: r,
                            net_fen: s - r,
                            group_buys_fen: group_buys.get(m.as_str()).copied().unwrap_or(0),
                        }
                    })
                    .collect();
                let cash_expected_fen = payments[0].net_fen + payments[0].group_buys_fen;
                let (group_buy_commitments_count, group_buy_commitments_fen): (i64, i64) = c
                    .query_row(
                        "SELECT count(*), coalesce(sum(coalesce(k.amount_fen,
                                    k.qty * coalesce(json_extract(g.terms, '$.price_fen'), 0))), 0)
                         FROM group_buy_commitments k LEFT JOIN group_buys g ON g.group_buy_id = k.group_buy_id
                         WHERE k.at >= ?1 AND k.at < ?2",
                        params![from, to],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                let (
                    group_buy_refunds_count,
                    group_buy_refunds_fen,
                    group_buy_failed_refunds_count,
                    group_buy_failed_refunds_fen,
                ): (i64, i64, i64, i64) = c.query_row(
                    "SELECT count(*), coalesce(sum(amount_fen), 0),
                            count(*) FILTER (WHERE reason = 'group_buy_failed'),
                            coalesce(sum(amount_fen) FILTER (WHERE reason = 'group_buy_failed'), 0)
                     FROM group_buy_refunds
                     WHERE created_at >= ?1 AND created_at < ?2",
                    params![from, to],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
                Ok::<_, AppError>(DayReport {
                    store_id,
                    business_day: day,
                    sales_count,
                    sales_fen,
                    refunds_count: refunds.len() as i64,
                    refunds_fen,
                    net_fen: sales_fen - refunds_fen,
                    payments,
                    cash_expected_fen,
                    group_buy_commitments_count,
                    group_buy_commitments_fen,
                    group_buy_refunds_count,
                    group_buy_refunds_fen,
                    group_buy_failed_refunds_count,
                    group_buy_failed_refunds_fen,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refund_goes_back_in_cash_up_to_the_cash_the_sale_took() {
        let taken = [(PaymentMethod::Cash, 500), (PaymentMethod::WechatPay, 700)];
        assert_eq!(
            refund_split(&taken, 0, 300),
            vec![(PaymentMethod::Cash, 300)]
        );
        assert_eq!(
            refund_split(&taken, 300, 400),
            vec![(PaymentMethod::Cash, 200), (PaymentMethod::WechatPay, 200)]
        );
        let card = [(PaymentMethod::Card, 900)];
        assert_eq!(
            refund_split(&card, 0, 900),
            vec![(PaymentMethod::Cash, 0), (PaymentMethod::Card, 900)]
        );
    }
}
