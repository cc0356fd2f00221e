//! The phone-first shop's reads: "my orders", a store's availability and
//! the compounds the chain delivers to. Handlers only translate; the rules
//! live in [`crate::shop`].

use axum::Json;
use axum::extract::{Path, State};

use super::ApiError;
use super::orders::Who;
use crate::hub::Hub;
use crate::orders::OrderView;
use crate::shop::{AvailabilityView, CompoundView};

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
