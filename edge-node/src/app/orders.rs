//! Community pickup orders taken at the store, and their hand-over.
//!
//! An order reserves stock (refused if not enough is available: unlike a
//! counter sale, nothing has left the shelf yet) and gets a six-digit pickup
//! code, unique among all of the store's orders so a second scan can always
//! say who handed it over. Redeeming applies the shared hand-over rule
//! ([`linli_shared::order::check_redeem`]) and, in the same transaction,
//! releases the reservation and books the goods out.
//!
//! Online orders (live, mini-app, delivery) come from the hub with signed
//! codes; this module takes only what the store manager enters.

use chrono::{DateTime, Utc};
use linli_shared::order::{
    Channel, Fulfilment, OrderStatus, PickupState, RedeemRefusal, check_redeem, is_pickup_code,
    pickup_code_from,
};
use linli_shared::stock::MovementKind;
use linli_shared::{Qty, Unit};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use linli_shared::docs::ledger::{OrderDetail, OrderFact, OrderLineFact};
use linli_shared::member::mask_phone;

use super::books::level;
use super::idempotency::{self, IdempotencyKey};
use super::replication::{LedgerFact, Publish};
use super::stock::{NewMovement, adjust_reserved, apply_and_publish};
use super::{Actor, App, AppError, invalid, parse_ts, ts, valid_phone};
use crate::store::StoreError;

pub const MAX_ORDER_LINES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub sku: String,
    /// Units for `each` products, grams for `kg` products.
    pub qty: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// Only `community` is taken at the store.
    pub channel: Channel,
    /// Only `pickup` is taken at the store.
    pub fulfilment: Fulfilment,
    pub customer: CustomerRequest,
    pub lines: Vec<OrderLineRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLineView {
    pub line_no: u32,
    pub sku: String,
    pub name: String,
    pub unit: Unit,
    pub qty: i64,
    pub unit_price_fen: i64,
    pub total_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub channel: Channel,
    pub fulfilment: Fulfilment,
    pub status: OrderStatus,
    pub pickup_code: String,
    /// Masked: `138****1234`.
    pub customer_phone: String,
    pub lines: Vec<OrderLineView>,
    pub total_fen: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub handed_over_at: Option<DateTime<Utc>>,
    pub handed_over_by: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub cancelled_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// The six-digit code of a store order, the eight-digit code of an
    /// online order, or the scanned QR payload (`LP1.…`).
    pub code: String,
}

