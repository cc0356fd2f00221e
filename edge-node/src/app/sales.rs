//! Counter sales and refunds.
//!
//! A sale is priced from the in-memory catalog snapshot, settled against its
//! payments, and then written in one transaction with its ticket number,
//! payments, stock movements and idempotency record. It is never refused for
//! stock: the goods are in the customer's hand (on-hand may go negative and
//! the receipt says so).
//!
//! Ticket numbers are gapless per store and business day: the next is the
//! day's last sale's plus one, taken in the sale's own transaction, so a
//! refused or failed sale never consumes a number (a recovered database's
//! `ticket_counters` holds a floor from the hub's ledger).

use chrono::{DateTime, NaiveDate, Utc};
use linli_shared::pricing;
use linli_shared::sale::{Payment, PaymentMethod, settle};
use linli_shared::stock::MovementKind;
use linli_shared::ticket::TicketNo;
use linli_shared::{Fen, Qty, Unit};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use linli_shared::docs::ledger::{PaymentFact, RefundFact, RefundLineFact, SaleFact, SaleLineFact};

use super::idempotency::{self, IdempotencyKey};
use super::replication::LedgerFact;
use super::stock::{NewMovement, apply_and_publish, apply_movement};
use super::{Actor, App, AppError, invalid, parse_ts, ts, valid_phone};
use crate::store::StoreError;

pub const MAX_SALE_LINES: usize = 200;

/// One scanned or typed line. Exactly one of `barcode` and `sku`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleLineRequest {
    /// A product barcode or a scale label (`2 IIIII WWWWWW C`, weight in grams).
    #[serde(default)]
    pub barcode: Option<String>,
    #[serde(default)]
    pub sku: Option<String>,
    /// Units for `each` products (default 1), grams for `kg` products
    /// (required unless a scale label carries the weight).
    #[serde(default)]
    pub qty: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub method: PaymentMethod,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    pub lines: Vec<SaleLineRequest>,
    pub payments: Vec<PaymentRequest>,
    /// Member's mobile number; only a keyed hash of it is stored.
    #[serde(default)]
    pub member_phone: Option<String>,
    /// A coupon claimed for this store's counter: the signed code the
    /// customer shows (`LC1.…`); works offline.
    #[serde(default)]
    pub coupon: Option<String>,
}

/// A basket to price without selling it (`POST /api/v1/sales/quote`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleQuoteRequest {
    pub lines: Vec<SaleLineRequest>,
    /// A counter coupon's signed code (`LC1.…`), checked but not redeemed.
    #[serde(default)]
    pub coupon: Option<String>,
}

/// A line of a quote: as it would be on the receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuoteLine {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub unit: Unit,
    pub qty: i64,
    /// Per unit, or per kg for weighed goods, after the store's markdown.
    pub unit_price_fen: i64,
    /// The line's amount less its share of the coupon.
    pub total_fen: i64,
    pub coupon_fen: i64,
}

/// What a basket costs now: the total the sale would take, line by line,
/// and which rules gave which discount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleQuote {
    pub lines: Vec<QuoteLine>,
    pub total_fen: i64,
    /// The coupon's discount (0 without one).
    pub coupon_fen: i64,
    #[schema(value_type = Object)]
    pub pricing: pricing::PricingNote,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptLine {
    pub line_no: u32,
    pub sku: String,
    pub barcode: String,
    pub name: String,
    pub unit: Unit,
    pub qty: i64,
    /// Per unit, or per kg for weighed goods.
    pub unit_price_fen: i64,
    /// What the customer paid for the line: the unit price times the
    /// quantity, less its share of the coupon.
    pub total_fen: i64,
    /// The line's share of the coupon's discount (0 without one).
    #[serde(default)]
    pub coupon_fen: i64,
    pub refunded_qty: i64,
    pub refunded_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentLine {
    pub method: PaymentMethod,
    pub amount_fen: i64,
}

/// A SKU whose on-hand went below zero with this sale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NegativeStock {
    pub sku: String,
    pub on_hand: i64,
}

