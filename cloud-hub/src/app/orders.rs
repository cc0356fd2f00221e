//! Online orders at the hub (DESIGN.md §6): customers' sessions, routing to
//! the nearest store whose rights cover the order, pricing (pickup discount,
//! delivery fee), signed pickup codes, cancellation, the status derived from
//! the hub's and the store's records, and the settlement of overdrafts.
//!
//! Every order is written in one writer transaction: the rights it consumes
//! (`hub_rights` + `hub/<S>/stock/<day>`), the order (`online_orders` +
//! `hub/<S>/orders/<day>`) and the idempotency record, so a retried request
//! returns the first answer and a crash leaves all or nothing. Routing runs
//! inside that transaction, so two orders can never both take the last unit.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use linli_shared::docs::DocId;
use linli_shared::geo::{Alternative, Coverage, GeoPoint, RouteOutcome, route};
use linli_shared::online::{
    DeliveryFact, DerivedStatus, FulfilmentFact, HubOrderFact, OnlineLine, derive_status,
    goods_left,
};
use linli_shared::order::{Channel, Fulfilment, OrderStatus};
use linli_shared::pickup::{PickupClaim, sign};
use linli_shared::pricing;
use linli_shared::rights::{OpenOrder, orders_to_release};
use linli_shared::{Fen, Qty, Unit};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::directory::Directory;
use crate::error::HubError;
use crate::error::Shortage;
use crate::error::Unserved;
use crate::error::invalid;
use crate::settings::OrderSettings;
use crate::settings::StockScheme;
use crate::store::exceptions::raise;
use crate::store::orders::OrderRecords;
use crate::store::orders::save_order;
use crate::store::rights::{HubRightsBatch, held, return_recalled, sellable};
use crate::time::{parse_ts, ts};

pub use crate::store::exceptions::Exception;

pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRef {
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub openid: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    pub sku: String,
    /// Units for `each` products, grams for `kg` products.
    pub qty: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotRequest {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `POST /api/v1/orders`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub channel: Channel,
    pub customer: CustomerRef,
    pub fulfilment: Fulfilment,
    /// Pickup: the chosen store (or give `location` to pick the nearest).
    #[serde(default)]
    pub store_id: Option<String>,
    /// Delivery: where to; pickup without `store_id`: where the customer is.
    #[serde(default)]
    pub location: Option<GeoPoint>,
    pub lines: Vec<LineRequest>,
    /// Required for channel `live`.
    #[serde(default)]
    pub live_session_id: Option<String>,
    /// Delivery window; default as soon as possible (30 min to 2 h).
    #[serde(default)]
    pub delivery_slot: Option<SlotRequest>,
    /// Delivery: the address the rider reads (compound, building, room),
    /// at most 200 characters; `location` is its point.
    #[serde(default)]
    pub address: Option<String>,
    /// A coupon the customer claimed for online use (its `claim_id`).
    #[serde(default)]
    pub coupon: Option<String>,
}

/// An order as customers and tools see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub store_id: String,
    pub store_name: String,
    pub channel: Channel,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_session_id: Option<String>,
    pub customer_id: String,
    pub fulfilment: Fulfilment,
    pub status: OrderStatus,
    pub timeline: Vec<linli_shared::online::TimelineEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    pub lines: Vec<OnlineLine>,
    pub subtotal_fen: i64,
    pub discount_fen: i64,
    pub fee_fen: i64,
    pub total_fen: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_qr: Option<String>,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_window: Option<Window>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    pub placed_at: String,
    /// Which rules priced the order, in the order they applied (a line's
    /// markdown, live or group-buy price; then the coupon and the pickup
    /// discount), each with its amount in fen (negative: off), and the
    /// rules' version ([`linli_shared::pricing`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pricing: Option<pricing::PricingNote>,
    /// The coupon claim it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    /// The order's online payment; absent when the order is not paid
    /// online (a hub without a payment provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<crate::store::payments::PaymentView>,
    /// Refunds of the order's payment, oldest first.
    #[serde(default)]
    pub refunds: Vec<crate::store::payments::RefundView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    pub start: String,
    pub end: String,
}

