//! Promotions over HTTP: coupon campaigns (admin), customers' claims, and
//! each store's markdowns (admin or that store's manager). The rules live
//! in [`crate::app::coupons`], [`crate::app::markdowns`] and
//! [`linli_shared::pricing`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::ApiError;
use super::orders::{Who, WhoForImage, bad_json, idempotency_key};
use crate::app::coupons::{ClaimRequest, ClaimView, CouponView, NewCoupon, RecallRequest};
use crate::app::markdowns::SetMarkdowns;
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;
use linli_shared::pricing::StoreMarkdowns;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Opens a coupon campaign: what it takes off (an amount or a percentage
/// of the total after line prices), the minimum spend, the budget, the
/// per-customer limit, the validity, and the stores whose counters take it
/// (each lent `counter_allotment_fen` of the budget to give away offline).
/// Admin.
#[utoipa::path(post, path = "/api/v1/coupons", tag = "promotions", request_body = NewCoupon,
    responses((status = 201, body = CouponView),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, unknown_store")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(hub): State<Hub>,
    Who(who): Who,
    body: JsonBody<NewCoupon>,
) -> Result<(StatusCode, Json<CouponView>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let Caller::Staff(user) = who else {
        return Err(HubError::Forbidden.into());
    };
    Ok((
        StatusCode::CREATED,
        Json(hub.create_coupon(&user, req).await?),
    ))
}

/// Campaigns valid now, with their money (budget, lent to counters, used
/// online and at counters, what online orders may still take).
#[utoipa::path(get, path = "/api/v1/coupons", tag = "promotions",
    responses((status = 200, body = [CouponView])))]
pub(crate) async fn list(State(hub): State<Hub>) -> Result<Json<Vec<CouponView>>, ApiError> {
    Ok(Json(hub.coupons().await?))
}

/// One campaign with its money.
#[utoipa::path(get, path = "/api/v1/coupons/{coupon_id}", tag = "promotions",
    params(("coupon_id" = String, Path)),
    responses((status = 200, body = CouponView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "coupon_not_found")))]
pub(crate) async fn get_one(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<CouponView>, ApiError> {
    Ok(Json(hub.coupon(&id).await?))
}

/// Recalls counters' coupon allotments (admin): every store of the
/// campaign, or `store_ids`. Each counter stops taking the campaign when
/// the recall reaches it and gives back what it has not spent; the hub
/// counts a return (`returned_fen`, and online orders may spend it) when
/// it arrives, so a store offline meanwhile keeps redeeming within its
/// allotment and the budget is never passed. Recalling again changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/coupons/{coupon_id}/recall", tag = "promotions",
    params(("coupon_id" = String, Path)), request_body = RecallRequest,
    responses((status = 200, body = CouponView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "coupon_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, coupon_not_here")),
    security(("bearer" = [])))]
pub(crate) async fn recall(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
    body: JsonBody<RecallRequest>,
) -> Result<Json<CouponView>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let Caller::Staff(user) = who else {
        return Err(HubError::Forbidden.into());
    };
    Ok(Json(hub.recall_coupon(&user, &id, req).await?))
}

/// A customer claims a coupon (`Idempotency-Key` required; a retry returns
/// the first claim with 200): for online orders (`{"use":"online"}`, the
/// default), or for one store's counter (`{"use":"counter","store_id"}`:
/// the answer carries the signed `code` the counter scans, offline too).
#[utoipa::path(post, path = "/api/v1/coupons/{coupon_id}/claims", tag = "promotions",
    params(("coupon_id" = String, Path), ("Idempotency-Key" = String, Header)), request_body = ClaimRequest,
    responses((status = 201, body = ClaimView), (status = 200, body = ClaimView, description = "replayed"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "coupon_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "coupon_limit, idempotency_key_reused"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, coupon_expired, coupon_not_here")),
    security(("bearer" = [])))]
pub(crate) async fn claim(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<ClaimRequest>,
) -> Result<(StatusCode, Json<ClaimView>), ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(req) = body.map_err(bad_json)?;
    let (v, replayed) = hub.claim_coupon(&who, key, &id, req).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(v)))
}

/// The caller's coupons: `available`, `used` (by which order or sale) or
/// `expired`. Customers.
#[utoipa::path(get, path = "/api/v1/customer/coupons", tag = "promotions",
    responses((status = 200, body = [ClaimView])),
    security(("bearer" = [])))]
pub(crate) async fn mine(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<Vec<ClaimView>>, ApiError> {
    let Caller::Customer { customer_id, .. } = who else {
        return Err(HubError::Forbidden.into());
    };
    Ok(Json(hub.my_coupons(&customer_id).await?))
}

/// A counter coupon's code as a QR code (SVG) for the till's scanner
/// (`?token=` works for `<img>`). The coupon's customer.
#[utoipa::path(get, path = "/api/v1/customer/coupons/{claim_id}/qr.svg", tag = "promotions",
    params(("claim_id" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml", description = "QR code of the signed coupon code"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "coupon_not_found (or an online coupon, which has no code)")),
    security(("bearer" = [])))]
pub(crate) async fn coupon_qr(
    State(hub): State<Hub>,
    WhoForImage(who): WhoForImage,
    Path(claim_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let Caller::Customer { customer_id, .. } = who else {
        return Err(HubError::Forbidden.into());
    };
    let code = hub
        .my_coupons(&customer_id)
        .await?
        .into_iter()
        .find(|c| c.claim_id == claim_id)
        .and_then(|c| c.code)
        .ok_or(HubError::CouponNotFound(claim_id))?;
    super::orders::qr_response(&code)
}

/// A store's markdowns (timed price cuts, e.g. the evening fresh-food
/// markdown) with their version.
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/markdowns", tag = "promotions",
    params(("store_id" = String, Path)),
    responses((status = 200, body = StoreMarkdowns)))]
pub(crate) async fn markdowns(
    State(hub): State<Hub>,
    Path(store): Path<String>,
) -> Result<Json<StoreMarkdowns>, ApiError> {
    Ok(Json(hub.markdowns(&store).await?))
}

/// Replaces a store's markdowns (admin, or the store's manager): each for
/// some SKUs or one category, a share paid (`pay_percent`) or a price,
/// daily between two local times. Online orders of the store are priced
/// with them at once; its counter, when the list reaches it by sync.
#[utoipa::path(put, path = "/api/v1/stores/{store_id}/markdowns", tag = "promotions",
    params(("store_id" = String, Path)), request_body = SetMarkdowns,
    responses((status = 200, body = StoreMarkdowns),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden, not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, unknown_sku")),
    security(("bearer" = [])))]
pub(crate) async fn set_markdowns(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(store): Path<String>,
    body: JsonBody<SetMarkdowns>,
) -> Result<Json<StoreMarkdowns>, ApiError> {
    let user = super::communities::hub_user(&hub, &headers).await?;
    let Json(req) = body.map_err(bad_json)?;
    Ok(Json(hub.set_markdowns(&user, &store, req).await?))
}
