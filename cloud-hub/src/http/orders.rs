//! The hub's order API: customers' sessions, the store directory, products,
//! sellable stock, placing and following orders, the pickup QR image, and
//! exceptions for managers. Handlers only translate; the rules live in
//! [`crate::app::orders`] and [`crate::app::online`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ClientAddr, err, store_views};
use crate::app::online::{ProductView, SellableView, StoresReport};
use crate::app::orders::{Exception, OrderView, PlaceOrder};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;

fn bearer(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned())
}

async fn caller_from(hub: &Hub, token: &str) -> Result<Caller, HubError> {
    match hub.authenticate(token).await {
        Ok(u) => Ok(Caller::Staff(u)),
        Err(HubError::Unauthenticated) => hub.authenticate_customer(token).await,
        Err(e) => Err(e),
    }
}

/// A hub user or a customer, from `Authorization: Bearer`.
pub(crate) struct Who(pub Caller);

impl FromRequestParts<Hub> for Who {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(HubError::Unauthenticated)?;
        Ok(Who(caller_from(hub, &token).await?))
    }
}

/// Like [`Who`], but also from `?token=`: only for the QR image, which an
/// `<img>` fetches without headers. A token in a URL ends up in logs and
/// histories, so nothing that writes takes one.
pub(crate) struct WhoForImage(pub Caller);

impl FromRequestParts<Hub> for WhoForImage {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, ApiError> {
        let token = bearer(parts)
            .or_else(|| {
                parts.uri.query().and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix("token=").map(str::to_owned))
                })
            })
            .ok_or(HubError::Unauthenticated)?;
        Ok(WhoForImage(caller_from(hub, &token).await?))
    }
}

/// Ends the session of the bearer token (a hub user's or a customer's): it
/// stops working at once.
#[utoipa::path(post, path = "/api/v1/logout", tag = "customers",
    responses((status = 204, description = "logged out"), (status = 401, description = "unauthenticated")),
    security(("bearer" = [])))]
pub(crate) async fn logout(
    State(hub): State<Hub>,
    Who(_who): Who,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(HubError::Unauthenticated)?;
    hub.logout(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller if a token was sent (public endpoints that show more to staff).
pub(crate) struct MaybeWho(pub Option<Caller>);

impl FromRequestParts<Hub> for MaybeWho {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(t) => match caller_from(hub, &t).await {
                Ok(c) => Ok(MaybeWho(Some(c))),
                // a store manager's token on a public read reads as anyone's
                Err(HubError::Unauthenticated) if hub.authenticate_user(&t).await.is_ok() => {
                    Ok(MaybeWho(None))
                }
                Err(e) => Err(e.into()),
            },
            None => Ok(MaybeWho(None)),
        }
    }
}

pub(super) fn bad_json(e: axum::extract::rejection::JsonRejection) -> ApiError {
    match e.status() {
        // the body limit and the content type are not the JSON's fault
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            super::from_status(e.status(), &e.body_text())
        }
        _ => err(StatusCode::BAD_REQUEST, "malformed_json", e.body_text()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRequest {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    openid: Option<String>,
}

/// Opens a customer session (phone and/or WeChat openid) → `{"token","customer_id"}`.
/// An openid is 1-128 letters, digits, `-` or `_`; each client address may
/// open 20 sessions at once and 20 a minute after that (`429 rate_limited`).
#[utoipa::path(post, path = "/api/v1/customer/session", tag = "customers", request_body = SessionRequest,
    responses((status = 200, description = "token and customer id"), (status = 422, description = "invalid phone or openid"),
              (status = 429, description = "rate_limited: too many sessions from this address")))]
pub(crate) async fn session(
    State(hub): State<Hub>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<SessionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let (token, customer_id) = hub
        .customer_session_from(req.phone, req.openid, addr.as_deref())
        .await?;
    Ok(Json(json!({ "token": token, "customer_id": customer_id })))
}

/// The chain's stores: where they are and whom they serve; hub users also
/// see each store's link state.
#[utoipa::path(get, path = "/api/v1/stores", tag = "stores",
    responses((status = 200, description = "stores with location, radius and hours")),
    security((), ("bearer" = [])))]
