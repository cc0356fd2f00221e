//! Online orders at the store: the pick list, fulfilment steps, delivery
//! dispatch, riders, and the pickup look-up that shows a code's lines
//! before anything is handed over.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth};
use crate::app::online::{
    DispatchRequest, OnlineOrderView, PickupPreview, RiderRequest, RiderView, Step,
};
use crate::app::orders::RedeemRequest;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct ListQuery {
    /// Only orders not handed over, delivered or cancelled.
    open: Option<bool>,
}

/// Online orders routed to this store, newest first.
#[utoipa::path(get, path = "/api/v1/online-orders", tag = "online", params(ListQuery),
    responses((status = 200, body = [OnlineOrderView])), security(("bearer" = [])))]
pub(super) async fn list(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<OnlineOrderView>>, ApiError> {
    Ok(Json(
        s.app.list_online_orders(q.open.unwrap_or(false)).await?,
    ))
}

/// One online order with its fulfilment record and derived status.
#[utoipa::path(get, path = "/api/v1/online-orders/{order_id}", tag = "online", params(("order_id" = String, Path)),
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn get(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(id): Path<String>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    Ok(Json(s.app.get_online_order(&id).await?))
}

async fn step(
    s: AppState,
    actor: crate::app::Actor,
    id: String,
    step: Step,
) -> Result<Json<OnlineOrderView>, ApiError> {
    Ok(Json(s.app.fulfil(&actor, &id, step).await?))
}

/// The store accepts the order (the customer sees `accepted`).
#[utoipa::path(post, path = "/api/v1/online-orders/{order_id}/accept", tag = "online", params(("order_id" = String, Path)),
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn accept(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    step(s, a, id, Step::Accept).await
}

/// The goods are picked.
#[utoipa::path(post, path = "/api/v1/online-orders/{order_id}/pick", tag = "online", params(("order_id" = String, Path)),
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn pick(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    step(s, a, id, Step::Pick).await
}

/// Ready at the counter (the customer is told).
#[utoipa::path(post, path = "/api/v1/online-orders/{order_id}/ready", tag = "online", params(("order_id" = String, Path)),
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn ready(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    step(s, a, id, Step::Ready).await
}

/// The store's rider delivered the order.
#[utoipa::path(post, path = "/api/v1/online-orders/{order_id}/delivered", tag = "online", params(("order_id" = String, Path)),
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delivered(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    step(s, a, id, Step::Delivered).await
}

/// Sends a delivery out: the named rider, else the first free rider, else
/// the courier (`503 no_rider_or_courier` when neither is available).
#[utoipa::path(post, path = "/api/v1/online-orders/{order_id}/dispatch", tag = "online", params(("order_id" = String, Path)),
    request_body = DispatchRequest,
    responses((status = 200, body = OnlineOrderView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn dispatch(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<DispatchRequest>,
) -> Result<Json<OnlineOrderView>, ApiError> {
    Ok(Json(s.app.dispatch(&a, &id, req.rider).await?))
}

/// What a code stands for (community or online order, its lines and
/// status), verified but not handed over.
#[utoipa::path(post, path = "/api/v1/pickups/lookup", tag = "orders", request_body = RedeemRequest,
    responses((status = 200, body = PickupPreview), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn lookup(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> Result<Json<PickupPreview>, ApiError> {
    Ok(Json(s.app.lookup_pickup(&req.code).await?))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PhoneQuery {
    /// The last four digits of the customer's mobile number.
    #[serde(default)]
    last4: String,
    /// Or the whole number: matched by its member hash (the store keeps no
    /// phones), so only that customer's orders are found.
    #[serde(default)]
    phone: String,
}

/// Pickup orders waiting at this store's counter for a customer whose phone
/// ends in these four digits, or is this phone (for a lost code): online
/// pickups that are ready and community orders not yet collected; phones
/// shown masked. Hand one over with `/pickups/redeem` and its
/// `pickup_code`, exactly once as by code.
#[utoipa::path(post, path = "/api/v1/pickups/by-phone", tag = "orders", request_body = PhoneQuery,
    responses((status = 200, body = [PickupPreview]), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn by_phone(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    ApiJson(req): ApiJson<PhoneQuery>,
) -> Result<Json<Vec<PickupPreview>>, ApiError> {
    let typed = if req.phone.trim().is_empty() {
        &req.last4
    } else {
        &req.phone
    };
    Ok(Json(s.app.pickups_by_phone(typed).await?))
}

/// The store's riders and who is out with which order.
#[utoipa::path(get, path = "/api/v1/riders", tag = "online",
    responses((status = 200, body = [RiderView])), security(("bearer" = [])))]
pub(super) async fn riders(
    State(s): State<AppState>,
    Auth(_staff): Auth,
) -> Result<Json<Vec<RiderView>>, ApiError> {
    Ok(Json(s.app.riders().await?))
}

/// Adds (or re-activates) a rider. Needs a manager.
#[utoipa::path(post, path = "/api/v1/riders", tag = "online", request_body = RiderRequest,
    responses((status = 200, body = RiderView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn add_rider(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(req): ApiJson<RiderRequest>,
) -> Result<Json<RiderView>, ApiError> {
    Ok(Json(s.app.add_rider(&a, req).await?))
}