impl App {
    /// Takes a community pickup order: reserves its stock and issues a code.
    pub async fn create_order(
        &self,
        actor: &Actor,
        key: IdempotencyKey,
        req: OrderRequest,
    ) -> Result<(OrderView, bool), AppError> {
        if req.channel != Channel::Community {
            return Err(AppError::NotTakenAtStore(format!(
                "the store takes only channel \"community\" orders; {} orders are placed at the hub",
                req.channel.as_str()
            )));
        }
        if req.fulfilment != Fulfilment::Pickup {
            return Err(AppError::NotTakenAtStore(
                "the store takes only fulfilment \"pickup\" orders; delivery orders are placed at the hub".into(),
            ));
        }
        let phone = valid_phone("customer.phone", &req.customer.phone)?;
        // the store keeps (and the ledger carries) the hash and the masked
        // phone only; the replay's fingerprint (a plain SHA-256 anyone can
        // recompute over every mobile number) takes the member hash in the
        // phone's place
        let (hash, masked) = (self.member_hash(&phone), mask_phone(&phone));
        if req.lines.is_empty() || req.lines.len() > MAX_ORDER_LINES {
            return Err(invalid(
                "lines",
                format!("an order needs 1-{MAX_ORDER_LINES} lines"),
            ));
        }
        let cat = self.catalog();
        let mut lines = Vec::with_capacity(req.lines.len());
        for (i, l) in req.lines.iter().enumerate() {
            let p = cat
                .by_sku(&l.sku)
                .ok_or_else(|| AppError::UnknownSku(l.sku.clone()))?;
            let qty = Qty::for_line(l.qty, p.unit).map_err(|source| AppError::InvalidQuantity {
                field: format!("lines[{i}].qty"),
                source,
            })?;
            let total = match p.unit {
                Unit::Each => p.price.checked_mul(qty.get()),
                Unit::Kg => p.price.per_kg_times_grams(qty.get()),
            }
            .ok_or_else(|| invalid(format!("lines[{i}].qty"), "amount overflows"))?;
            lines.push(OrderLineView {
                line_no: i as u32 + 1,
                sku: p.sku.to_string(),
                name: p.name.clone(),
                unit: p.unit,
                qty: qty.get(),
                unit_price_fen: p.price.0,
                total_fen: total.0,
            });
        }
        let mut fingerprinted = req.clone();
        fingerprinted.customer.phone = hash.clone();
        let fp = idempotency::fingerprint("order", &fingerprinted);
        let stamp = self.stamp();
        let now = stamp.at();
        let expires = now + self.settings.pickup_hold;
        let by = actor.name.clone();
        let (channel, fulfilment) = (req.channel, req.fulfilment);
        let (view, replayed) = self.write_published(stamp, move |c, p| {
                if let Some(prev) = idempotency::replay(c, &by, &key, "order", &fp)? {
                    return Ok((prev, true));
                }
                // reserve: several lines of one SKU add up
                let mut need: std::collections::BTreeMap<&str, i64> = Default::default();
                for l in &lines {
                    *need.entry(&l.sku).or_default() += l.qty;
                }
                for (sku, qty) in &need {
                    let (on_hand, reserved) = level(c, sku)?;
                    // units kept for the hub's online customers are not the store's to promise
                    let available = super::rights::store_free(c, sku, on_hand, reserved)?;
                    if available < *qty {
                        return Err(AppError::InsufficientStock {
                            sku: (*sku).to_owned(),
                            available: available.max(0),
                            requested: *qty,
                        });
                    }
                    adjust_reserved(c, sku, *qty)?;
                }
                let order_id = linli_sync::ids::ulid().to_string();
                let code = fresh_code(c)?;
                let total: i64 = lines.iter().map(|l| l.total_fen).sum();
                c.execute(
                    "INSERT INTO orders(order_id, channel, fulfilment, customer_phone, customer_hash, customer_masked,
                                        pickup_code, status, total_fen, created_at, created_by, expires_at)
                     VALUES (?1, ?2, ?3, '', ?4, ?5, ?6, 'placed', ?7, ?8, ?9, ?10)",
                    params![order_id, channel.as_str(), fulfilment.as_str(), hash, masked, code, total, ts(now), by, ts(expires)],
                )?;
                for l in &lines {
                    c.execute(
                        "INSERT INTO order_lines(order_id, line_no, sku, name, unit, qty, unit_price_fen, total_fen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![order_id, l.line_no, l.sku, l.name, l.unit.as_str(), l.qty, l.unit_price_fen, l.total_fen],
                    )?;
                }
                let view = load_order(c, &order_id)?.ok_or_else(|| AppError::OrderNotFound(order_id.clone()))?;
                idempotency::record(c, &by, &key, "order", &fp, &view, now)?;
                publish_order(c, p, &view)?;
                Ok((view, false))
            })
            .await?;
        Ok((view, replayed))
    }

    pub async fn get_order(&self, order_id: &str) -> Result<OrderView, AppError> {
        let id = order_id.to_owned();
        self.store
            .read(move |c| load_order(c, &id)?.ok_or(AppError::OrderNotFound(id)))
            .await
    }

    /// Orders in a status (newest first), for the pickup shelf.
    pub async fn list_orders(
        &self,
        status: Option<OrderStatus>,
        limit: u32,
    ) -> Result<Vec<OrderView>, AppError> {
        let limit = limit.clamp(1, 500);
        self.store
            .read(move |c| {
                let ids: Vec<String> = match status {
                    Some(s) => c
                        .prepare("SELECT order_id FROM orders WHERE status = ?1 ORDER BY created_at DESC LIMIT ?2")?
                        .query_map(params![s.as_str(), limit], |r| r.get(0))?
                        .collect::<Result<_, _>>()?,
                    None => c
                        .prepare("SELECT order_id FROM orders ORDER BY created_at DESC LIMIT ?1")?
                        .query_map([limit], |r| r.get(0))?
                        .collect::<Result<_, _>>()?,
                };
                ids.iter()
                    .filter_map(|id| load_order(c, id).transpose())
                    .collect::<Result<Vec<_>, AppError>>()
            })
            .await
    }

    /// Hands an order over by its pickup code, once.
    pub async fn redeem_pickup(&self, actor: &Actor, code: &str) -> Result<OrderView, AppError> {
        let code = code.trim().to_owned();
        if !is_pickup_code(&code) {
            return Err(invalid("code", "a pickup code is 6 digits"));
        }
        let stamp = self.stamp();
        let now = stamp.at();
        let by = actor.name.clone();
        let view = self.write_published(stamp, move |c, p| {
                let order_id: String = c
                    .query_row("SELECT order_id FROM orders WHERE pickup_code = ?1", [&code], |r| r.get(0))
                    .optional()?
                    .ok_or_else(|| AppError::PickupCodeUnknown(code.clone()))?;
                let order = load_order(c, &order_id)?.ok_or_else(|| AppError::OrderNotFound(order_id.clone()))?;
                let state = PickupState {
                    status: order.status,
                    expires_at: order.expires_at,
                    handed_over_at: order.handed_over_at,
                    handed_over_by: order.handed_over_by.clone(),
                    cancelled_at: order.cancelled_at,
                };
                check_redeem(&state, now).map_err(|r| refusal(&order_id, r))?;
                for l in &order.lines {
                    adjust_reserved(c, &l.sku, -l.qty)?;
                    apply_and_publish(c, p, &NewMovement { sku: &l.sku, kind: MovementKind::Pickup, delta: -l.qty, reason: None, ref_id: Some(&order_id), staff: &by, at: now })?;
                }
                c.execute(
                    "UPDATE orders SET status = 'handed_over', handed_over_at = ?1, handed_over_by = ?2 WHERE order_id = ?3",
                    params![ts(now), by, order_id],
                )?;
                let view = load_order(c, &order_id)?.ok_or(AppError::OrderNotFound(order_id))?;
                publish_order(c, p, &view)?;
                Ok(view)
            })
            .await?;
        Ok(view)
    }

    /// Cancels an open order and releases its reservation. Needs a manager.
    pub async fn cancel_order(&self, actor: &Actor, order_id: &str) -> Result<OrderView, AppError> {
        actor.require_manager("cancelling an order")?;
        let stamp = self.stamp();
        let now = stamp.at();
        let by = actor.name.clone();
        let id = order_id.to_owned();
        let view = self.write_published(stamp, move |c, p| {
                let order = load_order(c, &id)?.ok_or_else(|| AppError::OrderNotFound(id.clone()))?;
                match order.status {
                    OrderStatus::Placed => {}
                    OrderStatus::Cancelled => return Ok(order), // cancelling twice is a no-op
                    other => {
                        return Err(AppError::OrderNotCancellable { order_id: id, status: other.as_str().into() });
                    }
                }
                for l in &order.lines {
                    adjust_reserved(c, &l.sku, -l.qty)?;
                }
                c.execute(
                    "UPDATE orders SET status = 'cancelled', closed_at = ?1, closed_by = ?2 WHERE order_id = ?3",
                    params![ts(now), by, id],
                )?;
                let view = load_order(c, &id)?.ok_or(AppError::OrderNotFound(id))?;
                publish_order(c, p, &view)?;
                Ok(view)
            })
            .await?;
        Ok(view)
    }

    /// Releases the reservations of orders whose hold period is over. The
    /// orders stay `placed` (their codes then answer "expired"); only the
    /// stock goes back on sale. Returns how many were released.
    pub async fn release_expired_orders(&self) -> Result<usize, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        let n = self.write_published(stamp, move |c, p| {
                let ids: Vec<String> = c
                    .prepare("SELECT order_id FROM orders WHERE status = 'placed' AND expires_at <= ?1 AND closed_at IS NULL")?
                    .query_map([ts(now)], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for id in &ids {
                    if let Some(o) = load_order(c, id)? {
                        for l in &o.lines {
                            adjust_reserved(c, &l.sku, -l.qty)?;
                        }
                    }
                    c.execute(
                        "UPDATE orders SET closed_at = ?1, closed_by = 'system:expiry' WHERE order_id = ?2",
                        params![ts(now), id],
                    )?;
                    // the release is part of the order's record (a PC that
                    // takes over must not release the goods again)
                    if let Some(o) = load_order(c, id)? {
                        publish_order(c, p, &o)?;
                    }
                }
                Ok(ids.len())
            })
            .await?;
        Ok(n)
    }
}