pub(crate) async fn stores(
    State(hub): State<Hub>,
    MaybeWho(who): MaybeWho,
) -> Json<Vec<serde_json::Value>> {
    // a regional manager sees the stores of their region (with links)
    let scope = match &who {
        Some(Caller::Staff(user)) => Some(hub.scope(user)),
        _ => None,
    };
    let staff = scope.is_some();
    let in_scope = |id: &str| scope.as_ref().is_none_or(|s| s.allows_store(id));
    let mut out: Vec<serde_json::Value> = Vec::new();
    let links = if staff {
        store_views(&hub).await
    } else {
        Vec::new()
    };
    let dir = hub.directory();
    for s in dir.stores.sites().filter(|s| in_scope(&s.store_id)) {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        if staff {
            match links.iter().find(|l| l["store_id"] == s.store_id.as_str()) {
                Some(l) => {
                    if let (Some(o), Some(lo)) = (v.as_object_mut(), l.as_object()) {
                        o.extend(lo.clone());
                    }
                }
                None => v["sync_state"] = json!("never_connected"),
            }
        }
        out.push(v);
    }
    for l in links {
        if !in_scope(l["store_id"].as_str().unwrap_or_default()) {
            continue;
        }
        if dir
            .stores
            .get(l["store_id"].as_str().unwrap_or_default())
            .is_none()
        {
            out.push(l);
        }
    }
    Json(out)
}

/// Imports the store directory (CSV like `data/stores.csv`). Admin only.
#[utoipa::path(post, path = "/api/v1/stores/import", tag = "stores", request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = StoresReport), (status = 415, description = "not text/csv"), (status = 422, description = "bad header")),
    security(("bearer" = [])))]
pub(crate) async fn import_stores(
    State(hub): State<Hub>,
    Who(who): Who,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<StoresReport>, ApiError> {
    let Caller::Staff(user) = who else {
        return Err(HubError::Forbidden.into());
    };
    super::require_csv(&headers)?;
    Ok(Json(hub.import_stores(&user, body.to_vec()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ProductQuery {
    /// Part of a name or SKU.
    q: Option<String>,
    /// Only this category (see `/api/v1/categories`).
    category: Option<String>,
}

/// Products of the chain (same price online and at the counter).
#[utoipa::path(get, path = "/api/v1/products", tag = "products", params(ProductQuery),
    responses((status = 200, body = [ProductView])))]
pub(crate) async fn products(
    State(hub): State<Hub>,
    Query(q): Query<ProductQuery>,
) -> Json<Vec<ProductView>> {
    Json(hub.products(q.q.as_deref(), q.category.as_deref()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct StockQuery {
    sku: String,
}

/// How much of a SKU the hub may sell online at each store (its rights).
#[utoipa::path(get, path = "/api/v1/stock", tag = "stores", params(StockQuery),
    responses((status = 200, body = [SellableView]), (status = 422, description = "unknown SKU")))]
pub(crate) async fn sellable(
    State(hub): State<Hub>,
    Query(q): Query<StockQuery>,
) -> Result<Json<Vec<SellableView>>, ApiError> {
    Ok(Json(hub.sellable(&q.sku).await?))
}

/// The request's `Idempotency-Key` (1-128 visible ASCII characters), which
/// a write that must not happen twice requires.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, HubError> {
    Ok(headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(HubError::IdempotencyKeyRequired)?
        .to_owned())
}

/// Places an online order. `Idempotency-Key` required; a retry returns the
/// first answer. `409 no_store_can_serve` lists stores that could serve part.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", request_body = PlaceOrder,
    params(("Idempotency-Key" = String, Header)),
    responses((status = 201, body = OrderView), (status = 200, body = OrderView, description = "replayed"),
              (status = 409, description = "no_store_can_serve / idempotency_key_reused / open_units_cap (the customer's open units of a SKU would pass the chain's cap)"), (status = 422, description = "invalid")),
    security(("bearer" = [])))]
pub(crate) async fn place(
    State(hub): State<Hub>,
    Who(who): Who,
    headers: HeaderMap,
    body: Result<Json<PlaceOrder>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(req) = body.map_err(bad_json)?;
    let (order, replayed) = hub.place_order(&who, key, req).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(order)).into_response())
}

/// An order's status and timeline (customers see their own orders only).
#[utoipa::path(get, path = "/api/v1/orders/{order_id}", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, description = "order_not_found")), security(("bearer" = [])))]
pub(crate) async fn get_order(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(hub.order(&who, &id).await?))
}

