//! The JSON bodies of the courier wire protocol that are not domain types.
//!
//! One definition for both ends ([`crate::http`] reads them, [`crate::sim`]
//! writes them), so the adapter and the simulator cannot drift apart. The
//! protocol itself is documented in [`crate::http`].

use serde::{Deserialize, Serialize};

use crate::CourierState;

/// Path prefix of every endpoint.
pub(crate) const DELIVERIES: [&str; 2] = ["v1", "deliveries"];

/// Header carrying the idempotency key (the order id) on dispatch.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Answer to `POST /v1/deliveries`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DispatchResponse {
    pub(crate) courier_ref: String,
    pub(crate) state: CourierState,
}

/// Body of the simulator's `POST /v1/deliveries/{ref}/fail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FailRequest {
    pub(crate) reason: String,
}

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable reason, e.g. `invalid_field`.
    pub(crate) code: String,
    /// Human-readable detail.
    pub(crate) message: String,
}
