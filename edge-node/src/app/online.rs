//! Online orders at the store (DESIGN.md §6): the hub routes them here in
//! `hub/<S>/orders/<day>`; the store records what it does with them in
//! `store/<S>/fulfilment/<day>` (accept, picked, ready, handed over, riders).
//!
//! Hand-over works with no hub at hand: a scanned QR payload is verified
//! against the hub's Ed25519 key ([`linli_shared::pickup`]) and carries the
//! lines, so even an order that has not reached the store yet is shown and
//! handed over; the short eight-digit code needs the order to have synced.
//! A code is redeemed once (the fulfilment row says when and by whom), only
//! at its own store. Handing goods over books them out and moves their units
//! out of what the store keeps for the hub (`delivered`), in the same commit.
//!
//! Status is never stored here: it is derived from the hub's and the store's
//! records ([`linli_shared::online::derive_status`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use linli_shared::online::{FulfilmentFact, HubOrderFact, derive_status, goods_left};
use linli_shared::order::{Fulfilment, OrderStatus, is_pickup_code};
use linli_shared::pickup::{self, PickupCodeError, is_qr_payload};
use linli_shared::stock::MovementKind;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::replication::Publish;
use super::stock::{NewMovement, apply_and_publish};
use super::{Actor, App, AppError, invalid, parse_ts, ts};

/// Length of the hub's short pickup codes (the store's own are six digits).
pub const ONLINE_CODE_DIGITS: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickupLine {
    pub sku: String,
    pub name: String,
    pub unit: String,
    pub qty: i64,
}

/// An online order as the store's screens show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnlineOrderView {
    pub order_id: String,
    /// Always `online`.
    pub kind: String,
    pub status: OrderStatus,
    pub fulfilment: Fulfilment,
    pub customer_masked: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
    pub lines: Vec<PickupLine>,
    pub total_fen: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<linli_shared::online::DeliveryFact>,
    pub fulfilment_record: FulfilmentFact,
    /// Whether the hub's record of the order has reached the store.
    pub synced: bool,
    /// Verified from a signed QR code alone (the order had not synced).
    pub verified_offline: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// What a code stands for, before anything is handed over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)] // built once per scan, returned at once
