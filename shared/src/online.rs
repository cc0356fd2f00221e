//! Online orders as the chain's documents record them, and the one rule that
//! turns those records into an order's status (DESIGN.md §6).
//!
//! The hub writes what it decided ([`HubOrderFact`] in `hub/<S>/orders/<day>`:
//! the order, its cancellation, where it was re-routed). The store writes
//! what physically happened ([`FulfilmentFact`] in `store/<S>/fulfilment/<day>`:
//! accepted, picked, ready, handed over, riders). Neither ever writes the
//! other's facts, so the status is a pure function of the two records
//! ([`derive_status`]), the same wherever it is computed and whatever order
//! the facts arrived in. Where they disagree the physical fact wins: an
//! order the hub cancelled while the store handed it over offline *is*
//! handed over, and the conflict is raised for a manager.

use serde::{Deserialize, Serialize};

use crate::order::{Channel, Fulfilment, OrderStatus};

/// One line of an online order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OnlineLine {
    pub sku: String,
    pub name: String,
    /// `each` or `kg`.
    pub unit: String,
    /// Units, or grams for `kg`.
    pub qty: i64,
    pub unit_price_fen: i64,
    pub total_fen: i64,
}

/// Where and when a delivery goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryFact {
    pub lat: f64,
    pub lon: f64,
    /// Where the goods are collected (the store).
    pub store_lat: f64,
    pub store_lon: f64,
    /// Promised window, RFC 3339.
    pub window_start: String,
    pub window_end: String,
    /// The address the rider reads (compound, building, room), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// The hub's record of an online order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HubOrderFact {
    pub order_id: String,
    pub store_id: String,
    pub channel: Channel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_session_id: Option<String>,
    /// The hub's stable customer id.
    pub customer_id: String,
    /// Masked phone for the counter (`138****1234`).
    pub customer_masked: String,
    pub fulfilment: Fulfilment,
    pub lines: Vec<OnlineLine>,
    pub subtotal_fen: i64,
    /// Pickup discount (≥ 0).
    pub discount_fen: i64,
    /// Delivery fee (≥ 0).
    pub fee_fen: i64,
    pub total_fen: i64,
    /// Short numeric code (pickup only); works once the order has synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_code: Option<String>,
    /// Signed QR payload (pickup only); verifiable with no hub at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_qr: Option<String>,
    /// RFC 3339: pickup by then, or the delivery window's end.
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryFact>,
    pub placed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<String>,
    /// `customer`, `admin`, `expired`, `oversold_at_store`, `rerouted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    /// The order that replaced this one at another store (re-routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// The order this one replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The cancelled order was handed over anyway; its rights are consumed again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconsumed_at: Option<String>,
    /// Which rules priced it (markdown, live, coupon, pickup discount...),
    /// with the rules' version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub pricing: Option<crate::pricing::PricingNote>,
    /// The customer's claimed coupon it used (online coupons).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coupon_claim_id: Option<String>,
}

/// The store's record of what happened to an online order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FulfilmentFact {
    pub order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over_by: Option<String>,
    /// The store's own rider, or empty when a courier took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub courier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub courier_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_for_delivery_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// Lines as handed over: from the signed QR when the order had not
    /// reached the store yet (quantity per SKU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<(String, i64)>,
}

impl HubOrderFact {
    /// Two versions of the hub's record of one order (it may sit in two
    /// days' documents): the hub only ever sets fields that were unset, so
    /// a field set in either is set.
    pub fn merge(self, other: HubOrderFact) -> HubOrderFact {
        HubOrderFact {
            cancelled_at: self.cancelled_at.or(other.cancelled_at),
            cancel_reason: self.cancel_reason.or(other.cancel_reason),
            replaced_by: self.replaced_by.or(other.replaced_by),
            replaces: self.replaces.or(other.replaces),
            reconsumed_at: self.reconsumed_at.or(other.reconsumed_at),
            ..self
        }
    }
}

impl FulfilmentFact {
    /// Two versions of the store's record of one order (it may sit in two
    /// days' documents): a field set in either is set.
    pub fn merge(self, o: FulfilmentFact) -> FulfilmentFact {
        FulfilmentFact {
            order_id: self.order_id,
            accepted_at: self.accepted_at.or(o.accepted_at),
            picked_at: self.picked_at.or(o.picked_at),
            ready_at: self.ready_at.or(o.ready_at),
            handed_over_at: self.handed_over_at.or(o.handed_over_at),
            handed_over_by: self.handed_over_by.or(o.handed_over_by),
            rider: self.rider.or(o.rider),
            courier: self.courier.or(o.courier),
            courier_ref: self.courier_ref.or(o.courier_ref),
            out_for_delivery_at: self.out_for_delivery_at.or(o.out_for_delivery_at),
            delivered_at: self.delivered_at.or(o.delivered_at),
            lines: if self.lines.is_empty() {
                o.lines
            } else {
                self.lines
            },
        }
    }

    /// The record of an order the store has done nothing with yet.
    pub fn new(order_id: &str) -> FulfilmentFact {
        FulfilmentFact {
            order_id: order_id.to_owned(),
            ..FulfilmentFact::default()
        }
    }
}

/// One step of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub status: OrderStatus,
    pub at: String,
}

/// An order's status as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DerivedStatus {
    pub status: OrderStatus,
    /// Steps in order of the status machine, each with its time.
    pub timeline: Vec<TimelineEntry>,
    /// A disagreement between hub and store a manager must settle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
}

