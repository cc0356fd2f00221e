//! The third-party courier fallback for online orders.
//!
//! A store delivers online orders with its own riders first; when none is free
//! (or the drop-off is too far) it hands the order to a third-party courier.
//! Couriers differ in everything but the shape of the job, so the store node
//! only ever sees the [`Courier`] trait and holds an `Arc<dyn Courier>`:
//!
//! - [`http::HttpCourier`] speaks Linli's courier wire protocol (documented in
//!   [`http`]) to a courier's HTTP API;
//! - [`sim`] is a local courier that implements the same protocol in memory,
//!   for the demo and for tests (binary `linli-courier-sim`).
//!
//! The invariant every adapter keeps: dispatch is idempotent on
//! [`DeliveryRequest::order_id`]. A store that lost the answer to a dispatch
//! (timeout, crash, restart) sends it again and gets the same delivery, never a
//! second rider for the same bag. That is why [`CourierError`] separates
//! "retry later" ([`CourierError::Unavailable`]) from "do not retry this
//! request" ([`CourierError::Rejected`]).
//!
//! This crate depends on no other Linli crate, so the store node and the hub
//! can both use it and the simulator builds on its own.

pub mod http;
pub mod sim;
mod wire;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One order handed to a courier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRequest {
    /// The online order. Also the idempotency key: dispatching the same order
    /// twice yields the same delivery.
    pub order_id: String,
    /// The store the rider picks up from.
    pub store_id: String,
    /// Pickup latitude in degrees, -90..=90.
    pub pickup_lat: f64,
    /// Pickup longitude in degrees, -180..=180.
    pub pickup_lon: f64,
    /// Drop-off latitude in degrees, -90..=90.
    pub dropoff_lat: f64,
    /// Drop-off longitude in degrees, -180..=180.
    pub dropoff_lon: f64,
    /// Earliest delivery time promised to the customer.
    pub window_start: DateTime<Utc>,
    /// Latest delivery time promised to the customer; after `window_start`.
    pub window_end: DateTime<Utc>,
    /// The customer's masked phone, e.g. `138****1234`; never the full number.
    pub contact: String,
    /// Number of bags or items to carry; at least 1.
    pub items: u32,
}

/// A courier accepted a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dispatched {
    /// The adapter's [`Courier::name`], so a store that uses several couriers
    /// knows whom to ask later.
    pub courier: String,
    /// The courier's own reference for the delivery.
    pub courier_ref: String,
}

/// Where a delivery stands at the courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourierState {
    /// Accepted, no rider has picked up yet. The only cancellable state.
    Requested,
    /// A rider has the bag.
    PickedUp,
    /// Handed to the customer. Final.
    Delivered,
    /// The courier gave up (see [`CourierStatus::failure`]). Final.
    Failed,
    /// Cancelled by the store before pickup. Final.
    Cancelled,
}

/// A delivery's status as the courier reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CourierStatus {
    /// The courier's reference, as in [`Dispatched::courier_ref`].
    pub courier_ref: String,
    /// Current state.
    pub state: CourierState,
    /// When a rider picked the bag up, once it happened.
    pub picked_up_at: Option<DateTime<Utc>>,
    /// When the customer got it, once it happened.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Why the courier failed the delivery, in [`CourierState::Failed`].
    pub failure: Option<String>,
}

/// Why a courier call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CourierError {
    /// The courier could not be reached, timed out, or answered with a server
    /// error (5xx, 408, 429). Retry later; dispatch is safe to retry because
    /// it is idempotent on the order id.
    #[error("courier unavailable: {0}")]
    Unavailable(String),
    /// The courier refused the request (4xx) with a machine-readable `code`,
    /// e.g. `invalid_field`, `idempotency_key_reused`, `not_cancellable`,
    /// `unauthorized`. Sending the same request again gets the same answer.
    #[error("courier rejected the request ({code}): {message}")]
    Rejected {
        /// Stable machine-readable reason.
        code: String,
        /// Human-readable detail from the courier.
        message: String,
    },
    /// The courier does not know this delivery reference.
    #[error("unknown delivery {0}")]
    UnknownDelivery(String),
    /// The courier answered something this adapter cannot understand, or the
    /// adapter is misconfigured (bad base URL, HTTPS without TLS support).
    #[error("courier protocol error: {0}")]
    Protocol(String),
}

/// The future a [`Courier`] method returns: boxed so the trait stays
/// object-safe.
pub type CourierFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, CourierError>> + Send + 'a>>;

/// A third-party courier. Object-safe so a store can hold `Arc<dyn Courier>`.
///
/// Adapters do not retry by themselves: the store decides, from the error,
/// whether to retry later ([`CourierError::Unavailable`]), give up on this
/// courier ([`CourierError::Rejected`]) or fall back to its own riders.
pub trait Courier: Send + Sync + std::fmt::Debug {
    /// The adapter's name, copied into [`Dispatched::courier`].
    fn name(&self) -> &str;
    /// Ask for a rider. Idempotent on `req.order_id`: the same order again
    /// yields the same [`Dispatched`]; the same order with different details
    /// is rejected with code `idempotency_key_reused`.
    fn dispatch<'a>(&'a self, req: &'a DeliveryRequest) -> CourierFuture<'a, Dispatched>;
    /// The delivery's current status.
    fn status<'a>(&'a self, courier_ref: &'a str) -> CourierFuture<'a, CourierStatus>;
    /// Cancel a delivery that no rider has picked up yet; rejected with code
    /// `not_cancellable` after pickup.
    fn cancel<'a>(&'a self, courier_ref: &'a str) -> CourierFuture<'a, CourierStatus>;
}