/// Records the order's state in today's ledger (with what another PC needs
/// to hand it over: code, phone, lines, terms) and its SKUs' levels.
/// One line of a pickup order the store makes itself (a group-buy
/// participant's goods).
pub(crate) struct OwnOrder<'a> {
    pub order_id: &'a str,
    /// The participant's member hash and masked phone (never the phone).
    pub customer_hash: &'a str,
    pub customer_masked: &'a str,
    pub sku: &'a str,
    pub name: &'a str,
    pub unit: Unit,
    pub qty: i64,
    pub unit_price_fen: i64,
    pub by: &'a str,
    pub now: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

/// Makes a community pickup order with a fresh code, reserving its units,
/// in the caller's transaction (the caller checked the stock).
pub(crate) fn make_own_order(
    c: &Connection,
    p: &mut Publish<'_>,
    o: &OwnOrder<'_>,
) -> Result<OrderView, AppError> {
    adjust_reserved(c, o.sku, o.qty)?;
    let code = fresh_code(c)?;
    let total = o.qty * o.unit_price_fen;
    c.execute(
        "INSERT INTO orders(order_id, channel, fulfilment, customer_phone, customer_hash, customer_masked,
                            pickup_code, status, total_fen, created_at, created_by, expires_at)
         VALUES (?1, 'community', 'pickup', '', ?2, ?3, ?4, 'placed', ?5, ?6, ?7, ?8)",
        params![o.order_id, o.customer_hash, o.customer_masked, code, total, ts(o.now), o.by, ts(o.expires)],
    )?;
    c.execute(
        "INSERT INTO order_lines(order_id, line_no, sku, name, unit, qty, unit_price_fen, total_fen)
         VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![o.order_id, o.sku, o.name, o.unit.as_str(), o.qty, o.unit_price_fen, total],
    )?;
    let view =
        load_order(c, o.order_id)?.ok_or_else(|| AppError::OrderNotFound(o.order_id.to_owned()))?;
    publish_order(c, p, &view)?;
    Ok(view)
}