/// A sale as printed on the receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleReceipt {
    pub sale_id: String,
    /// `STORE-YYYYMMDD-NNNN`: unique in the chain, gapless per store and day.
    pub ticket_no: String,
    pub store_id: String,
    pub business_day: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub cashier: String,
    pub lines: Vec<ReceiptLine>,
    pub total_fen: i64,
    pub payments: Vec<PaymentLine>,
    pub tendered_fen: i64,
    pub change_fen: i64,
    pub member: bool,
    /// Stock that this sale drove negative (reported, never refused).
    #[serde(default)]
    pub negative_stock: Vec<NegativeStock>,
    /// Which rules priced the sale (a line's markdown; the coupon), each
    /// with its amount in fen (negative: off), and the rules' version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pricing: Option<pricing::PricingNote>,
}

/// Summary row of a day's sales.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SaleSummary {
    pub sale_id: String,
    pub ticket_no: String,
    pub total_fen: i64,
    pub refunded_fen: i64,
    pub cashier: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Back on the shelf.
    Restock,
    /// Taken back but thrown away (recorded as waste).
    Waste,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Restock => "restock",
            Disposition::Waste => "waste",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineRequest {
    pub line_no: u32,
    /// Defaults to everything not yet refunded on that line.
    #[serde(default)]
    pub qty: Option<i64>,
    #[serde(default)]
    pub disposition: Option<Disposition>,
}

