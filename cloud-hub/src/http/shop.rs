//! The phone-first shop's reads: "my orders", a store's availability and
//! the compounds the chain delivers to. Handlers only translate; the rules
//! live in [`crate::app::shop`].

use axum::Json;
use axum::extract::{Path, State};

use super::ApiError;
use super::orders::{MaybeWho, Who};
use crate::app::orders::OrderView;
use crate::app::orders::Quote;
use crate::app::shop::{AvailabilityView, CategoryView, CompoundView, QuoteRequest};
use crate::auth::Caller;
use crate::hub::Hub;

/// Every order of the signed-in customer, newest first (at most 100), each
/// with its status, pickup code and QR payload. Customers only.
#[utoipa::path(get, path = "/api/v1/customer/orders", tag = "customers",
    responses((status = 200, body = [OrderView]), (status = 403, description = "forbidden: not a customer session")),
    security(("bearer" = [])))]
pub(crate) async fn my_orders(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(hub.customer_orders(&who).await?))
}

/// What the chain may sell online at a store now, for every product
/// (units, or grams for `kg` products).
#[utoipa::path(get, path = "/api/v1/stores/{id}/availability", tag = "stores", params(("id" = String, Path)),
    responses((status = 200, body = [AvailabilityView]), (status = 404, description = "store_not_found")))]
pub(crate) async fn availability(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<Vec<AvailabilityView>>, ApiError> {
    Ok(Json(hub.availability(&id).await?))
}

/// The residential compounds the chain delivers to (a delivery's address
/// is one of them plus building and room), each with its nearest store.
#[utoipa::path(get, path = "/api/v1/addresses", tag = "stores",
    responses((status = 200, body = [CompoundView])))]
pub(crate) async fn addresses(State(hub): State<Hub>) -> Json<Vec<CompoundView>> {
    Json(hub.compounds())
}

/// What a basket comes to (subtotal, pickup discount, delivery fee, total),
/// priced as a placed order would be; stock is checked only when placing.
/// With `coupon` (one of the caller's online coupons) it needs the
/// customer's token and is checked as the order will check it.
#[utoipa::path(post, path = "/api/v1/quote", tag = "orders", request_body = QuoteRequest,
    responses((status = 200, body = Quote),
              (status = 401, body = linli_shared::api_doc::ErrorBody, description = "unauthenticated: a coupon needs the customer's token"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "coupon_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "coupon_used"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field / unknown_sku / unknown_store / coupon_min_spend / coupon_expired / coupon_wrong_store")),
    security((), ("bearer" = [])))]
pub(crate) async fn quote(
    State(hub): State<Hub>,
    MaybeWho(who): MaybeWho,
    body: Result<Json<QuoteRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Quote>, ApiError> {
    let Json(req) = body.map_err(super::orders::bad_json)?;
    let customer = match who {
        Some(Caller::Customer { customer_id, .. }) => Some(customer_id),
        _ => None,
    };
    Ok(Json(hub.quote(req, customer).await?))
}

/// The catalog's product categories (filter `/api/v1/products?category=`).
#[utoipa::path(get, path = "/api/v1/categories", tag = "products",
    responses((status = 200, body = [CategoryView])))]
pub(crate) async fn categories(State(hub): State<Hub>) -> Json<Vec<CategoryView>> {
    Json(hub.categories())
}