/// The lines `store` cannot fill.
pub(crate) fn shortages(
    c: &Connection,
    dir: &Directory,
    scheme: StockScheme,
    store: &str,
    lines: &[OnlineLine],
) -> Result<Vec<Shortage>, HubError> {
    let mut out = Vec::new();
    for l in lines {
        let available = sellable(c, scheme, store, &l.sku)?.max(0);
        if available < l.qty {
            out.push(Shortage {
                store_id: store.to_owned(),
                sku: l.sku.clone(),
                name: dir
                    .products
                    .get(&l.sku)
                    .map_or_else(|| l.sku.clone(), |p| p.name.clone()),
                requested: l.qty,
                available,
            });
        }
    }
    Ok(out)
}

/// A mobile number in the chain's one normal form
/// (`linli_shared::member::normal_phone`, as the stores normalise before
/// hashing), so a phone hashes here to what a store's counter wrote.
pub(crate) fn valid_phone(p: &str) -> Result<String, HubError> {
    linli_shared::member::normal_phone(p)
        .ok_or_else(|| invalid("customer.phone must be an 11-digit mobile number starting with 1"))
}

use linli_shared::member::mask_phone as mask;

/// A validated order, priced, before routing.
#[derive(Debug, Clone)]
pub(crate) struct Priced {
    pub channel: Channel,
    pub live_session_id: Option<String>,
    pub fulfilment: Fulfilment,
    pub store_id: Option<String>,
    pub location: Option<GeoPoint>,
    pub lines: Vec<OnlineLine>,
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub address: Option<String>,
    /// Each line's category (for category markdowns).
    pub categories: Vec<String>,
    /// The claimed coupon to redeem.
    pub coupon: Option<String>,
}

/// Checks a request against the catalog and the rules; no IO.
pub(crate) fn validate(
    req: &PlaceOrder,
    dir: &Directory,
    now: DateTime<Utc>,
) -> Result<Priced, HubError> {
    if req.channel == Channel::Live
        && req
            .live_session_id
            .as_deref()
            .is_none_or(|s| s.trim().is_empty())
    {
        return Err(invalid("live_session_id is required for channel \"live\""));
    }
    if let Some(l) = &req.live_session_id {
        linli_shared::login_guard::clean_text("live_session_id", l, 64).map_err(invalid)?;
    }
    if req.lines.is_empty() || req.lines.len() > MAX_LINES {
        return Err(invalid(format!(
            "lines: an order needs 1-{MAX_LINES} lines"
        )));
    }
    let mut merged: BTreeMap<String, i64> = BTreeMap::new();
    for (i, l) in req.lines.iter().enumerate() {
        let p = dir
            .products
            .get(&l.sku)
            .ok_or_else(|| HubError::UnknownSku(l.sku.clone()))?;
        Qty::for_line(l.qty, p.unit).map_err(|e| invalid(format!("lines[{i}].qty: {e}")))?;
        *merged.entry(l.sku.clone()).or_default() += l.qty;
    }
    let mut lines = Vec::new();
    for (sku, qty) in merged {
        let p = &dir.products[&sku];
        let total = match p.unit {
            Unit::Each => p.price.checked_mul(qty),
            Unit::Kg => p.price.per_kg_times_grams(qty),
        }
        .ok_or_else(|| invalid(format!("the amount of {sku} overflows")))?;
        lines.push(OnlineLine {
            sku: sku.clone(),
            name: p.name.clone(),
            unit: p.unit.as_str().to_owned(),
            qty,
            unit_price_fen: p.price.0,
            total_fen: total.0,
        });
    }
    let window = match req.fulfilment {
        Fulfilment::Pickup => {
            if req.store_id.is_none() && req.location.is_none() {
                return Err(invalid(
                    "a pickup order needs store_id (or location to choose the nearest store)",
                ));
            }
            if req.delivery_slot.is_some() {
                return Err(invalid("delivery_slot is only for delivery orders"));
            }
            None
        }
        Fulfilment::Delivery => {
            if req.location.is_none() {
                return Err(invalid("a delivery order needs location {lat, lon}"));
            }
            if req.store_id.is_some() {
                return Err(invalid(
                    "delivery orders are routed to the nearest store; leave store_id out",
                ));
            }
            Some(match &req.delivery_slot {
                None => (now + Duration::minutes(30), now + Duration::hours(2)),
                Some(s) => {
                    let len = s.end - s.start;
                    if s.start < now + Duration::minutes(30)
                        || s.start > now + Duration::days(2)
                        || len < Duration::minutes(30)
                        || len > Duration::hours(2)
                    {
                        return Err(invalid(
                            "delivery_slot must start 30 min to 2 days from now and last 30 min to 2 h",
                        ));
                    }
                    (s.start, s.end)
                }
            })
        }
    };
    let address = match (&req.address, req.fulfilment) {
        (None, _) => None,
        (Some(_), Fulfilment::Pickup) => {
            return Err(invalid(
                "自提订单不需要送货地址 (address is only for delivery orders)",
            ));
        }
        (Some(a), Fulfilment::Delivery) => {
            let a = a.trim();
            if a.is_empty() || a.chars().count() > 200 || a.chars().any(char::is_control) {
                return Err(invalid(
                    "送货地址需 1–200 个字：小区、楼号、门牌 (address must be 1-200 characters: compound, building, room; no control characters)",
                ));
            }
            Some(a.to_owned())
        }
    };
    if let Some(cp) = &req.coupon {
        linli_shared::login_guard::clean_text("coupon", cp, 64).map_err(invalid)?;
    }
    Ok(Priced {
        channel: req.channel,
        live_session_id: req.live_session_id.clone(),
        fulfilment: req.fulfilment,
        store_id: req.store_id.clone(),
        location: req.location,
        categories: categories(dir, &lines),
        lines,
        window,
        address,
        coupon: req.coupon.clone(),
    })
}

