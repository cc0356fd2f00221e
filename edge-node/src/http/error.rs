//! The one API error: a status, a stable machine-readable `code`, a message
//! that tells the caller what to fix, and sometimes `details`.
//!
//! Body: `{"error":{"code","message","details"?}}`. Internal failures are
//! logged with their cause and answered with a generic message, never with
//! SQL or file paths.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use linli_shared::barcode::BarcodeError;
use linli_shared::sale::PaymentError;
use serde_json::{Value, json};

use crate::app::AppError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// The error body, as documented in the OpenAPI document (one definition
/// for both servers).
pub use linli_shared::api_doc::{ErrorBody, ErrorDetail};

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        use StatusCode as S;
        let msg = e.to_string();
        match e {
            AppError::InvalidField { field, .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_field", msg)
                    .with_details(json!({ "field": field }))
            }
            AppError::InvalidBarcode { field, source } => {
                let code = match source {
                    BarcodeError::CheckDigit { .. } => "barcode_check_digit",
                    _ => "invalid_barcode",
                };
                ApiError::new(S::UNPROCESSABLE_ENTITY, code, msg)
                    .with_details(json!({ "field": field }))
            }
            AppError::InvalidQuantity { field, .. } => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_quantity", msg)
                    .with_details(json!({ "field": field }))
            }
            AppError::UnknownBarcode(code) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "unknown_barcode", msg)
                    .with_details(json!({ "barcode": code }))
            }
            AppError::UnknownSku(sku) => ApiError::new(S::UNPROCESSABLE_ENTITY, "unknown_sku", msg)
                .with_details(json!({ "sku": sku })),
            AppError::Payment(p) => {
                let code = match p {
                    PaymentError::Insufficient { .. } => "payment_insufficient",
                    PaymentError::NonCashOverpaid { .. } => "payment_overpaid",
                    PaymentError::ChangeTooLarge { .. } => "change_too_large",
                    _ => "invalid_payment",
                };
                let details = match p {
                    PaymentError::ChangeTooLarge { max_change, .. } => {
                        Some(json!({ "field": "payments", "max_change_fen": max_change }))
                    }
                    _ => None,
                };
                let e = ApiError::new(S::UNPROCESSABLE_ENTITY, code, msg);
                match details {
                    Some(d) => e.with_details(d),
                    None => e,
                }
            }
            AppError::SaleNotFound(_) => ApiError::not_found("sale_not_found", msg),
            AppError::OrderNotFound(_) => ApiError::not_found("order_not_found", msg),
            AppError::RefundExceedsSale(_) => {
                ApiError::new(S::CONFLICT, "refund_exceeds_sale", msg)
            }
            AppError::InsufficientStock {
                sku,
                available,
                requested,
            } => ApiError::new(S::CONFLICT, "insufficient_stock", msg).with_details(
                json!({ "sku": sku, "available": available, "requested": requested }),
            ),
            AppError::PickupCodeUnknown(_) => ApiError::not_found("pickup_code_unknown", msg),
            AppError::PickupAlreadyHandedOver { order_id, at, by } => {
                ApiError::new(S::CONFLICT, "pickup_already_handed_over", msg).with_details(
                    json!({ "order_id": order_id, "handed_over_at": at, "handed_over_by": by }),
                )
            }
            AppError::PickupCancelled { order_id, at } => {
                ApiError::new(S::GONE, "pickup_order_cancelled", msg)
                    .with_details(json!({ "order_id": order_id, "cancelled_at": at }))
            }
            AppError::PickupExpired { order_id, at } => {
                ApiError::new(S::GONE, "pickup_code_expired", msg)
                    .with_details(json!({ "order_id": order_id, "expired_at": at }))
            }
            AppError::PickupCode(e) => {
                use linli_shared::pickup::PickupCodeError as P;
                match e {
                    P::Malformed => {
                        ApiError::new(S::UNPROCESSABLE_ENTITY, "pickup_code_malformed", msg)
                    }
                    P::BadSignature => ApiError::new(S::FORBIDDEN, "pickup_forged", msg),
                    P::WrongStore { store } => {
                        ApiError::new(S::CONFLICT, "pickup_wrong_store", msg)
                            .with_details(json!({ "store_id": store }))
                    }
                    P::Expired { at } => ApiError::new(S::GONE, "pickup_code_expired", msg)
                        .with_details(json!({ "expired_at": at })),
                }
            }
            AppError::OrderStep {
                order_id,
                status,
                step,
            } => ApiError::new(S::CONFLICT, "order_step_not_allowed", msg)
                .with_details(json!({ "order_id": order_id, "status": status, "step": step })),
            AppError::PickupKeyMissing => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "pickup_key_missing", msg)
            }
            AppError::NoCourier(_) => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "no_rider_or_courier", msg)
            }
            AppError::OrderNotCancellable { .. } => {
                ApiError::new(S::CONFLICT, "order_not_cancellable", msg)
            }
            AppError::NotTakenAtStore(_) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "not_taken_at_store", msg)
            }
            AppError::IdempotencyKeyReused(_) => {
                ApiError::new(S::UNPROCESSABLE_ENTITY, "idempotency_key_reused", msg)
            }
            AppError::IdempotencyKeyRequired => {
                ApiError::new(S::BAD_REQUEST, "idempotency_key_required", msg)
            }
            AppError::GroupBuyNotFound(_) => ApiError::not_found("group_buy_not_found", msg),
            AppError::GroupBuy(e) => {
                use linli_shared::groupbuy::CommitError as G;
                match e {
                    G::Qty => ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_field", msg),
                    G::Closed(_) | G::NotOpen(_) => {
                        ApiError::new(S::CONFLICT, "group_buy_closed", msg)
                    }
                    G::StoreNotIn(_) => {
                        ApiError::new(S::UNPROCESSABLE_ENTITY, "store_not_in_group_buy", msg)
                    }
                    G::Limit { .. } => ApiError::new(S::CONFLICT, "per_customer_limit", msg),
                    G::Allotment { left } => ApiError::new(S::CONFLICT, "allotment_exhausted", msg)
                        .with_details(json!({ "left": left })),
                }
            }
            AppError::CommitmentNotFound(_) => ApiError::not_found("commitment_not_found", msg),
            AppError::Cancel(e) => ApiError::new(S::CONFLICT, e.code(), msg),
            AppError::FailedRefund(e) => ApiError::new(S::CONFLICT, e.code(), msg),
            AppError::Coupon(e) => {
                use linli_shared::coupon::CouponError as C;
                let status = match e {
                    C::AlreadyUsed | C::BudgetExhausted | C::Recalled(_) => S::CONFLICT,
                    _ => S::UNPROCESSABLE_ENTITY,
                };
                ApiError::new(status, e.code(), msg)
            }
            AppError::CatalogCsv(_) => ApiError::new(S::UNPROCESSABLE_ENTITY, "invalid_csv", msg),
            AppError::Unauthenticated => ApiError::new(S::UNAUTHORIZED, "unauthenticated", msg),
            AppError::BadCredentials => ApiError::new(S::UNAUTHORIZED, "invalid_credentials", msg),
            AppError::LockedOut {
                retry_after_secs, ..
            } => ApiError::new(S::TOO_MANY_REQUESTS, "locked_out", msg)
                .with_details(json!({ "retry_after_secs": retry_after_secs })),
            AppError::RateLimited { retry_after_secs } => {
                ApiError::new(S::TOO_MANY_REQUESTS, "rate_limited", msg)
                    .with_details(json!({ "retry_after_secs": retry_after_secs }))
            }
            AppError::Forbidden { .. } => ApiError::new(S::FORBIDDEN, "forbidden", msg),
            AppError::StaffExists(_) => ApiError::new(S::CONFLICT, "staff_exists", msg),
            AppError::Recovering => ApiError::new(S::SERVICE_UNAVAILABLE, "recovering", msg),
            AppError::Store(StoreError::Closed) => ApiError::new(
                S::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node is shutting down; retry with the same Idempotency-Key",
            ),
            AppError::Store(err) => {
                tracing::error!(error = %err, "database failure");
                ApiError::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the node could not complete the request; nothing was recorded, retry with the same Idempotency-Key",
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        use StatusCode as S;
        match r {
            JsonRejection::JsonSyntaxError(e) => ApiError::new(
                S::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => ApiError::new(
                S::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("request body does not match the schema: {}", e.body_text()),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            other if other.status() == S::PAYLOAD_TOO_LARGE => body_too_large(),
            other => ApiError::new(other.status(), "bad_request", other.body_text()),
        }
    }
}

/// The API error for a bare status, keeping `detail` (what axum or a layer
/// said) for the caller: the net under every error no handler built itself.
pub fn from_status(status: StatusCode, detail: &str) -> ApiError {
    let (code, message) = linli_shared::api_doc::status_error(status.as_u16(), detail);
    ApiError::new(status, code, message)
}

/// Response layer: an error response that is not already the JSON error
/// shape (axum's plain-text rejections of bad query strings or paths, an
/// empty 405 of a nested router, a 413 from a body limit) is rewritten into
/// it, keeping its status and the headers that tell the caller what to do.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let detail = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut out = from_status(status, &detail).into_response();
    use axum::http::header;
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "request body is larger than this endpoint accepts; send fewer lines per request",
    )
}
