//! Orders and the rules of handing them over.
//!
//! A pickup order reserves stock and gets a short numeric pickup code. The
//! code hands the order over exactly once; every later attempt is told when
//! and by whom it was handed over. Unknown, cancelled and expired codes are
//! distinct refusals, so the cashier can tell the customer what is wrong.
//! The decision is a pure function of the order's state and the time, so the
//! edge node (and later the hub's signed codes) share one rule.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Taken by the store manager from the store's community group.
    Community,
    /// From a live-stream session.
    Live,
    /// From the store page (mini-program / H5).
    Miniapp,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Community => "community",
            Channel::Live => "live",
            Channel::Miniapp => "miniapp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fulfilment {
    Pickup,
    Delivery,
}

impl Fulfilment {
    pub fn as_str(self) -> &'static str {
        match self {
            Fulfilment::Pickup => "pickup",
            Fulfilment::Delivery => "delivery",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Taken; stock reserved; waiting for the store or the customer.
    Placed,
    /// The store has seen the online order and will prepare it.
    Accepted,
    /// The goods are picked from the shelf.
    Picked,
    /// Packed and waiting at the counter (the customer is told).
    Ready,
    /// A rider or courier has it on the way.
    OutForDelivery,
    /// Handed over to the customer (terminal).
    HandedOver,
    /// Delivered to the customer's door (terminal).
    Delivered,
    /// Cancelled; reservation or rights released (terminal).
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Placed => "placed",
            OrderStatus::Accepted => "accepted",
            OrderStatus::Picked => "picked",
            OrderStatus::Ready => "ready",
            OrderStatus::OutForDelivery => "out_for_delivery",
            OrderStatus::HandedOver => "handed_over",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        Some(match s {
            "placed" => OrderStatus::Placed,
            "accepted" => OrderStatus::Accepted,
            "picked" => OrderStatus::Picked,
            "ready" => OrderStatus::Ready,
            "out_for_delivery" => OrderStatus::OutForDelivery,
            "handed_over" => OrderStatus::HandedOver,
            "delivered" => OrderStatus::Delivered,
            "cancelled" => OrderStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Length of the short pickup code a customer reads out or types.
pub const PICKUP_CODE_DIGITS: usize = 6;

/// Turns random bits into a six-digit pickup code (leading zeros kept).
/// The caller draws the randomness and retries on a clash with an open order.
pub fn pickup_code_from(random: u32) -> String {
    format!("{:06}", random % 1_000_000)
}

/// Whether `s` has the shape of a short pickup code.
pub fn is_pickup_code(s: &str) -> bool {
    s.len() == PICKUP_CODE_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// What a pickup-code lookup found, as far as the hand-over rule cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickupState {
    pub status: OrderStatus,
    pub expires_at: DateTime<Utc>,
    pub handed_over_at: Option<DateTime<Utc>>,
    pub handed_over_by: Option<String>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Why a code cannot be handed over now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeemRefusal {
    #[error("order was already handed over at {at} by {by}")]
    AlreadyHandedOver { at: DateTime<Utc>, by: String },
    #[error("order was cancelled at {at}")]
    Cancelled { at: DateTime<Utc> },
    #[error("pickup code expired at {at}")]
    Expired { at: DateTime<Utc> },
}

/// The hand-over rule: an order can be handed over once, while placed and
/// before it expires.
pub fn check_redeem(state: &PickupState, now: DateTime<Utc>) -> Result<(), RedeemRefusal> {
    match state.status {
        OrderStatus::HandedOver | OrderStatus::Delivered | OrderStatus::OutForDelivery => {
            Err(RedeemRefusal::AlreadyHandedOver {
                at: state.handed_over_at.unwrap_or(state.expires_at),
                by: state.handed_over_by.clone().unwrap_or_default(),
            })
        }
        OrderStatus::Cancelled => Err(RedeemRefusal::Cancelled {
            at: state.cancelled_at.unwrap_or(state.expires_at),
        }),
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Picked | OrderStatus::Ready
            if now >= state.expires_at =>
        {
            Err(RedeemRefusal::Expired {
                at: state.expires_at,
            })
        }
        OrderStatus::Placed | OrderStatus::Accepted | OrderStatus::Picked | OrderStatus::Ready => {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn placed(expires: i64) -> PickupState {
        PickupState {
            status: OrderStatus::Placed,
            expires_at: Utc.timestamp_opt(expires, 0).unwrap(),
            handed_over_at: None,
            handed_over_by: None,
            cancelled_at: None,
        }
    }

    #[test]
    fn codes_are_six_digits() {
        assert_eq!(pickup_code_from(42), "000042");
        assert_eq!(pickup_code_from(u32::MAX).len(), 6);
        assert!(is_pickup_code("012345"));
        assert!(!is_pickup_code("12345"));
    }

    #[test]
    fn redeem_rules() {
        let now = Utc.timestamp_opt(1000, 0).unwrap();
        assert_eq!(check_redeem(&placed(2000), now), Ok(()));
        assert!(matches!(
            check_redeem(&placed(1000), now),
            Err(RedeemRefusal::Expired { .. })
        ));
        let mut done = placed(2000);
        done.status = OrderStatus::HandedOver;
        done.handed_over_at = Some(now);
        done.handed_over_by = Some("ana".into());
        assert_eq!(
            check_redeem(&done, now),
            Err(RedeemRefusal::AlreadyHandedOver {
                at: now,
                by: "ana".into()
            })
        );
        let mut c = placed(2000);
        c.status = OrderStatus::Cancelled;
        c.cancelled_at = Some(now);
        assert!(matches!(
            check_redeem(&c, now),
            Err(RedeemRefusal::Cancelled { .. })
        ));
    }
}