fn publish_order(c: &Connection, p: &mut Publish<'_>, o: &OrderView) -> Result<(), AppError> {
    let (hash, closed_at, closed_by): (String, Option<String>, Option<String>) = c
        .prepare_cached(
            "SELECT customer_hash, closed_at, closed_by FROM orders WHERE order_id = ?1",
        )?
        .query_row([&o.order_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let fact = OrderFact {
        order_id: o.order_id.clone(),
        status: o.status.as_str().to_owned(),
        total_fen: o.total_fen,
        created_at: ts(o.created_at),
        handed_over_at: o.handed_over_at.map(ts).unwrap_or_default(),
        handed_over_by: o.handed_over_by.clone().unwrap_or_default(),
        detail: Some(OrderDetail {
            channel: o.channel.as_str().to_owned(),
            fulfilment: o.fulfilment.as_str().to_owned(),
            customer_hash: hash,
            customer_masked: o.customer_phone.clone(),
            customer_phone: String::new(),
            pickup_code: o.pickup_code.clone(),
            created_by: o.created_by.clone(),
            expires_at: ts(o.expires_at),
            closed_at: closed_at.unwrap_or_default(),
            closed_by: closed_by.unwrap_or_default(),
            lines: o
                .lines
                .iter()
                .map(|l| OrderLineFact {
                    sku: l.sku.clone(),
                    qty: l.qty,
                    unit_price_fen: l.unit_price_fen,
                    total_fen: l.total_fen,
                })
                .collect(),
        }),
    };
    p.fact(LedgerFact::Order(fact));
    p.levels(o.lines.iter().map(|l| l.sku.as_str()));
    Ok(())
}

fn refusal(order_id: &str, r: RedeemRefusal) -> AppError {
    let order_id = order_id.to_owned();
    match r {
        RedeemRefusal::AlreadyHandedOver { at, by } => {
            AppError::PickupAlreadyHandedOver { order_id, at, by }
        }
        RedeemRefusal::Cancelled { at } => AppError::PickupCancelled { order_id, at },
        RedeemRefusal::Expired { at } => AppError::PickupExpired { order_id, at },
    }
}

/// A code no order of this store has used.
fn fresh_code(c: &Connection) -> Result<String, AppError> {
    for _ in 0..64 {
        let code = pickup_code_from(linli_sync::ids::random::<u32>());
        let taken: bool = c
            .prepare_cached("SELECT EXISTS(SELECT 1 FROM orders WHERE pickup_code = ?1)")?
            .query_row([&code], |r| r.get(0))?;
        if !taken {
            return Ok(code);
        }
    }
    Err(AppError::Store(StoreError::Sql(
        "pickup code space exhausted".into(),
    )))
}

pub(crate) fn load_order(c: &Connection, order_id: &str) -> Result<Option<OrderView>, AppError> {
    let head = c
        .prepare_cached(
            "SELECT order_id, channel, fulfilment, status, pickup_code, customer_masked, total_fen, created_at, created_by,
                    expires_at, handed_over_at, handed_over_by, closed_at, closed_by
             FROM orders WHERE order_id = ?1",
        )?
        .query_row([order_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
                r.get::<_, Option<String>>(10)?,
                r.get::<_, Option<String>>(11)?,
                r.get::<_, Option<String>>(12)?,
                r.get::<_, Option<String>>(13)?,
            ))
        })
        .optional()?;
    let Some((
        id,
        channel,
        fulfilment,
        status,
        code,
        masked,
        total,
        created,
        created_by,
        expires,
        ho_at,
        ho_by,
        closed_at,
        closed_by,
    )) = head
    else {
        return Ok(None);
    };
    let lines = c
        .prepare_cached(
            "SELECT line_no, sku, name, unit, qty, unit_price_fen, total_fen FROM order_lines WHERE order_id = ?1 ORDER BY line_no",
        )?
        .query_map([&id], |r| {
            let unit: String = r.get(3)?;
            Ok(OrderLineView {
                line_no: r.get(0)?,
                sku: r.get(1)?,
                name: r.get(2)?,
                unit: if unit == "kg" { Unit::Kg } else { Unit::Each },
                qty: r.get(4)?,
                unit_price_fen: r.get(5)?,
                total_fen: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let status = OrderStatus::parse(&status).unwrap_or(OrderStatus::Placed);
    let cancelled = status == OrderStatus::Cancelled;
    Ok(Some(OrderView {
        order_id: id,
        channel: if channel == "community" {
            Channel::Community
        } else if channel == "live" {
            Channel::Live
        } else {
            Channel::Miniapp
        },
        fulfilment: if fulfilment == "delivery" {
            Fulfilment::Delivery
        } else {
            Fulfilment::Pickup
        },
        status,
        pickup_code: code,
        customer_phone: masked,
        lines,
        total_fen: total,
        created_at: parse_ts(&created),
        created_by,
        expires_at: parse_ts(&expires),
        handed_over_at: ho_at.as_deref().map(parse_ts),
        handed_over_by: ho_by,
        cancelled_at: if cancelled {
            closed_at.as_deref().map(parse_ts)
        } else {
            None
        },
        cancelled_by: if cancelled { closed_by } else { None },
    }))
}