/// The status rule: the latest physical step the store recorded wins over
/// everything the hub decided; without one, a cancellation wins; without
/// that, the order is placed. A pure function of the two records.
pub fn derive_status(hub: &HubOrderFact, store: Option<&FulfilmentFact>) -> DerivedStatus {
    let mut timeline = vec![TimelineEntry {
        status: OrderStatus::Placed,
        at: hub.placed_at.clone(),
    }];
    let empty = FulfilmentFact::default();
    let f = store.unwrap_or(&empty);
    let steps = [
        (OrderStatus::Accepted, &f.accepted_at),
        (OrderStatus::Picked, &f.picked_at),
        (OrderStatus::Ready, &f.ready_at),
        (OrderStatus::OutForDelivery, &f.out_for_delivery_at),
        (OrderStatus::HandedOver, &f.handed_over_at),
        (OrderStatus::Delivered, &f.delivered_at),
    ];
    let mut status = OrderStatus::Placed;
    for (s, at) in steps {
        if let Some(at) = at {
            timeline.push(TimelineEntry {
                status: s,
                at: at.clone(),
            });
            status = s;
        }
    }
    let physical = matches!(
        status,
        OrderStatus::HandedOver | OrderStatus::OutForDelivery | OrderStatus::Delivered
    );
    let mut conflict = None;
    if let Some(at) = &hub.cancelled_at {
        if physical {
            conflict = Some(format!(
                "cancelled at the hub at {at} ({}) but {} at the store; the goods are with the customer: settle payment",
                hub.cancel_reason.as_deref().unwrap_or("no reason"),
                status.as_str()
            ));
        } else {
            timeline.push(TimelineEntry {
                status: OrderStatus::Cancelled,
                at: at.clone(),
            });
            status = OrderStatus::Cancelled;
        }
    }
    DerivedStatus {
        status,
        timeline,
        conflict,
    }
}

/// Whether the order's goods have left the store (rights are spent for good).
pub fn goods_left(f: &FulfilmentFact) -> bool {
    f.handed_over_at.is_some() || f.out_for_delivery_at.is_some() || f.delivered_at.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> HubOrderFact {
        HubOrderFact {
            order_id: "O1".into(),
            store_id: "S001".into(),
            channel: Channel::Live,
            live_session_id: Some("L1".into()),
            customer_id: "C1".into(),
            customer_masked: "138****0000".into(),
            fulfilment: Fulfilment::Pickup,
            lines: vec![],
            subtotal_fen: 100,
            discount_fen: 0,
            fee_fen: 0,
            total_fen: 100,
            pickup_code: Some("12345678".into()),
            pickup_qr: None,
            expires_at: "2026-11-30T12:00:00.000Z".into(),
            delivery: None,
            placed_at: "2026-11-30T01:00:00.000Z".into(),
            cancelled_at: None,
            cancel_reason: None,
            replaced_by: None,
            replaces: None,
            reconsumed_at: None,
            pricing: None,
            coupon_claim_id: None,
        }
    }

    #[test]
    fn the_store_moves_the_order_along() {
        let o = order();
        assert_eq!(derive_status(&o, None).status, OrderStatus::Placed);
        let mut f = FulfilmentFact {
            order_id: "O1".into(),
            accepted_at: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(derive_status(&o, Some(&f)).status, OrderStatus::Accepted);
        f.picked_at = Some("b".into());
        f.ready_at = Some("c".into());
        let d = derive_status(&o, Some(&f));
        assert_eq!(d.status, OrderStatus::Ready);
        assert_eq!(d.timeline.len(), 4);
        f.handed_over_at = Some("d".into());
        assert_eq!(derive_status(&o, Some(&f)).status, OrderStatus::HandedOver);
    }

    #[test]
    fn cancelled_at_the_hub_while_handed_over_offline_is_handed_over_and_raised() {
        let mut o = order();
        o.cancelled_at = Some("2026-11-30T02:00:00.000Z".into());
        o.cancel_reason = Some("customer".into());
        assert_eq!(derive_status(&o, None).status, OrderStatus::Cancelled);
        let ready = FulfilmentFact {
            order_id: "O1".into(),
            ready_at: Some("x".into()),
            ..Default::default()
        };
        // not physical yet: the cancellation stands
        let d = derive_status(&o, Some(&ready));
        assert_eq!(d.status, OrderStatus::Cancelled);
        assert!(d.conflict.is_none());
        let handed = FulfilmentFact {
            handed_over_at: Some("2026-11-30T01:59:00.000Z".into()),
            handed_over_by: Some("ana".into()),
            ..ready
        };
        let d = derive_status(&o, Some(&handed));
        assert_eq!(d.status, OrderStatus::HandedOver);
        assert!(
            d.conflict
                .as_deref()
                .unwrap_or("")
                .contains("cancelled at the hub")
        );
    }

    #[test]
    fn delivery_steps() {
        let mut o = order();
        o.fulfilment = Fulfilment::Delivery;
        let f = FulfilmentFact {
            order_id: "O1".into(),
            accepted_at: Some("a".into()),
            out_for_delivery_at: Some("b".into()),
            rider: Some("li".into()),
            ..Default::default()
        };
        assert_eq!(
            derive_status(&o, Some(&f)).status,
            OrderStatus::OutForDelivery
        );
        let f = FulfilmentFact {
            delivered_at: Some("c".into()),
            ..f
        };
        assert_eq!(derive_status(&o, Some(&f)).status, OrderStatus::Delivered);
        assert!(goods_left(&f));
    }
}