pub enum PickupPreview {
    Online(OnlineOrderView),
    Community(super::orders::OrderView),
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchRequest {
    /// A rider of the store; default: the first free one, else the courier.
    #[serde(default)]
    pub rider: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RiderRequest {
    pub name: String,
    pub phone: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RiderView {
    pub name: String,
    pub phone: String,
    pub active: bool,
    /// The order the rider is out with, if any.
    pub busy_with: Option<String>,
}

/// A fulfilment step the store takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Accept,
    Pick,
    Ready,
    Delivered,
}

/// What was resolved from a scanned or typed code.
enum Resolved {
    Community(String),
    Online {
        order_id: String,
        claim: Option<pickup::PickupClaim>,
    },
}

pub(crate) fn load_hub_fact(c: &Connection, id: &str) -> Result<Option<HubOrderFact>, AppError> {
    let raw: Option<String> = c
        .prepare_cached("SELECT fact FROM online_orders WHERE order_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

fn load_fulfilment(c: &Connection, id: &str) -> Result<Option<FulfilmentFact>, AppError> {
    let raw: Option<String> = c
        .prepare_cached("SELECT fact FROM fulfilment WHERE order_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
}

/// The store's record of an order, or a fresh one.
fn fulfilment_or_new(c: &Connection, id: &str) -> Result<FulfilmentFact, AppError> {
    Ok(load_fulfilment(c, id)?.unwrap_or_else(|| FulfilmentFact::new(id)))
}

/// Records of orders not finished yet (out with a rider or courier, or
/// waiting at the counter).
fn open_fulfilment(c: &Connection) -> Result<Vec<FulfilmentFact>, AppError> {
    let rows: Vec<String> = c
        .prepare_cached("SELECT fact FROM fulfilment WHERE open = 1")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

fn save_fulfilment(
    c: &Connection,
    p: &mut Publish<'_>,
    f: &FulfilmentFact,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let open = !(f.handed_over_at.is_some() || f.delivered_at.is_some());
    c.prepare_cached(
        "INSERT INTO fulfilment(order_id, fact, open, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(order_id) DO UPDATE SET fact = excluded.fact, open = excluded.open, updated_at = excluded.updated_at",
    )?
    .execute(params![
        f.order_id,
        serde_json::to_string(f).unwrap_or_default(),
        open,
        ts(now)
    ])?;
    p.fulfilment(f.clone());
    Ok(())
}

impl App {
    fn line_view(&self, sku: &str, qty: i64) -> PickupLine {
        let cat = self.catalog();
        let p = cat.by_sku(sku);
        PickupLine {
            sku: sku.to_owned(),
            name: p.map(|p| p.name.clone()).unwrap_or_else(|| sku.to_owned()),
            unit: p.map_or("each", |p| p.unit.as_str()).to_owned(),
            qty,
        }
    }

    fn view(
        &self,
        hub: Option<HubOrderFact>,
        f: Option<FulfilmentFact>,
        claim: Option<&pickup::PickupClaim>,
        order_id: &str,
    ) -> OnlineOrderView {
        let f = f.unwrap_or_else(|| FulfilmentFact::new(order_id));
        match hub {
            Some(h) => {
                let d = derive_status(&h, Some(&f));
                OnlineOrderView {
                    order_id: h.order_id.clone(),
                    kind: "online".into(),
                    status: d.status,
                    fulfilment: h.fulfilment,
                    customer_masked: h.customer_masked.clone(),
                    pickup_code: h.pickup_code.clone(),
                    lines: h
                        .lines
                        .iter()
                        .map(|l| PickupLine {
                            sku: l.sku.clone(),
                            name: l.name.clone(),
                            unit: l.unit.clone(),
                            qty: l.qty,
                        })
                        .collect(),
                    total_fen: h.total_fen,
                    placed_at: Some(h.placed_at.clone()),
                    expires_at: Some(h.expires_at.clone()),
                    delivery: h.delivery.clone(),
                    fulfilment_record: f,
                    synced: true,
                    verified_offline: false,
                    conflict: d.conflict,
                }
            }
            None => {
                let lines: Vec<(String, i64)> = match claim {
                    Some(c) => c.lines.clone(),
                    None => f.lines.clone(),
                };
                let status = if f.handed_over_at.is_some() {
                    OrderStatus::HandedOver
                } else {
                    OrderStatus::Placed
                };
                OnlineOrderView {
                    order_id: order_id.to_owned(),
                    kind: "online".into(),
                    status,
                    fulfilment: Fulfilment::Pickup,
                    customer_masked: String::new(),
                    pickup_code: None,
                    lines: lines.iter().map(|(s, q)| self.line_view(s, *q)).collect(),
                    total_fen: 0,
                    placed_at: None,
                    expires_at: claim.map(|c| ts(c.expires_at())),
                    delivery: None,
                    fulfilment_record: f,
                    synced: false,
                    verified_offline: claim.is_some(),
                    conflict: None,
                }
            }
        }
    }

    /// Resolves a code to an order, checking a QR signature, its store and
    /// expiry. Reads only.
    fn resolve_code(&self, c: &Connection, code: &str) -> Result<Resolved, AppError> {
        let code = code.trim();
        if is_qr_payload(code) {
            let key = self.pickup_key().ok_or(AppError::PickupKeyMissing)?;
            let claim = pickup::verify(code, &key, &self.settings.store_id, self.now())
                .map_err(AppError::PickupCode)?;
            return Ok(Resolved::Online {
                order_id: claim.order_id.clone(),
                claim: Some(claim),
            });
        }
        if is_pickup_code(code) {
            return Ok(Resolved::Community(code.to_owned()));
        }
        if code.len() == ONLINE_CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT order_id FROM online_orders WHERE pickup_code = ?1 ORDER BY placed_at DESC LIMIT 1",
                )?
                .query_row([code], |r| r.get(0))
                .optional()?;
            let id = id.ok_or_else(|| AppError::PickupCodeUnknown(code.to_owned()))?;
            return Ok(Resolved::Online {
                order_id: id,
                claim: None,
            });
        }
        if code.starts_with("LP") {
            return Err(AppError::PickupCode(PickupCodeError::Malformed));
        }
        Err(invalid(
            "code",
            "type the 6- or 8-digit pickup code, or scan the order's QR code",
        ))
    }

    /// Shows what a code stands for without handing anything over.
    pub async fn lookup_pickup(&self, code: &str) -> Result<PickupPreview, AppError> {
        let app = self.clone();
        let code = code.to_owned();
        self.store
            .read(move |c| match app.resolve_code(c, &code)? {
                Resolved::Community(code) => {
                    let id: String = c
                        .query_row(
                            "SELECT order_id FROM orders WHERE pickup_code = ?1",
                            [&code],
                            |r| r.get(0),
                        )
                        .optional()?
                        .ok_or_else(|| AppError::PickupCodeUnknown(code.clone()))?;
                    Ok(PickupPreview::Community(
                        super::orders::load_order(c, &id)?.ok_or(AppError::OrderNotFound(id))?,
                    ))
                }
                Resolved::Online { order_id, claim } => {
                    let hub = load_hub_fact(c, &order_id)?;
                    let f = load_fulfilment(c, &order_id)?;
                    let v = app.view(hub, f, claim.as_ref(), &order_id);
                    Ok(PickupPreview::Online(v))
                }
            })
            .await
    }

    /// Pickup orders of this store waiting at the counter for a customer
    /// who lost the code, found by `typed`: the last four digits of the
    /// phone, or the whole phone. Online pickups that are `ready`, and
    /// community orders still `placed` (they are packed when taken) and not
    /// expired. The store keeps no phone: four digits match the masked
    /// phone's last four; a whole phone matches a community order by its
    /// member hash, and an online order by its masked phone. The cashier
    /// picks one and hands it over by its code ([`App::redeem_any`]), so a
    /// hand-over by phone is exactly-once, as one by code. Reads only.
    pub async fn pickups_by_phone(&self, typed: &str) -> Result<Vec<PickupPreview>, AppError> {
        let typed = typed.trim();
        let (last4, hash, masked) = if typed.len() == 4 && typed.bytes().all(|b| b.is_ascii_digit())
        {
            (typed.to_owned(), None, None)
        } else if let Some(phone) = linli_shared::member::normal_phone(typed) {
            (
                phone[7..].to_owned(),
                Some(self.member_hash(&phone)),
                Some(linli_shared::member::mask_phone(&phone)),
            )
        } else {
            return Err(invalid(
                "last4",
                "请输入顾客手机号的后 4 位数字或完整手机号 (type the last four digits of the customer's phone, or the whole number)",
            ));
        };
        let app = self.clone();
        let now = ts(self.now());
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                let ids: Vec<String> = c
                    .prepare_cached(
                        "SELECT order_id FROM orders WHERE status = 'placed' AND fulfilment = 'pickup'
                         AND (CASE WHEN ?3 IS NULL THEN substr(customer_masked, -4) = ?1 ELSE customer_hash = ?3 END)
                         AND expires_at > ?2 ORDER BY created_at DESC LIMIT 50",
                    )?
                    .query_map(params![last4, now, hash], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for id in ids {
                    if let Some(o) = super::orders::load_order(c, &id)? {
                        out.push(PickupPreview::Community(o));
                    }
                }
                let rows: Vec<(String, String)> = c
                    .prepare_cached(
                        "SELECT order_id, fact FROM online_orders WHERE pickup_code IS NOT NULL ORDER BY placed_at DESC LIMIT 500",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                for (id, fact) in rows {
                    let Ok(hub) = serde_json::from_str::<HubOrderFact>(&fact) else {
                        continue;
                    };
                    let matches = match &masked {
                        Some(m) => hub.customer_masked == *m,
                        None => hub.customer_masked.ends_with(&last4),
                    };
                    if hub.fulfilment != Fulfilment::Pickup || !matches {
                        continue;
                    }
                    let v = app.view(Some(hub), load_fulfilment(c, &id)?, None, &id);
                    if v.status == OrderStatus::Ready {
                        out.push(PickupPreview::Online(v));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Hands over the order behind a code: the store's own six-digit codes,
    /// the hub's eight-digit codes of synced orders, or a signed QR payload.
    pub async fn redeem_any(&self, actor: &Actor, code: &str) -> Result<PickupPreview, AppError> {
        let code = code.trim().to_owned();
        if is_pickup_code(&code) {
            return Ok(PickupPreview::Community(
                self.redeem_pickup(actor, &code).await?,
            ));
        }
        let stamp = self.stamp();
        let now = stamp.at();
        let by = actor.name.clone();
        let app = self.clone();
        let view = self
            .write_published(stamp, move |c, p| {
                let Resolved::Online { order_id, claim } = app.resolve_code(c, &code)? else {
                    return Err(invalid("code", "not an online order's code"));
                };
                let hub = load_hub_fact(c, &order_id)?;
                let mut f = fulfilment_or_new(c, &order_id)?;
                if let Some(at) = &f.handed_over_at {
                    return Err(AppError::PickupAlreadyHandedOver {
                        order_id,
                        at: parse_ts(at),
                        by: f.handed_over_by.clone().unwrap_or_default(),
                    });
                }
                let lines: Vec<(String, i64)> = match (&hub, &claim) {
                    (Some(h), _) => {
                        if h.fulfilment != Fulfilment::Pickup {
                            return Err(invalid(
                                "code",
                                "this is a delivery order; dispatch it instead",
                            ));
                        }
                        if let Some(at) = &h.cancelled_at {
                            return Err(AppError::PickupCancelled {
                                order_id,
                                at: parse_ts(at),
                            });
                        }
                        if claim.is_none() && parse_ts(&h.expires_at) <= now {
                            return Err(AppError::PickupExpired {
                                order_id,
                                at: parse_ts(&h.expires_at),
                            });
                        }
                        h.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect()
                    }
                    (None, Some(cl)) => cl.lines.clone(),
                    (None, None) => return Err(AppError::PickupCodeUnknown(code.clone())),
                };
                book_out(c, p, &order_id, &lines, &by, now)?;
                f.handed_over_at = Some(ts(now));
                f.handed_over_by = Some(by.clone());
                if hub.is_none() {
                    f.lines = lines;
                }
                save_fulfilment(c, p, &f, now)?;
                Ok(app.view(hub, Some(f), claim.as_ref(), &order_id))
            })
            .await?;
        Ok(PickupPreview::Online(view))
    }

    /// Online orders, newest first; `open` keeps those not finished.
    pub async fn list_online_orders(&self, open: bool) -> Result<Vec<OnlineOrderView>, AppError> {
        let app = self.clone();
        self.store
            .read(move |c| {
                let rows: Vec<(String, String)> = c
                    .prepare_cached(
                        "SELECT o.order_id, o.fact FROM online_orders o ORDER BY o.placed_at DESC LIMIT 500",
                    )?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for (id, fact) in rows {
                    let hub: Option<HubOrderFact> = serde_json::from_str(&fact).ok();
                    let v = app.view(hub, load_fulfilment(c, &id)?, None, &id);
                    let finished = matches!(
                        v.status,
                        OrderStatus::HandedOver | OrderStatus::Delivered | OrderStatus::Cancelled
                    );
                    if !open || !finished {
                        out.push(v);
                    }
                }
                Ok(out)
            })
            .await
    }

    pub async fn get_online_order(&self, id: &str) -> Result<OnlineOrderView, AppError> {
        let app = self.clone();
        let id = id.to_owned();
        self.store
            .read(move |c| {
                let hub = load_hub_fact(c, &id)?;
                let f = load_fulfilment(c, &id)?;
                if hub.is_none() && f.is_none() {
                    return Err(AppError::OrderNotFound(id));
                }
                Ok(app.view(hub, f, None, &id))
            })
            .await
    }

    /// Records a fulfilment step (accept, picked, ready, delivered). A step
    /// already taken is answered with the order as it is.
    pub async fn fulfil(
        &self,
        actor: &Actor,
        id: &str,
        step: Step,
    ) -> Result<OnlineOrderView, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        let _ = actor;
        let (app, id) = (self.clone(), id.to_owned());
        self.write_published(stamp, move |c, p| {
            let hub = load_hub_fact(c, &id)?.ok_or_else(|| AppError::OrderNotFound(id.clone()))?;
            let mut f = fulfilment_or_new(c, &id)?;
            let status = derive_status(&hub, Some(&f)).status;
            if status == OrderStatus::Cancelled {
                return Err(AppError::OrderStep {
                    order_id: id,
                    status: status.as_str().into(),
                    step: format!("{step:?}").to_lowercase(),
                });
            }
            let at = Some(ts(now));
            let slot = match step {
                Step::Accept => &mut f.accepted_at,
                Step::Pick => &mut f.picked_at,
                Step::Ready => &mut f.ready_at,
                Step::Delivered => {
                    if f.out_for_delivery_at.is_none() {
                        return Err(AppError::OrderStep {
                            order_id: id,
                            status: status.as_str().into(),
                            step: "delivered".into(),
                        });
                    }
                    &mut f.delivered_at
                }
            };
            if slot.is_none() {
                *slot = at;
                save_fulfilment(c, p, &f, now)?;
            }
            Ok(app.view(Some(hub), Some(f), None, &id))
        })
        .await
    }

    /// Sends a delivery order out with one of the store's riders: the named
    /// one, or the first free one. Returns `None` when no rider is free (the
    /// caller falls back to a courier).
    pub async fn dispatch_with_rider(
        &self,
        actor: &Actor,
        id: &str,
        rider: Option<String>,
    ) -> Result<Option<OnlineOrderView>, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        let (app, id, by) = (self.clone(), id.to_owned(), actor.name.clone());
        self.write_published(stamp, move |c, p| {
            let (hub, mut f) = dispatchable(c, &id)?;
            if f.out_for_delivery_at.is_some() {
                return Ok(Some(app.view(Some(hub), Some(f), None, &id)));
            }
            let busy = busy_riders(c)?;
            let chosen = match rider {
                Some(r) => {
                    let active: Option<bool> = c
                        .query_row("SELECT active FROM riders WHERE name = ?1", [&r], |row| {
                            row.get(0)
                        })
                        .optional()?;
                    match active {
                        Some(true) if !busy.contains_key(&r) => Some(r),
                        Some(true) => {
                            return Err(invalid(
                                "rider",
                                format!("{r} is out with order {}", busy[&r]),
                            ));
                        }
                        _ => return Err(invalid("rider", format!("no active rider named {r}"))),
                    }
                }
                None => {
                    let names: Vec<String> = c
                        .prepare_cached("SELECT name FROM riders WHERE active = 1 ORDER BY name")?
                        .query_map([], |r| r.get(0))?
                        .collect::<Result<_, _>>()?;
                    names.into_iter().find(|n| !busy.contains_key(n))
                }
            };
            let Some(rider) = chosen else { return Ok(None) };
            let lines: Vec<(String, i64)> =
                hub.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect();
            book_out(c, p, &id, &lines, &by, now)?;
            f.rider = Some(rider);
            f.out_for_delivery_at = Some(ts(now));
            save_fulfilment(c, p, &f, now)?;
            Ok(Some(app.view(Some(hub), Some(f), None, &id)))
        })
        .await
    }

    /// Sends a delivery order out: with the named rider, else the first free
    /// rider of the store, else the configured courier (idempotent per
    /// order: dispatching twice yields the same delivery).
    pub async fn dispatch(
        &self,
        actor: &Actor,
        id: &str,
        rider: Option<String>,
    ) -> Result<OnlineOrderView, AppError> {
        if let Some(v) = self.dispatch_with_rider(actor, id, rider).await? {
            return Ok(v);
        }
        let courier = self.courier().ok_or_else(|| {
            AppError::NoCourier("no rider of the store is free and no courier is configured".into())
        })?;
        let (hub, f) = self.courier_request(id).await?;
        if let Some(r) = &f.courier_ref {
            return self
                .record_courier(id, courier.name(), r, false, false)
                .await;
        }
        let d = hub
            .delivery
            .clone()
            .ok_or_else(|| invalid("order", "the order has no delivery address"))?;
        let window = |s: &str| parse_ts(s);
        let req = linli_courier::DeliveryRequest {
            order_id: hub.order_id.clone(),
            store_id: self.settings.store_id.clone(),
            pickup_lat: d.store_lat,
            pickup_lon: d.store_lon,
            dropoff_lat: d.lat,
            dropoff_lon: d.lon,
            window_start: window(&d.window_start),
            window_end: window(&d.window_end),
            contact: hub.customer_masked.clone(),
            items: u32::try_from(hub.lines.len()).unwrap_or(u32::MAX),
        };
        let sent = courier.dispatch(&req).await.map_err(|e| {
            AppError::NoCourier(format!(
                "no rider is free and courier {} failed: {e}",
                courier.name()
            ))
        })?;
        self.record_courier(id, &sent.courier, &sent.courier_ref, false, false)
            .await
    }

    /// Asks the courier where its deliveries are and records pick-ups and
    /// deliveries. Returns how many orders changed.
    pub async fn poll_courier(&self) -> Result<usize, AppError> {
        let Some(courier) = self.courier() else {
            return Ok(0);
        };
        let mut n = 0;
        for (order_id, r) in self.courier_deliveries().await? {
            let status = match courier.status(&r).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(order_id, error = %e, "courier status unavailable");
                    continue;
                }
            };
            use linli_courier::CourierState as C;
            let (picked, delivered) = match status.state {
                C::Requested | C::Failed | C::Cancelled => continue,
                C::PickedUp => (true, false),
                C::Delivered => (true, true),
            };
            self.record_courier(&order_id, courier.name(), &r, picked, delivered)
                .await?;
            n += 1;
        }
        Ok(n)
    }

    /// The delivery request a courier gets for an order.
    pub async fn courier_request(
        &self,
        id: &str,
    ) -> Result<(HubOrderFact, FulfilmentFact), AppError> {
        let id = id.to_owned();
        self.store.read(move |c| dispatchable(c, &id)).await
    }

    /// Records that a courier took (`courier_ref`) or picked up a delivery.
    pub async fn record_courier(
        &self,
        id: &str,
        courier: &str,
        courier_ref: &str,
        picked_up: bool,
        delivered: bool,
    ) -> Result<OnlineOrderView, AppError> {
        let stamp = self.stamp();
        let now = stamp.at();
        let (app, id) = (self.clone(), id.to_owned());
        let (courier, courier_ref) = (courier.to_owned(), courier_ref.to_owned());
        self.write_published(stamp, move |c, p| {
            let hub = load_hub_fact(c, &id)?.ok_or_else(|| AppError::OrderNotFound(id.clone()))?;
            let mut f = fulfilment_or_new(c, &id)?;
            let mut changed = f.courier_ref.as_deref() != Some(courier_ref.as_str());
            f.courier = Some(courier.clone());
            f.courier_ref = Some(courier_ref.clone());
            if (picked_up || delivered) && f.out_for_delivery_at.is_none() {
                let lines: Vec<(String, i64)> =
                    hub.lines.iter().map(|l| (l.sku.clone(), l.qty)).collect();
                book_out(c, p, &id, &lines, &format!("courier:{courier}"), now)?;
                f.out_for_delivery_at = Some(ts(now));
                changed = true;
            }
            if delivered && f.delivered_at.is_none() {
                f.delivered_at = Some(ts(now));
                changed = true;
            }
            if changed {
                save_fulfilment(c, p, &f, now)?;
            }
            Ok(app.view(Some(hub), Some(f), None, &id))
        })
        .await
    }

    /// Orders out with a courier and not delivered yet.
    pub async fn courier_deliveries(&self) -> Result<Vec<(String, String)>, AppError> {
        self.store
            .read(|c| {
                Ok(open_fulfilment(c)?
                    .into_iter()
                    .filter(|f| f.delivered_at.is_none())
                    .filter_map(|f| f.courier_ref.map(|r| (f.order_id, r)))
                    .collect())
            })
            .await
    }

    pub async fn add_rider(&self, actor: &Actor, req: RiderRequest) -> Result<RiderView, AppError> {
        actor.require_manager("adding a rider")?;
        let name = linli_shared::login_guard::clean_text("name", &req.name, 64)
            .map_err(|e| invalid("name", e))?;
        let phone = super::valid_phone("phone", &req.phone)?;
        let now = self.now();
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO riders(name, phone, active, created_at) VALUES (?1, ?2, 1, ?3)
                     ON CONFLICT(name) DO UPDATE SET phone = excluded.phone, active = 1",
                    params![name, phone, ts(now)],
                )?;
                Ok::<_, AppError>(RiderView {
                    name,
                    phone,
                    active: true,
                    busy_with: None,
                })
            })
            .await
    }

    pub async fn riders(&self) -> Result<Vec<RiderView>, AppError> {
        self.store
            .read(|c| {
                let busy = busy_riders(c)?;
                let rows: Vec<(String, String, bool)> = c
                    .prepare_cached("SELECT name, phone, active FROM riders ORDER BY name")?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows
                    .into_iter()
                    .map(|(name, phone, active)| RiderView {
                        busy_with: busy.get(&name).cloned(),
                        name,
                        phone,
                        active,
                    })
                    .collect())
            })
            .await
    }
}

/// An order that can go out for delivery: known, a delivery, not cancelled.
fn dispatchable(c: &Connection, id: &str) -> Result<(HubOrderFact, FulfilmentFact), AppError> {
    let hub = load_hub_fact(c, id)?.ok_or_else(|| AppError::OrderNotFound(id.to_owned()))?;
    let f = fulfilment_or_new(c, id)?;
    let status = derive_status(&hub, Some(&f)).status;
    if hub.fulfilment != Fulfilment::Delivery || status == OrderStatus::Cancelled {
        return Err(AppError::OrderStep {
            order_id: id.to_owned(),
            status: status.as_str().into(),
            step: "dispatch".into(),
        });
    }
    Ok((hub, f))
}

/// Riders out with an order (rider → order id).
fn busy_riders(c: &Connection) -> Result<BTreeMap<String, String>, AppError> {
    Ok(open_fulfilment(c)?
        .into_iter()
        .filter(|f| goods_left(f) && f.delivered_at.is_none())
        .filter_map(|f| f.rider.map(|r| (r, f.order_id)))
        .collect())
}

/// Books an online order's goods out of the store: a pickup movement per
/// line, and the units leave what the store keeps for the hub.
fn book_out(
    c: &Connection,
    p: &mut Publish<'_>,
    order_id: &str,
    lines: &[(String, i64)],
    by: &str,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for (sku, qty) in lines {
        apply_and_publish(
            c,
            p,
            &NewMovement {
                sku,
                kind: MovementKind::Pickup,
                delta: -qty,
                reason: Some("online order"),
                ref_id: Some(order_id),
                staff: by,
                at: now,
            },
        )?;
        super::rights::add_delivered(c, sku, *qty)?;
    }
    p.levels(lines.iter().map(|(s, _)| s.as_str()));
    Ok(())
}

/// Takes the hub's order records into the query table (called in the
/// transaction that applied the hub's document).
pub(crate) fn project_hub_orders(
    c: &Connection,
    orders: &[(String, HubOrderFact)],
) -> Result<usize, AppError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO online_orders(order_id, pickup_code, placed_at, fact) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(order_id) DO UPDATE SET pickup_code = excluded.pickup_code, fact = excluded.fact
         WHERE online_orders.fact <> excluded.fact",
    )?;
    let mut n = 0;
    for (id, o) in orders {
        // the record may also sit in another day's document: never lose a field
        let merged = match load_hub_fact(c, id)? {
            Some(old) => o.clone().merge(old),
            None => o.clone(),
        };
        n += stmt.execute(params![
            id,
            merged.pickup_code,
            merged.placed_at,
            serde_json::to_string(&merged).unwrap_or_default()
        ])?;
    }
    Ok(n)
}