/// Refund of a whole sale (no `lines`) or of some lines.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    #[serde(default)]
    pub lines: Option<Vec<RefundLineRequest>>,
    /// Default for lines without their own; `restock` if absent.
    #[serde(default)]
    pub disposition: Option<Disposition>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundedLine {
    pub line_no: u32,
    pub sku: String,
    pub qty: i64,
    pub amount_fen: i64,
    pub disposition: Disposition,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RefundReceipt {
    pub refund_id: String,
    pub sale_id: String,
    pub ticket_no: String,
    pub lines: Vec<RefundedLine>,
    pub amount_fen: i64,
    pub by: String,
    pub at: DateTime<Utc>,
    /// The refund made the sale whole again and gave its coupon back.
    #[serde(default)]
    pub coupon_restored: bool,
}

/// A priced line, before it is written.
struct Priced {
    sku: String,
    barcode: String,
    name: String,
    unit: Unit,
    qty: i64,
    unit_price: Fen,
    /// Net of the coupon's share.
    total: Fen,
    coupon: Fen,
}

impl App {
    /// Prices a sale's lines with the one pricing function of every channel
    /// ([`linli_shared::pricing`]): the store's markdowns at this moment and
    /// the coupon, if any; the coupon's discount is spread over the lines.
    fn price_lines(
        &self,
        lines: &[SaleLineRequest],
        coupon: Option<&super::promotions::SaleCoupon>,
    ) -> Result<(Vec<Priced>, pricing::PricedOrder), AppError> {
        if lines.is_empty() {
            return Err(invalid("lines", "a sale needs at least one line"));
        }
        if lines.len() > MAX_SALE_LINES {
            return Err(invalid(
                "lines",
                format!("at most {MAX_SALE_LINES} lines per sale"),
            ));
        }
        let cat = self.catalog();
        let mut out = Vec::with_capacity(lines.len());
        let mut items = Vec::with_capacity(lines.len());
        for (i, l) in lines.iter().enumerate() {
            let (p, label_grams) = match (&l.barcode, &l.sku) {
                (Some(code), None) => cat.by_scan(code).map_err(|e| match e {
                    AppError::InvalidBarcode { source, .. } => AppError::InvalidBarcode {
                        field: format!("lines[{i}].barcode"),
                        source,
                    },
                    other => other,
                })?,
                (None, Some(sku)) => (
                    cat.by_sku(sku)
                        .cloned()
                        .ok_or_else(|| AppError::UnknownSku(sku.clone()))?,
                    None,
                ),
                _ => {
                    return Err(invalid(
                        format!("lines[{i}]"),
                        "give exactly one of barcode or sku",
                    ));
                }
            };
            let raw = match (label_grams, l.qty, p.unit) {
                (Some(g), None, _) => i64::from(g),
                (Some(g), Some(q), _) if q == i64::from(g) => q,
                (Some(g), Some(q), _) => {
                    return Err(invalid(
                        format!("lines[{i}].qty"),
                        format!("{q} g conflicts with the {g} g on the scale label; leave qty out"),
                    ));
                }
                (None, Some(q), _) => q,
                (None, None, Unit::Each) => 1,
                (None, None, Unit::Kg) => {
                    return Err(invalid(
                        format!("lines[{i}].qty"),
                        format!(
                            "{} is sold by weight: scan its scale label or give qty in grams",
                            p.sku
                        ),
                    ));
                }
            };
            let qty = Qty::for_line(raw, p.unit).map_err(|source| AppError::InvalidQuantity {
                field: format!("lines[{i}].qty"),
                source,
            })?;
            items.push(pricing::Item {
                sku: p.sku.to_string(),
                category: p.category.clone(),
                unit: p.unit,
                qty: qty.get(),
                price: p.price,
                floor: Fen::ZERO,
            });
            out.push(Priced {
                sku: p.sku.to_string(),
                barcode: l.barcode.clone().unwrap_or_else(|| p.barcode.to_string()),
                name: p.name.clone(),
                unit: p.unit,
                qty: qty.get(),
                unit_price: Fen::ZERO,
                total: Fen::ZERO,
                coupon: Fen::ZERO,
            });
        }
        let terms = coupon.map(|c| c.terms.as_coupon());
        let moment = pricing::Moment {
            at: self.now(),
            utc_offset_minutes: self.settings.utc_offset.local_minus_utc() / 60,
            store_id: &self.settings.store_id,
            fulfilment: None,
            live: None,
            group_buy: None,
            coupon: terms.as_ref(),
        };
        let priced = pricing::price(&items, &moment, &self.rules()).map_err(|e| match e {
            pricing::PricingError::Overflow(i) | pricing::PricingError::Quantity(i) => {
                invalid(format!("lines[{i}].qty"), "amount overflows")
            }
        })?;
        if let Some(c) = coupon
            && priced.coupon_discount().is_none()
        {
            return Err(AppError::Coupon(
                linli_shared::coupon::CouponError::BelowMinSpend {
                    min: c.terms.min_spend.to_string(),
                },
            ));
        }
        let totals: Vec<Fen> = priced.lines.iter().map(|l| l.total).collect();
        let shares = pricing::allocate(priced.coupon_discount().unwrap_or(Fen::ZERO), &totals);
        for ((o, l), share) in out.iter_mut().zip(&priced.lines).zip(shares) {
            o.unit_price = l.unit_price;
            o.total = Fen(l.total.0 - share.0);
            o.coupon = share;
        }
        Ok((out, priced))
    }

    /// Prices a basket as [`Self::record_sale`] would at this moment (the
    /// store's markdowns, the coupon's discount spread over the lines),
    /// writing nothing: the till shows this total, so what the cashier
    /// collects is what the sale will take. A coupon is checked as at the
    /// sale (signature, store, expiry, whether it was used) but not
    /// redeemed.
    pub async fn quote_sale(&self, req: SaleQuoteRequest) -> Result<SaleQuote, AppError> {
        let coupon = match &req.coupon {
            Some(code) => Some(self.check_coupon(code).await?),
            None => None,
        };
        let (priced, order) = self.price_lines(&req.lines, coupon.as_ref())?;
        let total = Fen::checked_sum(priced.iter().map(|p| p.total))
            .ok_or_else(|| invalid("lines", "the sale's total overflows"))?;
        let lines = priced
            .iter()
            .enumerate()
            .map(|(i, p)| QuoteLine {
                line_no: i as u32 + 1,
                sku: p.sku.clone(),
                name: p.name.clone(),
                unit: p.unit,
                qty: p.qty,
                unit_price_fen: p.unit_price.0,
                total_fen: p.total.0,
                coupon_fen: p.coupon.0,
            })
            .collect();
        Ok(SaleQuote {
            lines,
            total_fen: total.0,
            coupon_fen: order.coupon_discount().map_or(0, |d| d.0),
            pricing: order.note(),
        })
    }

    /// Records a counter sale. Retried with the same key, returns the first
    /// receipt and writes nothing (the flag says it was a replay).
    pub async fn record_sale(
        &self,
        actor: &Actor,
        key: IdempotencyKey,
        req: SaleRequest,
    ) -> Result<(SaleReceipt, bool), AppError> {
        let coupon = match &req.coupon {
            Some(code) => Some(self.check_coupon(code).await?),
            None => None,
        };
        let (priced, order) = self.price_lines(&req.lines, coupon.as_ref())?;
        let total = Fen::checked_sum(priced.iter().map(|p| p.total))
            .ok_or_else(|| invalid("lines", "the sale's total overflows"))?;
        let note = order.note();
        let coupon_discount = order.coupon_discount();
        let payments: Vec<Payment> = req
            .payments
            .iter()
            .map(|p| Payment {
                method: p.method,
                amount: Fen(p.amount_fen),
            })
            .collect();
        let settlement = settle(total, &payments, self.settings.max_change)?;
        let member_hash = match &req.member_phone {
            Some(phone) => Some(self.member_hash(&valid_phone("member_phone", phone)?)),
            None => None,
        };
        // the replay's fingerprint (a plain SHA-256 anyone can recompute
        // over every mobile number) takes the member hash, not the phone
        let mut fingerprinted = req.clone();
        fingerprinted.member_phone = member_hash.clone();
        let fp = idempotency::fingerprint("sale", &fingerprinted);
        let stamp = self.stamp();
        let now = stamp.at();
        let day = self.business_day(now);
        let store_id = self.settings.store_id.clone();
        let cashier = actor.name.clone();
        let (receipt, replayed) = self.write_published(stamp, move |c, p| {
                if let Some(prev) = idempotency::replay(c, &cashier, &key, "sale", &fp)? {
                    return Ok((prev, true));
                }
                let sale_id = linli_sync::ids::ulid().to_string();
                let seq = next_ticket_seq(c, day)?;
                let ticket = TicketNo {
                    store_id: store_id.clone(),
                    day,
                    seq,
                }
                .to_string();
                c.prepare_cached(
                    "INSERT INTO sales(sale_id, ticket_no, day, seq, total_fen, tendered_fen, change_fen, member_hash, cashier, created_at, pricing)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    sale_id,
                    ticket,
                    day.to_string(),
                    seq,
                    total.0,
                    settlement.tendered.0,
                    settlement.change.0,
                    member_hash,
                    cashier,
                    ts(now),
                    serde_json::to_string(&note).unwrap_or_default()
                ])?;
                // the coupon is redeemed with the sale, or the sale is refused
                if let (Some(sc), Some(d)) = (&coupon, coupon_discount) {
                    let r = super::promotions::redeem(c, sc, &sale_id, d, now)?;
                    p.fact(LedgerFact::CouponRedemption(r));
                }
                let mut lines = Vec::with_capacity(priced.len());
                let mut negative = Vec::new();
                for (i, p) in priced.iter().enumerate() {
                    let line_no = i as u32 + 1;
                    c.prepare_cached(
                        "INSERT INTO sale_lines(sale_id, line_no, sku, barcode, name, unit, qty, unit_price_fen, total_fen, coupon_fen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    )?
                    .execute(params![
                        sale_id, line_no, p.sku, p.barcode, p.name, p.unit.as_str(), p.qty, p.unit_price.0, p.total.0, p.coupon.0
                    ])?;
                    let on_hand = apply_movement(
                        c,
                        &NewMovement {
                            sku: &p.sku,
                            kind: MovementKind::Sale,
                            delta: -p.qty,
                            reason: None,
                            ref_id: Some(&sale_id),
                            staff: &cashier,
                            at: now,
                        },
                    )?;
                    if on_hand < 0 {
                        negative.retain(|n: &NegativeStock| n.sku != p.sku);
                        negative.push(NegativeStock {
                            sku: p.sku.clone(),
                            on_hand,
                        });
                    }
                    lines.push(ReceiptLine {
                        line_no,
                        sku: p.sku.clone(),
                        barcode: p.barcode.clone(),
                        name: p.name.clone(),
                        unit: p.unit,
                        qty: p.qty,
                        unit_price_fen: p.unit_price.0,
                        total_fen: p.total.0,
                        coupon_fen: p.coupon.0,
                        refunded_qty: 0,
                        refunded_fen: 0,
                    });
                }
                for (i, p) in payments.iter().enumerate() {
                    c.prepare_cached(
                        "INSERT INTO sale_payments(sale_id, idx, method, amount_fen) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![sale_id, i as u32, p.method.as_str(), p.amount.0])?;
                }
                let receipt = SaleReceipt {
                    sale_id,
                    ticket_no: ticket,
                    store_id,
                    business_day: day,
                    created_at: now,
                    cashier,
                    lines,
                    total_fen: total.0,
                    payments: payments
                        .iter()
                        .map(|p| PaymentLine {
                            method: p.method,
                            amount_fen: p.amount.0,
                        })
                        .collect(),
                    tendered_fen: settlement.tendered.0,
                    change_fen: settlement.change.0,
                    member: member_hash.is_some(),
                    negative_stock: negative,
                    pricing: Some(note),
                };
                idempotency::record(c, &receipt.cashier, &key, "sale", &fp, &receipt, now)?;
                let fact = SaleFact {
                    sale_id: receipt.sale_id.clone(),
                    ticket_no: receipt.ticket_no.clone(),
                    created_at: ts(now),
                    cashier: receipt.cashier.clone(),
                    total_fen: receipt.total_fen,
                    lines: receipt
                        .lines
                        .iter()
                        .map(|l| SaleLineFact { sku: l.sku.clone(), qty: l.qty, total_fen: l.total_fen, unit_price_fen: l.unit_price_fen })
                        .collect(),
                    payments: receipt
                        .payments
                        .iter()
                        .map(|p| PaymentFact { method: p.method.as_str().to_owned(), amount_fen: p.amount_fen })
                        .collect(),
                    member: receipt.member,
                    tendered_fen: receipt.tendered_fen,
                    change_fen: receipt.change_fen,
                    member_hash: member_hash.clone().unwrap_or_default(),
                };
                p.fact(LedgerFact::Sale(fact));
                p.levels(receipt.lines.iter().map(|l| l.sku.as_str()));
                Ok((receipt, false))
            })
            .await?;
        Ok((receipt, replayed))
    }

    /// A sale with its current refund state.
    pub async fn get_sale(&self, sale_id: &str) -> Result<SaleReceipt, AppError> {
        let id = sale_id.to_owned();
        self.store
            .read(move |c| load_sale(c, &id)?.ok_or(AppError::SaleNotFound(id)))
            .await
    }

    /// A business day's sales, in ticket order.
    pub async fn sales_of_day(&self, day: NaiveDate) -> Result<Vec<SaleSummary>, AppError> {
        let rows = self
            .store
            .read(move |c| {
                let mut stmt = c.prepare(
                    "SELECT s.sale_id, s.ticket_no, s.total_fen,
                            (SELECT coalesce(sum(amount_fen), 0) FROM refunds r WHERE r.sale_id = s.sale_id),
                            s.cashier, s.created_at
                     FROM sales s WHERE s.day = ?1 ORDER BY s.seq",
                )?;
                let rows = stmt
                    .query_map([day.to_string()], |r| {
                        let at: String = r.get(5)?;
                        Ok(SaleSummary {
                            sale_id: r.get(0)?,
                            ticket_no: r.get(1)?,
                            total_fen: r.get(2)?,
                            refunded_fen: r.get(3)?,
                            cashier: r.get(4)?,
                            created_at: parse_ts(&at),
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .await?;
        Ok(rows)
    }

    /// Refunds a whole sale or some of its lines; goods go back on the shelf
    /// or are recorded as waste. Needs a manager.
    pub async fn refund_sale(
        &self,
        actor: &Actor,
        key: IdempotencyKey,
        sale_id: &str,
        req: RefundRequest,
    ) -> Result<(RefundReceipt, bool), AppError> {
        actor.require_manager("a refund")?;
        let fp = idempotency::fingerprint(&format!("refund:{sale_id}"), &req);
        let stamp = self.stamp();
        let now = stamp.at();
        let by = actor.name.clone();
        let sale_id = sale_id.to_owned();
        let (receipt, replayed) = self.write_published(stamp, move |c, p| {
                if let Some(prev) = idempotency::replay(c, &by, &key, "refund", &fp)? {
                    return Ok((prev, true));
                }
                let sale = load_sale(c, &sale_id)?.ok_or_else(|| AppError::SaleNotFound(sale_id.clone()))?;
                let default_disp = req.disposition.unwrap_or(Disposition::Restock);
                let wanted: Vec<(u32, Option<i64>, Disposition)> = match &req.lines {
                    Some(ls) if ls.is_empty() => return Err(invalid("lines", "leave lines out to refund the whole sale, or list at least one")),
                    Some(ls) => ls.iter().map(|l| (l.line_no, l.qty, l.disposition.unwrap_or(default_disp))).collect(),
                    None => sale
                        .lines
                        .iter()
                        .filter(|l| l.refunded_qty < l.qty)
                        .map(|l| (l.line_no, None, default_disp))
                        .collect(),
                };
                if wanted.is_empty() {
                    return Err(AppError::RefundExceedsSale(format!("sale {sale_id} is already fully refunded")));
                }
                let refund_id = linli_sync::ids::ulid().to_string();
                let mut out = Vec::new();
                let mut seen = std::collections::HashSet::new();
                for (i, (line_no, qty, disp)) in wanted.iter().enumerate() {
                    if !seen.insert(*line_no) {
                        return Err(invalid(format!("lines[{i}].line_no"), "each line may appear once"));
                    }
                    let line = sale.lines.iter().find(|l| l.line_no == *line_no).ok_or_else(|| {
                        invalid(format!("lines[{i}].line_no"), format!("sale has no line {line_no}"))
                    })?;
                    let remaining = line.qty - line.refunded_qty;
                    let q = qty.unwrap_or(remaining);
                    if q <= 0 {
                        return Err(invalid(format!("lines[{i}].qty"), "must be positive"));
                    }
                    if q > remaining {
                        return Err(AppError::RefundExceedsSale(format!(
                            "line {line_no} has {remaining} left to refund, {q} requested"
                        )));
                    }
                    let left_fen = line.total_fen - line.refunded_fen;
                    let amount = if q == remaining {
                        left_fen
                    } else {
                        // proportional, rounded half up, never more than what is left
                        ((line.total_fen * q * 2 + line.qty) / (line.qty * 2)).min(left_fen)
                    };
                    c.execute(
                        "UPDATE sale_lines SET refunded_qty = refunded_qty + ?1, refunded_fen = refunded_fen + ?2
                         WHERE sale_id = ?3 AND line_no = ?4",
                        params![q, amount, sale_id, line_no],
                    )?;
                    let refund_ref = refund_id.as_str();
                    apply_and_publish(c, p, &NewMovement { sku: &line.sku, kind: MovementKind::RefundRestock, delta: q, reason: None, ref_id: Some(refund_ref), staff: &by, at: now })?;
                    if *disp == Disposition::Waste {
                        apply_and_publish(c, p, &NewMovement { sku: &line.sku, kind: MovementKind::Waste, delta: -q, reason: Some("other: returned by customer"), ref_id: Some(refund_ref), staff: &by, at: now })?;
                    }
                    out.push(RefundedLine { line_no: *line_no, sku: line.sku.clone(), qty: q, amount_fen: amount, disposition: *disp });
                }
                let amount: i64 = out.iter().map(|l| l.amount_fen).sum();
                c.execute(
                    "INSERT INTO refunds(refund_id, sale_id, amount_fen, reason, staff, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![refund_id, sale_id, amount, req.reason, by, ts(now)],
                )?;
                for l in &out {
                    c.execute(
                        "INSERT INTO refund_lines(refund_id, line_no, qty, amount_fen, disposition) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![refund_id, l.line_no, l.qty, l.amount_fen, l.disposition.as_str()],
                    )?;
                }
                // the sale is whole again: its coupon and the money come back, once
                let whole: bool = c.query_row(
                    "SELECT NOT EXISTS(SELECT 1 FROM sale_lines WHERE sale_id = ?1 AND refunded_qty < qty)",
                    [&sale_id],
                    |r| r.get(0),
                )?;
                let restored = if whole { super::promotions::void_for_sale(c, &sale_id, now)? } else { None };
                let coupon_restored = restored.is_some();
                if let Some(v) = restored {
                    p.fact(LedgerFact::CouponVoid(v));
                    // a recalled campaign's coupon given back: its money
                    // goes back to the hub with it
                    for r in super::promotions::returns_due(c, now)? {
                        p.fact(LedgerFact::CouponReturn(r));
                    }
                }
                let receipt = RefundReceipt { refund_id, sale_id: sale_id.clone(), ticket_no: sale.ticket_no, lines: out, amount_fen: amount, by, at: now, coupon_restored };
                idempotency::record(c, &receipt.by, &key, "refund", &fp, &receipt, now)?;
                let fact = RefundFact {
                    refund_id: receipt.refund_id.clone(),
                    sale_id: receipt.sale_id.clone(),
                    amount_fen: receipt.amount_fen,
                    staff: receipt.by.clone(),
                    at: ts(now),
                    lines: receipt
                        .lines
                        .iter()
                        .map(|l| RefundLineFact {
                            line_no: l.line_no,
                            qty: l.qty,
                            amount_fen: l.amount_fen,
                            disposition: l.disposition.as_str().to_owned(),
                        })
                        .collect(),
                    reason: req.reason.clone().unwrap_or_default(),
                };
                p.fact(LedgerFact::Refund(fact));
                p.levels(receipt.lines.iter().map(|l| l.sku.as_str()));
                Ok((receipt, false))
            })
            .await?;
        Ok((receipt, replayed))
    }
}

fn next_ticket_seq(c: &Connection, day: NaiveDate) -> Result<u32, AppError> {
    // the day's last sale, or the floor a recovery set from the hub's
    // ledger, whichever is later; read, not bumped: a counter row written
    // at every sale was one more page in its commit (issue 9)
    let seq: u32 = c
        .prepare_cached(
            "SELECT max(coalesce((SELECT last_seq FROM ticket_counters WHERE day = ?1), 0),
                        coalesce((SELECT max(seq) FROM sales WHERE day = ?1), 0)) + 1",
        )?
        .query_row([day.to_string()], |r| r.get(0))?;
    Ok(seq)
}

fn load_sale(c: &Connection, sale_id: &str) -> Result<Option<SaleReceipt>, AppError> {
    let head = c
        .query_row(
            "SELECT sale_id, ticket_no, day, total_fen, tendered_fen, change_fen, member_hash, cashier, created_at, pricing
             FROM sales WHERE sale_id = ?1",
            [sale_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            },
        )
        .optional()?;
    let Some((sale_id, ticket_no, day, total, tendered, change, member, cashier, at, note)) = head
    else {
        return Ok(None);
    };
    let mut stmt = c.prepare_cached(
        "SELECT line_no, sku, barcode, name, unit, qty, unit_price_fen, total_fen, refunded_qty, refunded_fen, coupon_fen
         FROM sale_lines WHERE sale_id = ?1 ORDER BY line_no",
    )?;
    let lines = stmt
        .query_map([&sale_id], |r| {
            let unit: String = r.get(4)?;
            Ok(ReceiptLine {
                line_no: r.get(0)?,
                sku: r.get(1)?,
                barcode: r.get(2)?,
                name: r.get(3)?,
                unit: if unit == "kg" { Unit::Kg } else { Unit::Each },
                qty: r.get(5)?,
                unit_price_fen: r.get(6)?,
                total_fen: r.get(7)?,
                refunded_qty: r.get(8)?,
                refunded_fen: r.get(9)?,
                coupon_fen: r.get(10)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = c.prepare_cached(
        "SELECT method, amount_fen FROM sale_payments WHERE sale_id = ?1 ORDER BY idx",
    )?;
    let payments = stmt
        .query_map([&sale_id], |r| {
            let m: String = r.get(0)?;
            Ok(PaymentLine {
                method: PaymentMethod::parse(&m).unwrap_or(PaymentMethod::Cash),
                amount_fen: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let store_id = ticket_no
        .rsplitn(3, '-')
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    Ok(Some(SaleReceipt {
        sale_id,
        ticket_no,
        store_id,
        business_day: day.parse().unwrap_or_default(),
        created_at: parse_ts(&at),
        cashier,
        lines,
        total_fen: total,
        payments,
        tendered_fen: tendered,
        change_fen: change,
        member: member.is_some(),
        negative_stock: Vec::new(),
        pricing: note.and_then(|n| serde_json::from_str(&n).ok()),
    }))
}
