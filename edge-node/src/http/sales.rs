//! Sales and refunds.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, IdemKey};
use crate::app::sales::{
    RefundReceipt, RefundRequest, SaleQuote, SaleQuoteRequest, SaleReceipt, SaleRequest,
    SaleSummary,
};

/// `201` with the body; a replayed idempotent request says so in a header.
pub(super) fn created<T: serde::Serialize>(body: T, replayed: bool) -> Response {
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        resp.headers_mut().insert(
            HeaderName::from_static("idempotent-replayed"),
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// Records a counter sale. Lines by barcode, scale label or SKU; payments
/// must cover the total (only cash may exceed it). Never refused for stock.
#[utoipa::path(post, path = "/api/v1/sales", tag = "sales", request_body = SaleRequest,
    params(("Idempotency-Key" = String, Header, description = "required; a retry with the same key returns the same sale")),
    responses((status = 201, body = SaleReceipt), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the coupon is used, its budget spent or recalled by the hub (coupon_used, coupon_budget_exhausted, coupon_recalled)"),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<SaleRequest>,
) -> Result<Response, ApiError> {
    let key = key.required()?;
    let (receipt, replayed) = s.app.record_sale(&actor, key, req).await?;
    if !replayed {
        s.metrics.sales.inc();
        s.metrics.sales_fen.inc_by(receipt.total_fen.max(0) as u64);
    }
    Ok(created(receipt, replayed))
}

/// Prices a basket as a sale would now (markdowns, coupon) and writes
/// nothing: the till shows this total before payment.
#[utoipa::path(post, path = "/api/v1/sales/quote", tag = "sales", request_body = SaleQuoteRequest,
    responses((status = 200, body = SaleQuote), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "the coupon is used, its budget spent or recalled by the hub (coupon_used, coupon_budget_exhausted, coupon_recalled)"),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn quote(
    State(s): State<AppState>,
    Auth(_actor): Auth,
    ApiJson(req): ApiJson<SaleQuoteRequest>,
) -> Result<Json<SaleQuote>, ApiError> {
    Ok(Json(s.app.quote_sale(req).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct DayQuery {
    /// Business day `YYYY-MM-DD`; default today.
    day: Option<String>,
}

/// A business day's sales in ticket order.
#[utoipa::path(get, path = "/api/v1/sales", tag = "sales", params(DayQuery),
    responses((status = 200, body = [SaleSummary]), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Query(q): Query<DayQuery>,
) -> Result<Json<Vec<SaleSummary>>, ApiError> {
    let day = match q.day {
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "day must be YYYY-MM-DD",
            )
        })?,
        None => s.app.business_day(s.app.now()),
    };
    Ok(Json(s.app.sales_of_day(day).await?))
}

/// A sale with its refund state.
#[utoipa::path(get, path = "/api/v1/sales/{sale_id}", tag = "sales", params(("sale_id" = String, Path)),
    responses((status = 200, body = SaleReceipt), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(id): Path<String>,
) -> Result<Json<SaleReceipt>, ApiError> {
    Ok(Json(s.app.get_sale(&id).await?))
}

/// Refunds a whole sale or some lines (manager); goods go back on the shelf
/// or are recorded as waste.
#[utoipa::path(post, path = "/api/v1/sales/{sale_id}/refunds", tag = "sales", request_body = RefundRequest,
    params(("sale_id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 201, body = RefundReceipt), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn refund(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RefundRequest>,
) -> Result<Response, ApiError> {
    let key = key.required()?;
    let (receipt, replayed) = s.app.refund_sale(&actor, key, &id, req).await?;
    Ok(created(receipt, replayed))
}