/// Cancels an order that has not left the store; its rights are released.
#[utoipa::path(post, path = "/api/v1/orders/{order_id}/cancel", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, body = OrderView), (status = 404, description = "order_not_found"),
              (status = 409, description = "order_not_cancellable")), security(("bearer" = [])))]
pub(crate) async fn cancel_order(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(hub.cancel_order(&who, &id).await?))
}

/// The pickup QR code as an SVG image (`?token=` works for `<img>`).
#[utoipa::path(get, path = "/api/v1/orders/{order_id}/qr.svg", tag = "orders", params(("order_id" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml", description = "QR code of the signed pickup payload"),
              (status = 404, description = "no such pickup order")), security(("bearer" = [])))]
pub(crate) async fn qr_svg(
    State(hub): State<Hub>,
    WhoForImage(who): WhoForImage,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let order = hub.order(&who, &id).await?;
    let payload = order
        .pickup_qr
        .ok_or_else(|| HubError::OrderNotFound(format!("{id} (not a pickup order)")))?;
    qr_response(&payload)
}

/// `text` as a QR code in an SVG image: the pickup code, a community's
/// join link, a counter coupon's code. Every QR the pages show is drawn
/// here, so the pages carry no QR encoder of their own.
pub(crate) fn qr_response(text: &str) -> Result<Response, ApiError> {
    let code =
        qrcode::QrCode::new(text.as_bytes()).map_err(|e| HubError::Invalid(e.to_string()))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// Exceptions for regional managers (re-routed and refunded orders,
/// cancellations the store handed over anyway).
#[utoipa::path(get, path = "/api/v1/exceptions", tag = "orders",
    responses((status = 200, body = [Exception]), (status = 403, description = "staff only")), security(("bearer" = [])))]
pub(crate) async fn exceptions(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<Vec<Exception>>, ApiError> {
    let Caller::Staff(user) = who else {
        return Err(HubError::Forbidden.into());
    };
    let scope = hub.scope(&user);
    let mut all = hub.exceptions().await?;
    all.retain(|e| scope.allows_store(&e.store_id));
    Ok(Json(all))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Linli hub API",
        description = "Online orders, routing, stock rights and the chain's stores. Amounts in fen; qty in units for `each` products and grams for `kg` products."
    ),
    paths(
        session,
        logout,
        stores,
        import_stores,
        products,
        sellable,
        place,
        get_order,
        cancel_order,
        qr_svg,
        exceptions,
        super::shop::my_orders,
        super::shop::availability,
        super::shop::addresses,
        super::shop::quote,
        super::shop::categories,
        super::health,
        super::login,
        super::import_catalog,
        super::sales,
        super::stock,
        super::export_doc,
        super::customers::import,
        super::customers::get_customer,
        super::customers::unmerge,
        super::customers::export,
        super::customers::erase,
        super::customers::erasure,
        super::communities::get_community,
        super::communities::join,
        super::communities::members,
        super::communities::join_qr,
        super::communities::my_community,
        super::communities::create_poll,
        super::communities::polls,
        super::communities::poll,
        super::communities::vote,
        super::groupbuys::create,
        super::groupbuys::list,
        super::groupbuys::get_one,
        super::groupbuys::commit,
        super::groupbuys::pay,
        super::groupbuys::cancel,
        super::groupbuys::supplier_order,
        super::groupbuys::mine,
        super::promotions::create,
        super::promotions::list,
        super::promotions::get_one,
        super::promotions::claim,
        super::promotions::recall,
        super::promotions::mine,
        super::promotions::coupon_qr,
        super::promotions::markdowns,
        super::promotions::set_markdowns,
        super::payments::pay,
        super::payments::notify,
        super::payments::summary,
        super::live::schedule,
        super::live::list,
        super::live::recent,
        super::me,
        super::live::get,
        super::live::start,
        super::live::end,
        super::live::pin,
        super::live::running,
        super::kpis::kpis,
        super::kpis::kpis_csv,
    ),
    modifiers(&StandardResponses)
)]
pub(crate) struct ApiDoc;

/// The bearer scheme, the error body and the error responses every
/// operation shares (`linli_shared::api_doc`).
struct StandardResponses;

impl utoipa::Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        linli_shared::api_doc::add_standard_responses(openapi);
    }
}

/// The OpenAPI document.
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<ApiDoc as utoipa::OpenApi>::openapi())
}