/// Each line's category, from the catalog.
pub(crate) fn categories(dir: &Directory, lines: &[OnlineLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            dir.products
                .get(&l.sku)
                .map(|p| p.category.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// How far what the hub may sell at `store` covers `lines`.
fn coverage(
    c: &Connection,
    scheme: StockScheme,
    store: &str,
    lines: &[OnlineLine],
) -> Result<Coverage, HubError> {
    let mut covered = Vec::new();
    for l in lines {
        if sellable(c, scheme, store, &l.sku)? >= l.qty {
            covered.push(l.sku.clone());
        }
    }
    Ok(if covered.len() == lines.len() {
        Coverage::Full
    } else if covered.is_empty() {
        Coverage::Nothing
    } else {
        Coverage::Partial { covered }
    })
}

/// Chooses the store: the pickup store if named, else the nearest serving
/// store whose rights cover every line (skipping `exclude`).
pub(crate) fn choose_store(
    c: &Connection,
    dir: &Directory,
    scheme: StockScheme,
    o: &Priced,
    exclude: Option<&str>,
) -> Result<Result<String, Unserved>, HubError> {
    if let Some(id) = &o.store_id {
        let site = dir
            .stores
            .get(id)
            .ok_or_else(|| HubError::UnknownStore(id.clone()))?;
        return Ok(match coverage(c, scheme, id, &o.lines)? {
            Coverage::Full => Ok(id.clone()),
            other => {
                // the store itself, then the nearest others that could serve part or all
                let mut alternatives = Vec::new();
                let mut consider =
                    |s: &linli_shared::geo::StoreSite, d: f64| -> Result<(), HubError> {
                        let covered = match coverage(c, scheme, &s.store_id, &o.lines)? {
                            Coverage::Full => o.lines.iter().map(|l| l.sku.clone()).collect(),
                            Coverage::Partial { covered } => covered,
                            Coverage::Nothing => return Ok(()),
                        };
                        // from the customer when the order says where they are
                        let d = o
                            .location
                            .map_or(d, |at| linli_shared::geo::distance_m(at, s.location));
                        alternatives.push(Alternative {
                            store_id: s.store_id.clone(),
                            name: s.name.clone(),
                            distance_m: d.round() as u32,
                            covered_skus: covered,
                        });
                        Ok(())
                    };
                if let Coverage::Partial { .. } = other {
                    consider(site, 0.0)?;
                }
                for (s, d) in dir.stores.nearest(site.location).skip(1).take(5) {
                    consider(s, d)?;
                }
                Err(Unserved {
                    alternatives,
                    serving_stores: 1,
                    shortages: Vec::new(),
                })
            }
        });
    }
    let at = o
        .location
        .ok_or_else(|| invalid("location is required to choose a store"))?;
    let mut failure = None;
    let outcome = route(&dir.stores, at, |s| {
        if Some(s.store_id.as_str()) == exclude {
            return Coverage::Nothing;
        }
        match coverage(c, scheme, &s.store_id, &o.lines) {
            Ok(cov) => cov,
            Err(e) => {
                failure = Some(e);
                Coverage::Nothing
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(match outcome {
        RouteOutcome::Routed { site, .. } => Ok(site.store_id.clone()),
        RouteOutcome::Unserved {
            alternatives,
            serving_stores,
        } => Err(Unserved {
            alternatives,
            serving_stores,
            shortages: Vec::new(),
        }),
    })
}

/// Records demand the hub could not serve at a store (it pulls rights).
pub(crate) fn record_wanted(
    c: &Connection,
    batch: &mut HubRightsBatch,
    store: &str,
    lines: &[OnlineLine],
) -> Result<(), HubError> {
    for l in lines {
        let short = l.qty - held(c, store, &l.sku)?.max(0);
        if short > 0 {
            batch.update(c, store, &l.sku, |h| h.wanted += short)?;
        }
    }
    Ok(())
}

/// A fresh short code, unique among the store's open orders.
fn short_code(c: &Connection, store: &str) -> Result<String, HubError> {
    for _ in 0..50 {
        let code = format!("{:08}", linli_sync::ids::random::<u32>() % 100_000_000);
        if !c.pickup_code_taken(store, &code)? {
            return Ok(code);
        }
    }
    Err(invalid("could not draw a free pickup code; try again"))
}

/// Everything needed to write an order.
pub(crate) struct NewOrder<'a> {
    pub order: &'a Priced,
    pub store: &'a linli_shared::geo::StoreSite,
    pub customer_id: &'a str,
    pub customer_phone: &'a str,
    pub replaces: Option<String>,
    /// Held at the hub until paid: the order gets a payment awaiting
    /// payment and its store does not see it yet.
    pub hold_for_payment: bool,
    /// The pickup code signed ahead, off the writer ([`sign_ahead`]); used
    /// if the order goes to the store it was signed for.
    pub signed: Option<SignedAhead>,
}

/// An order id and its pickup code, signed before the write job for the
/// store the order is expected to go to. Signing (Ed25519, ~50 µs) was ~7 %
/// of the writer's time in a live burst; on the caller's task it runs on
/// another core while the writer serves other orders.
#[derive(Debug)]
pub(crate) struct SignedAhead {
    order_id: String,
    store_id: String,
    qr: String,
}

/// Signs the pickup code of a pickup order expected at `store_id`, placed
/// `now`, under a new order id (what [`write_order`] would sign there).
pub(crate) fn sign_ahead(
    o: &Priced,
    store_id: &str,
    settings: &OrderSettings,
    key: &ed25519_dalek::SigningKey,
    now: DateTime<Utc>,
) -> Option<SignedAhead> {
    if o.fulfilment != Fulfilment::Pickup {
        return None;
    }
    let order_id = linli_sync::ids::ulid().to_string();
    let claim = pickup_claim(&order_id, store_id, o, expires_at(o, settings, now));
    Some(SignedAhead {
        qr: sign(&claim, key),
        order_id,
        store_id: store_id.to_owned(),
    })
}

/// When an order's hold ends: its delivery window's end, or the pickup
/// hold after `now`.
fn expires_at(o: &Priced, settings: &OrderSettings, now: DateTime<Utc>) -> DateTime<Utc> {
    match o.window {
        Some((_, end)) => end,
        None => now + settings.pickup_hold,
    }
}

/// What an order's pickup code says.
fn pickup_claim(order_id: &str, store_id: &str, o: &Priced, expires: DateTime<Utc>) -> PickupClaim {
    PickupClaim {
        order_id: order_id.to_owned(),
        store_id: store_id.to_owned(),
        lines: o.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect(),
        expires: expires.timestamp(),
    }
}

/// Prices an order's lines at `store` with the one pricing rule of every
/// channel ([`linli_shared::pricing`]) and the store's markdowns: the lines
/// with their prices, the quote in fen and the priced order (its rules).
/// `live`: the live session that runs for this order
/// ([`crate::app::live::offer_for`]), if any; `coupon`: a checked coupon.
pub(crate) fn price_lines(
    c: &Connection,
    settings: &OrderSettings,
    store: &str,
    o: &Priced,
    now: DateTime<Utc>,
    live: Option<&pricing::LiveOffer>,
    coupon: Option<&pricing::Coupon>,
) -> Result<(Vec<OnlineLine>, Quote, pricing::PricedOrder), HubError> {
    let items = o
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            Ok(pricing::Item {
                sku: l.sku.clone(),
                category: o.categories.get(i).cloned().unwrap_or_default(),
                unit: l
                    .unit
                    .parse()
                    .map_err(|e| invalid(format!("{}: {e}", l.sku)))?,
                qty: l.qty,
                price: Fen(l.unit_price_fen),
                floor: Fen::ZERO,
            })
        })
        .collect::<Result<Vec<_>, HubError>>()?;
    let moment = pricing::Moment {
        at: now,
        utc_offset_minutes: settings.utc_offset.local_minus_utc() / 60,
        store_id: store,
        fulfilment: Some(o.fulfilment),
        live,
        group_buy: None,
        coupon,
    };
    let rules = crate::app::markdowns::rules_for(c, settings, store)?;
    let priced = pricing::price(&items, &moment, &rules).map_err(|e| invalid(e.to_string()))?;
    let mut lines = o.lines.clone();
    for (line, p) in lines.iter_mut().zip(&priced.lines) {
        line.unit_price_fen = p.unit_price.0;
        line.total_fen = p.total.0;
    }
    let quote = Quote {
        subtotal_fen: priced.subtotal.0,
        discount_fen: priced.discount().0,
        fee_fen: priced.fee.0,
        total_fen: priced.total.0,
        coupon_fen: priced.coupon_discount().map_or(0, |d| d.0),
    };
    Ok((lines, quote, priced))
}

/// What an order comes to, before it is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quote {
    pub subtotal_fen: i64,
    /// Pickup discount (≥ 0).
    pub discount_fen: i64,
    /// Delivery fee (≥ 0).
    pub fee_fen: i64,
    /// What the customer pays.
    pub total_fen: i64,
    /// The coupon's part of `discount_fen` (0 without one).
    #[serde(default)]
    pub coupon_fen: i64,
}

/// Consumes the rights and writes the order at its store (or holds it at
/// the hub until paid). Returns the fact and the document written.
pub(crate) fn write_order(
    c: &Connection,
    batch: &mut HubRightsBatch,
    settings: &OrderSettings,
    key: &ed25519_dalek::SigningKey,
    n: NewOrder<'_>,
    now: DateTime<Utc>,
) -> Result<(HubOrderFact, Option<DocId>), HubError> {
    let o = n.order;
    let store = &n.store.store_id;
    for l in &o.lines {
        let h = batch.update(c, store, &l.sku, |h| h.consumed += l.qty)?;
        let s = crate::store::rights::store_rights(c, store, &l.sku)?;
        if settings.scheme == StockScheme::Rights && linli_shared::rights::hub_held(&s, &h) < 0 {
            // routing checked this in the same transaction; never oversell
            return Err(invalid(format!("rights for {} at {store} ran out", l.sku)));
        }
    }
    // an order with a session id gets the live prices only if that session
    // runs now at this store; the same decision counts it toward the session
    let live = match &o.live_session_id {
        Some(id) => crate::app::live::offer_for(c, id, store, now)?,
        None => None,
    };
    // a coupon is the customer's, for online use, and not in use elsewhere
    let coupon = match &o.coupon {
        Some(claim) => Some(crate::app::coupons::online_coupon(
            c,
            claim,
            n.customer_id,
            n.replaces.as_deref(),
            now,
        )?),
        None => None,
    };
    let (lines, quote, priced) = price_lines(
        c,
        settings,
        store,
        o,
        now,
        live.as_ref(),
        coupon.as_ref().map(|t| t.as_coupon()).as_ref(),
    )?;
    let coupon_discount = match (&coupon, priced.coupon_discount()) {
        (Some(_), Some(d)) => Some(d),
        (Some(_), None) if n.replaces.is_some() => {
            // a re-routed order priced below the coupon's minimum: the
            // coupon comes back rather than stop the move
            if let Some(old) = &n.replaces {
                crate::app::coupons::void(c, old, now)?;
            }
            None
        }
        (Some(t), None) => {
            return Err(HubError::Coupon(
                linli_shared::coupon::CouponError::BelowMinSpend {
                    min: t.min_spend.to_string(),
                },
            ));
        }
        (None, _) => None,
    };
    let (subtotal, discount, fee) = (quote.subtotal_fen, quote.discount_fen, quote.fee_fen);
    let expires = expires_at(o, settings, now);
    let ahead = n.signed.filter(|a| a.store_id == *store);
    let order_id = match &ahead {
        Some(a) => a.order_id.clone(),
        None => linli_sync::ids::ulid().to_string(),
    };
    let (code, qr) = if o.fulfilment == Fulfilment::Pickup {
        let qr = match ahead {
            Some(a) => a.qr,
            None => sign(&pickup_claim(&order_id, store, o, expires), key),
        };
        (Some(short_code(c, store)?), Some(qr))
    } else {
        (None, None)
    };
    let fact = HubOrderFact {
        order_id: order_id.clone(),
        store_id: store.clone(),
        channel: o.channel,
        live_session_id: o.live_session_id.clone(),
        customer_id: n.customer_id.to_owned(),
        customer_masked: mask(n.customer_phone),
        fulfilment: o.fulfilment,
        lines,
        subtotal_fen: subtotal,
        discount_fen: discount,
        fee_fen: fee,
        total_fen: quote.total_fen,
        pickup_code: code,
        pickup_qr: qr,
        expires_at: ts(expires),
        delivery: match (o.window, o.location) {
            (Some((start, end)), Some(at)) => Some(DeliveryFact {
                lat: at.lat,
                lon: at.lon,
                store_lat: n.store.location.lat,
                store_lon: n.store.location.lon,
                window_start: ts(start),
                window_end: ts(end),
                address: o.address.clone(),
            }),
            _ => None,
        },
        placed_at: ts(now),
        cancelled_at: None,
        cancel_reason: None,
        replaced_by: None,
        replaces: n.replaces.clone(),
        reconsumed_at: None,
        pricing: Some(priced.note()),
        coupon_claim_id: o.coupon.clone(),
    };
    if let (Some(t), Some(d), Some(claim)) = (&coupon, coupon_discount, &o.coupon) {
        crate::app::coupons::redeem_online(
            c,
            claim,
            t,
            &fact.order_id,
            n.replaces.as_deref(),
            d,
            now,
        )?;
    }
    if n.hold_for_payment
        && let Some(pay) = &settings.payment
    {
        crate::store::payments::open(
            c,
            crate::store::payments::Subject::Order,
            &order_id,
            quote.total_fen,
            now,
            now + pay.unpaid_timeout,
        )?;
    }
    let day = now.with_timezone(&settings.utc_offset).date_naive();
    let doc = save_order(c, &fact, None, day)?;
    if let Some(l) = &live {
        crate::app::live::attribute(c, &l.session_id, &fact.order_id)?;
    }
    Ok((fact, doc))
}

pub(crate) fn view(dir: &Directory, fact: &HubOrderFact, f: Option<&FulfilmentFact>) -> OrderView {
    let DerivedStatus {
        status,
        timeline,
        conflict,
    } = derive_status(fact, f);
    OrderView {
        order_id: fact.order_id.clone(),
        store_id: fact.store_id.clone(),
        store_name: dir
            .stores
            .get(&fact.store_id)
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        channel: fact.channel,
        live_session_id: fact.live_session_id.clone(),
        customer_id: fact.customer_id.clone(),
        fulfilment: fact.fulfilment,
        status,
        timeline,
        conflict,
        lines: fact.lines.clone(),
        subtotal_fen: fact.subtotal_fen,
        discount_fen: fact.discount_fen,
        fee_fen: fact.fee_fen,
        total_fen: fact.total_fen,
        pickup_code: fact.pickup_code.clone(),
        pickup_qr: fact.pickup_qr.clone(),
        expires_at: fact.expires_at.clone(),
        delivery_window: fact.delivery.as_ref().map(|d| Window {
            start: d.window_start.clone(),
            end: d.window_end.clone(),
        }),
        cancel_reason: fact.cancel_reason.clone(),
        replaced_by: fact.replaced_by.clone(),
        replaces: fact.replaces.clone(),
        placed_at: fact.placed_at.clone(),
        pricing: fact.pricing.clone(),
        coupon: fact.coupon_claim_id.clone(),
        payment: None,
        refunds: Vec::new(),
    }
}

/// [`view`] with the order's payment and refunds.
pub(crate) fn view_paid(
    c: &Connection,
    dir: &Directory,
    fact: &HubOrderFact,
    f: Option<&FulfilmentFact>,
) -> Result<OrderView, HubError> {
    let mut v = view(dir, fact, f);
    let (payment, refunds) = crate::store::payments::views(c, &fact.order_id)?;
    // the signed pickup code is good at the store even offline: nobody
    // holds it before the order is paid
    if payment.as_ref().is_some_and(|p| p.state != "paid") {
        v.pickup_code = None;
        v.pickup_qr = None;
    }
    v.payment = payment;
    v.refunds = refunds;
    Ok(v)
}

/// Cancels an order at the hub and releases its rights (if the goods have
/// not left the store as far as the hub knows). An unpaid payment closes; a
/// paid one is refunded in full through the refund queue, in this same
/// transaction (except when the order moved to another store: the money
/// stays with the customer's order there).
#[allow(clippy::too_many_arguments)]
pub(crate) fn cancel(
    c: &Connection,
    batch: &mut HubRightsBatch,
    fact: &mut HubOrderFact,
    f: Option<&FulfilmentFact>,
    reason: &str,
    now: DateTime<Utc>,
    day: NaiveDate,
) -> Result<Option<DocId>, HubError> {
    fact.cancelled_at = Some(ts(now));
    fact.cancel_reason = Some(reason.to_owned());
    if reason != "rerouted" {
        // the coupon and its budget come back, once
        crate::app::coupons::void(c, &fact.order_id, now)?;
    }
    for l in &fact.lines {
        batch.update(c, &fact.store_id, &l.sku, |h| h.released += l.qty)?;
    }
    if let Some(p) = crate::store::payments::get(c, &fact.order_id)? {
        use linli_shared::payment::PaymentState;
        match p.state {
            PaymentState::AwaitingPayment => {
                crate::store::payments::close(c, &fact.order_id, now)?;
            }
            PaymentState::Paid if reason != "rerouted" => {
                // a full refund is the payment's first: any limits admit it
                super::refunds::enqueue_refund(
                    c,
                    &linli_shared::payment::RefundLimits::default(),
                    &crate::store::payments::NewRefund {
                        subject_id: &fact.order_id,
                        refund_id: &format!("{}-cancel", fact.order_id),
                        amount_fen: p.amount_fen,
                        total_fen: p.amount_fen,
                        reason,
                    },
                    now,
                )?;
            }
            PaymentState::Paid | PaymentState::Closed => {}
        }
    }
    Ok(save_order(c, fact, f, day)?)
}

/// What the hub does after learning something from a store: re-consume
/// rights of cancelled orders the store handed over anyway, answer recalls,
/// and release open orders while the hub holds negative rights (re-route,
/// else refund). `skus` limits the rights looked at to those that can have
/// moved (`None`: all of the store's). Returns the documents it changed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn reconcile(
    c: &Connection,
    dir: &Directory,
    settings: &OrderSettings,
    key: &ed25519_dalek::SigningKey,
    store: &str,
    skus: Option<&std::collections::BTreeSet<String>>,
    now: DateTime<Utc>,
) -> Result<Vec<DocId>, HubError> {
    let day = now.with_timezone(&settings.utc_offset).date_naive();
    let mut batch = HubRightsBatch::default();
    let mut touched = Vec::new();
    // 1. cancelled at the hub, handed over at the store: the physical fact wins
    for id in c.conflicted_order_ids(store)? {
        let Some((mut fact, f)) = c.order(&id)? else {
            continue;
        };
        if fact.reconsumed_at.is_some() {
            continue;
        }
        for l in &fact.lines {
            batch.update(c, store, &l.sku, |h| h.consumed += l.qty)?;
        }
        fact.reconsumed_at = Some(ts(now));
        touched.extend(save_order(c, &fact, f.as_ref(), day)?);
        let detail = derive_status(&fact, f.as_ref())
            .conflict
            .unwrap_or_default();
        raise(c, store, &id, "cancelled_but_handed_over", &detail, now)?;
    }
    // 2. recalls are answered first: a recall never releases an order
    return_recalled(c, &mut batch, store, skus)?;
    // 3. an overdraft: the hub gives up the newest open orders
    // (a naive counter has no rights to settle: what it oversold stays open)
    let deficits = match settings.scheme {
        StockScheme::Rights => crate::store::rights::deficits(c, store, skus)?,
        StockScheme::Naive => Default::default(),
    };
    if !deficits.is_empty() {
        let open = c.open_order_ids_of_store_newest_first(store)?;
        let mut candidates = Vec::new();
        for id in &open {
            if let Some((fact, _)) = c.order(id)? {
                candidates.push(OpenOrder {
                    order_id: id.clone(),
                    lines: fact.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect(),
                });
            }
        }
        for id in orders_to_release(&deficits, &candidates) {
            let Some((mut fact, f)) = c.order(&id)? else {
                continue;
            };
            if f.as_ref().is_some_and(goods_left) {
                continue;
            }
            // release here first, so the re-route sees the rights as they are
            let priced = Priced {
                channel: fact.channel,
                live_session_id: fact.live_session_id.clone(),
                fulfilment: fact.fulfilment,
                store_id: None,
                location: match &fact.delivery {
                    Some(d) => GeoPoint::new(d.lat, d.lon).ok(),
                    None => dir.stores.get(store).map(|s| s.location),
                },
                categories: categories(dir, &fact.lines),
                lines: fact.lines.clone(),
                window: fact
                    .delivery
                    .as_ref()
                    .map(|d| (parse_ts(&d.window_start), parse_ts(&d.window_end))),
                address: fact.delivery.as_ref().and_then(|d| d.address.clone()),
                coupon: fact.coupon_claim_id.clone(),
            };
            // an unpaid order is not moved: it is cancelled and its
            // payment closed (the customer paid nothing)
            let unpaid = crate::store::payments::held(c, &id)?;
            let target = match priced.location {
                Some(_) if !unpaid => {
                    choose_store(c, dir, settings.scheme, &priced, Some(store))?.ok()
                }
                _ => None,
            };
            let (reason, kind, detail) = match target.and_then(|t| dir.stores.get(&t).cloned()) {
                Some(site) => {
                    let (new, doc) = write_order(
                        c,
                        &mut batch,
                        settings,
                        key,
                        NewOrder {
                            order: &priced,
                            store: &site,
                            customer_id: &fact.customer_id,
                            customer_phone: &fact.customer_masked,
                            replaces: Some(id.clone()),
                            hold_for_payment: false,
                            signed: None,
                        },
                        now,
                    )?;
                    touched.extend(doc);
                    fact.replaced_by = Some(new.order_id.clone());
                    let detail = format!(
                        "store {store} sold the goods at the counter; order moved to {} as {}",
                        site.store_id, new.order_id
                    );
                    ("rerouted", "rerouted", detail)
                }
                None => {
                    let detail = format!(
                        "store {store} sold the goods at the counter and no other store can serve; refund {} fen",
                        fact.total_fen
                    );
                    ("oversold_at_store", "refunded_oversold", detail)
                }
            };
            touched.extend(cancel(
                c,
                &mut batch,
                &mut fact,
                f.as_ref(),
                reason,
                now,
                day,
            )?);
            raise(c, store, &id, kind, &detail, now)?;
        }
    }
    touched.extend(batch.flush(day));
    touched.sort();
    touched.dedup();
    Ok(touched)
}

/// Takes a store's fulfilment records into the orders table (at `now`).
pub(crate) fn project_fulfilment(
    c: &Connection,
    records: &[(String, FulfilmentFact)],
    now: DateTime<Utc>,
) -> Result<(), HubError> {
    for (id, f) in records {
        let Some((fact, old)) = c.order(id)? else {
            // handed over from a QR before the hub's record exists? The hub
            // writes the order before anyone has the code, so this is a
            // record of an order the hub lost: keep it for a manager.
            tracing::warn!(order_id = %id, "fulfilment for an order the hub does not know");
            continue;
        };
        let merged = match old {
            Some(o) => f.clone().merge(o),
            None => f.clone(),
        };
        let d = derive_status(&fact, Some(&merged));
        if d.status == OrderStatus::Cancelled {
            // cancelled at the store: the coupon and its budget come back, once
            crate::app::coupons::void(c, id, now)?;
        } else if d.conflict.is_some() {
            // cancelled here, but the goods went out: the coupon was given
            crate::app::coupons::restore(c, id)?;
        }
        c.set_fulfilment(id, &merged, &d)?;
    }
    Ok(())
}
