//! Community pickup orders and their hand-over.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use linli_shared::order::OrderStatus;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, IdemKey};
use super::sales::created;
use crate::app::orders::{OrderRequest, OrderView, RedeemRequest};

/// Takes a community pickup order: reserves stock, returns a pickup code.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = OrderRequest,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = OrderView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<OrderRequest>,
) -> Result<Response, ApiError> {
    let key = key.required()?;
    let (order, replayed) = s.app.create_order(&actor, key, req).await?;
    Ok(created(order, replayed))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct ListQuery {
    status: Option<OrderStatus>,
    /// 1-500, default 100.
    limit: Option<u32>,
}

/// Orders, newest first.
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(ListQuery),
    responses((status = 200, body = [OrderView])), security(("bearer" = [])))]
pub(super) async fn list(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(
        s.app.list_orders(q.status, q.limit.unwrap_or(100)).await?,
    ))
}

/// One order.
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(s.app.get_order(&id).await?))
}

/// Cancels an open order (manager); its reservation is released.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(s.app.cancel_order(&actor, &id).await?))
}

/// Hands an order over by its code, once: the store's six-digit codes, the
/// hub's eight-digit codes of synced orders, or a scanned QR payload
/// (`LP1.…`, verified with the hub's key, no hub needed). A second redeem
/// answers `409 pickup_already_handed_over` with when and by whom; forged or
/// altered codes `403 pickup_forged`, another store's `409
/// pickup_wrong_store`, expired ones `410 pickup_code_expired`.
#[utoipa::path(post, path = "/api/v1/pickups/redeem", tag = "orders", request_body = RedeemRequest,
    responses((status = 200, body = crate::app::online::PickupPreview), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn redeem(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> Result<Json<crate::app::online::PickupPreview>, ApiError> {
    let order = s.app.redeem_any(&actor, &req.code).await?;
    s.metrics.pickups.inc();
    Ok(Json(order))
}
