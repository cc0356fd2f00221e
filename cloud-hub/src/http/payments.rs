//! The hub's payment API: the prepay of an order, the provider's
//! notification, and the refund queue's counts. Handlers only translate;
//! the rules live in [`crate::app::payment`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::ApiError;
use super::orders::Who;
use crate::app::payment::{NotifyAck, PrepayView, RefundSummary};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;

/// Pays an order: the prepay the customer's phone hands to the payment
/// sheet (here the simulator's cashier, `cashier_url`). Idempotent: paying
/// again returns the same prepay. Only the customer who owns the order (or
/// staff). Unpaid by `pay_by`, the order is cancelled.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/pay", tag = "payments", params(("order_id" = String, Path)),
    responses((status = 200, body = PrepayView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "order_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "payment_not_required (this hub or order takes no online payment) / payment_closed (cancelled or unpaid too long)"),
              (status = 502, body = linli_shared::api_doc::ErrorBody, description = "payment_refused: the provider refused the prepay"),
              (status = 503, body = linli_shared::api_doc::ErrorBody, description = "payment_unavailable: the provider cannot be reached; try again")),
    security(("bearer" = [])))]
pub(crate) async fn pay(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
) -> Result<Json<PrepayView>, ApiError> {
    Ok(Json(hub.pay_order(&who, &id).await?))
}

/// The payment provider's notification (WeChat Pay v3's shape; see the
/// `linli-pay` crate): headers `Wechatpay-Timestamp`, `Wechatpay-Nonce`,
/// `Wechatpay-Signature` (HMAC-SHA256 of `timestamp\nnonce\nbody\n` with
/// the merchant key). A forged one is refused (`401 invalid_signature`) and
/// changes nothing; a repeated one answers `200` and changes nothing; one
/// whose amount is not the order's total is refused (`422
/// amount_mismatch`) and raised for a manager.
#[utoipa::path(post, path = "/api/v1/pay/notify", tag = "payments",
    request_body(content = String, content_type = "application/json", description = "the signed notification"),
    responses((status = 200, body = NotifyAck, description = "applied, or already applied"),
              (status = 400, body = linli_shared::api_doc::ErrorBody, description = "invalid_notification"),
              (status = 401, body = linli_shared::api_doc::ErrorBody, description = "invalid_signature"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "order_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "payment_not_required: this hub takes no online payment"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "amount_mismatch")))]
pub(crate) async fn notify(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<NotifyAck>, ApiError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    hub.pay_notified(get, &body).await?;
    Ok(Json(NotifyAck {
        code: "SUCCESS".into(),
        message: "成功".into(),
    }))
}

/// How many refunds are pending, succeeded and failed. Staff.
#[utoipa::path(get, path = "/api/v1/refunds/summary", tag = "payments",
    responses((status = 200, body = RefundSummary),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "staff only")),
    security(("bearer" = [])))]
pub(crate) async fn summary(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<RefundSummary>, ApiError> {
    if !matches!(who, Caller::Staff(_)) {
        return Err(HubError::Forbidden.into());
    }
    Ok(Json(hub.refund_summary().await?))
}
