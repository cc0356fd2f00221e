//! The hub's JSON API under `/api/v1` and its `/health`.
//!
//! Errors are `{"error":{"code","message"}}` like the store node's.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::json;

use linli_shared::live::LiveError;

use crate::auth::User;
use crate::error::HubError;
use crate::hub::Hub;

mod communities;
mod customers;
mod groupbuys;
mod kpis;
mod live;
mod orders;
mod payments;
mod promotions;
mod shop;

#[derive(Debug)]
pub struct ApiError(StatusCode, &'static str, String, Option<serde_json::Value>);

fn err(status: StatusCode, code: &'static str, msg: String) -> ApiError {
    ApiError(status, code, msg, None)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.1, "message": self.2});
        if let Some(d) = self.3 {
            err["details"] = d;
        }
        (self.0, Json(json!({ "error": err }))).into_response()
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let msg = e.to_string();
        match e {
            HubError::Unauthenticated => err(StatusCode::UNAUTHORIZED, "unauthenticated", msg),
            HubError::BadCredentials => err(StatusCode::UNAUTHORIZED, "invalid_credentials", msg),
            HubError::LockedOut { retry_after_secs } => ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                "locked_out",
                msg,
                Some(json!({ "retry_after_secs": retry_after_secs })),
            ),
            HubError::RateLimited { retry_after_secs } => ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                msg,
                Some(json!({ "retry_after_secs": retry_after_secs })),
            ),
            HubError::OpenUnitsCap {
                sku,
                cap,
                open,
                requested,
            } => ApiError(
                StatusCode::CONFLICT,
                "open_units_cap",
                msg,
                Some(json!({ "sku": sku, "cap": cap, "open": open, "requested": requested })),
            ),
            HubError::Forbidden => err(StatusCode::FORBIDDEN, "forbidden", msg),
            HubError::Invalid(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", msg),
            HubError::UserExists(_) => err(StatusCode::CONFLICT, "user_exists", msg),
            HubError::Csv(_) | HubError::StoresCsv(_) | HubError::IdentityCsv(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", msg)
            }
            HubError::IdentityRows(rejected) => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_csv",
                msg,
                Some(json!({ "rejected": rejected })),
            ),
            HubError::CustomerNotFound(_) => err(StatusCode::NOT_FOUND, "customer_not_found", msg),
            HubError::CustomerErased { ref erasure_id, .. } => ApiError(
                StatusCode::GONE,
                "customer_erased",
                msg.clone(),
                Some(json!({ "erasure_id": erasure_id })),
            ),
            HubError::ErasureNotFound(_) => err(StatusCode::NOT_FOUND, "erasure_not_found", msg),
            HubError::UnknownSku(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku", msg),
            HubError::UnknownStore(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_store", msg)
            }
            HubError::OrderNotFound(_) => err(StatusCode::NOT_FOUND, "order_not_found", msg),
            HubError::StoreNotFound(_) => err(StatusCode::NOT_FOUND, "store_not_found", msg),
            HubError::NotCancellable { .. } => {
                err(StatusCode::CONFLICT, "order_not_cancellable", msg)
            }
            HubError::IdempotencyKeyReused(_) => {
                err(StatusCode::CONFLICT, "idempotency_key_reused", msg)
            }
            HubError::IdempotencyKeyRequired => {
                err(StatusCode::BAD_REQUEST, "idempotency_key_required", msg)
            }
            HubError::Unserved(u) => ApiError(
                StatusCode::CONFLICT,
                "no_store_can_serve",
                msg,
                Some(
                    json!({ "alternatives": u.alternatives, "serving_stores": u.serving_stores, "shortages": u.shortages }),
                ),
            ),
            HubError::Poll(ref p) => {
                use linli_shared::community::PollError;
                let code = match p {
                    PollError::Closed(_) => "poll_closed",
                    PollError::NoSuchOption(_) => "no_such_option",
                    PollError::UnknownSku(_) => "unknown_sku",
                    _ => "invalid_field",
                };
                let status = match p {
                    PollError::Closed(_) => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                err(status, code, msg)
            }
            HubError::PollNotFound(_) => err(StatusCode::NOT_FOUND, "poll_not_found", msg),
            HubError::NotAMember(_) => err(StatusCode::FORBIDDEN, "not_a_member", msg),
            HubError::AlreadyVoted(_) => err(StatusCode::CONFLICT, "already_voted", msg),
            HubError::WrongJoinCode => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "wrong_join_code", msg)
            }
            HubError::OutsideServiceArea { serving, .. } => ApiError(
                StatusCode::CONFLICT,
                "outside_service_area",
                msg,
                Some(json!({ "serving": serving })),
            ),
            HubError::GroupBuyNotFound(_) => err(StatusCode::NOT_FOUND, "group_buy_not_found", msg),
            HubError::CommitmentNotFound(_) => {
                err(StatusCode::NOT_FOUND, "commitment_not_found", msg)
            }
            HubError::GroupBuyNotReached(_) => {
                err(StatusCode::CONFLICT, "group_buy_not_reached", msg)
            }
            HubError::Commit(ref e) => {
                use linli_shared::groupbuy::CommitError;
                let (status, code) = match e {
                    CommitError::Qty => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
                    CommitError::Closed(_) => (StatusCode::CONFLICT, "group_buy_closed"),
                    CommitError::NotOpen(_) => (StatusCode::CONFLICT, "group_buy_closed"),
                    CommitError::StoreNotIn(_) => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "store_not_in_group_buy")
                    }
                    CommitError::Limit { .. } => (StatusCode::CONFLICT, "per_customer_limit"),
                    CommitError::Allotment { .. } => (StatusCode::CONFLICT, "allotment_exhausted"),
                };
                err(status, code, msg)
            }
            HubError::CancelCommitment(ref e) => err(StatusCode::CONFLICT, e.code(), msg),
            HubError::BadSignature => err(StatusCode::UNAUTHORIZED, "invalid_signature", msg),
            HubError::InvalidNotification(_) => {
                err(StatusCode::BAD_REQUEST, "invalid_notification", msg)
            }
            HubError::AmountMismatch { expected, got } => ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "amount_mismatch",
                msg,
                Some(json!({ "expected_fen": expected, "got_fen": got })),
            ),
            HubError::PaymentNotRequired(_) => {
                err(StatusCode::CONFLICT, "payment_not_required", msg)
            }
            HubError::PaymentClosed(_) => err(StatusCode::CONFLICT, "payment_closed", msg),
            HubError::PaymentUnavailable(_) => {
                err(StatusCode::SERVICE_UNAVAILABLE, "payment_unavailable", msg)
            }
            HubError::PaymentRefused(_) => err(StatusCode::BAD_GATEWAY, "payment_refused", msg),
            HubError::RefundRefused(_) => err(StatusCode::CONFLICT, "refund_refused", msg),
            HubError::LiveSessionNotFound(_) => {
                err(StatusCode::NOT_FOUND, "live_session_not_found", msg)
            }
            HubError::NotYourStore(_) => err(StatusCode::FORBIDDEN, "not_your_store", msg),
            HubError::NotYourRegion(_) => err(StatusCode::FORBIDDEN, "not_your_region", msg),
            HubError::CouponNotFound(_) => err(StatusCode::NOT_FOUND, "coupon_not_found", msg),
            HubError::Coupon(ref e) => {
                use linli_shared::coupon::CouponError;
                let status = match e {
                    CouponError::AlreadyUsed
                    | CouponError::BudgetExhausted
                    | CouponError::Recalled(_) => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                err(status, e.code(), msg)
            }
            HubError::CouponLimit(_) => err(StatusCode::CONFLICT, "coupon_limit", msg),
            HubError::Live(e) => match e {
                LiveError::Invalid(_) => {
                    err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", msg)
                }
                LiveError::UnknownSku(_) => {
                    err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku", msg)
                }
                LiveError::NotFeatured(_) => {
                    err(StatusCode::UNPROCESSABLE_ENTITY, "not_featured", msg)
                }
                LiveError::State { .. } => err(StatusCode::CONFLICT, "live_session_state", msg),
            },
            HubError::Store(_) | HubError::Doc(_) => {
                tracing::error!(error = %msg, "hub failure");
                err(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the hub could not complete the request".into(),
                )
            }
        }
    }
}

struct Auth(User);

/// The client's address (IP only), if the server runs with connect info;
/// logins and customer sessions are limited per address.
pub(crate) struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

impl FromRequestParts<Hub> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(HubError::Unauthenticated)?;
        Ok(Auth(hub.authenticate(token.trim()).await?))
    }
}

/// The API error for a bare status, keeping `detail` (what axum said) for
/// the caller: the net under every error no handler built itself.
fn from_status(status: StatusCode, detail: &str) -> ApiError {
    let (code, message) = linli_shared::api_doc::status_error(status.as_u16(), detail);
    err(status, code, message)
}

/// Response layer: an error response that is not already the JSON error
/// shape (axum's plain-text rejections of bad query strings or paths, an
/// empty 405, a 413 from a body limit) is rewritten into it, keeping its
/// status and the headers that tell the caller what to do.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
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
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

pub fn router(hub: Hub) -> Router {
    let cors = console_cors(&hub.order_settings.console_origins);
    Router::new()
        .route("/", get(shop))
        .route("/dashboard", get(dashboard))
        .route("/api/v1/me", get(me))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(orders::logout))
        .route(
            "/api/v1/catalog/import",
            post(import_catalog).layer(DefaultBodyLimit::max(8 * 1024 * 1024)),
        )
        .route("/api/v1/openapi.json", get(orders::openapi))
        .route("/api/v1/customer/session", post(orders::session))
        .route("/api/v1/customer/orders", get(shop::my_orders))
        .route("/api/v1/addresses", get(shop::addresses))
        .route("/api/v1/quote", post(shop::quote))
        .route("/api/v1/categories", get(shop::categories))
        .route("/api/v1/stores/{id}/availability", get(shop::availability))
        .route("/api/v1/stores", get(orders::stores))
        .route(
            "/api/v1/stores/import",
            post(orders::import_stores).layer(DefaultBodyLimit::max(2 * 1024 * 1024)),
        )
        .route("/api/v1/products", get(orders::products))
        .route("/api/v1/stock", get(orders::sellable))
        .route("/api/v1/orders", post(orders::place))
        .route("/api/v1/orders/{id}", get(orders::get_order))
        .route("/api/v1/orders/{id}/cancel", post(orders::cancel_order))
        .route("/api/v1/orders/{id}/pay", post(payments::pay))
        .route("/api/v1/pay/notify", post(payments::notify))
        .route("/api/v1/refunds/summary", get(payments::summary))
        .route("/api/v1/orders/{id}/qr.svg", get(orders::qr_svg))
        .route("/api/v1/exceptions", get(orders::exceptions))
        .route("/api/v1/kpis", get(kpis::kpis))
        .route("/api/v1/kpis.csv", get(kpis::kpis_csv))
        .route(
            "/api/v1/customers/identities/import",
            post(customers::import).layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
        .route("/api/v1/customers/{id}", get(customers::get_customer))
        .route(
            "/api/v1/communities/{store_id}",
            get(communities::get_community),
        )
        .route(
            "/api/v1/communities/{store_id}/members",
            get(communities::members).post(communities::join),
        )
        .route(
            "/api/v1/communities/{store_id}/join-qr.svg",
            get(communities::join_qr),
        )
        .route(
            "/api/v1/communities/{store_id}/polls",
            get(communities::polls).post(communities::create_poll),
        )
        .route(
            "/api/v1/communities/{store_id}/polls/{poll_id}",
            get(communities::poll),
        )
        .route(
            "/api/v1/communities/{store_id}/polls/{poll_id}/votes",
            post(communities::vote),
        )
        .route("/api/v1/customer/community", get(communities::my_community))
        .route(
            "/api/v1/group-buys",
            get(groupbuys::list).post(groupbuys::create),
        )
        .route("/api/v1/group-buys/{id}", get(groupbuys::get_one))
        .route(
            "/api/v1/group-buys/{id}/commitments",
            post(groupbuys::commit),
        )
        .route(
            "/api/v1/group-buys/{id}/commitments/{cid}/pay",
            post(groupbuys::pay),
        )
        .route(
            "/api/v1/group-buys/{id}/commitments/{cid}/cancel",
            post(groupbuys::cancel),
        )
        .route(
            "/api/v1/group-buys/{id}/supplier-order",
            get(groupbuys::supplier_order),
        )
        .route("/api/v1/customer/group-buys", get(groupbuys::mine))
        .route(
            "/api/v1/coupons",
            get(promotions::list).post(promotions::create),
        )
        .route("/api/v1/coupons/{id}", get(promotions::get_one))
        .route("/api/v1/coupons/{id}/claims", post(promotions::claim))
        .route("/api/v1/coupons/{id}/recall", post(promotions::recall))
        .route("/api/v1/customer/coupons", get(promotions::mine))
        .route(
            "/api/v1/customer/coupons/{claim_id}/qr.svg",
            get(promotions::coupon_qr),
        )
        .route(
            "/api/v1/stores/{id}/markdowns",
            get(promotions::markdowns).put(promotions::set_markdowns),
        )
        .route("/api/v1/customers/{id}/unmerge", post(customers::unmerge))
        .route("/api/v1/customers/{id}/export", get(customers::export))
        .route("/api/v1/customers/{id}/erase", post(customers::erase))
        .route("/api/v1/erasures/{id}", get(customers::erasure))
        .route("/api/v1/stores/{id}/sales", get(sales))
        .route("/api/v1/stores/{id}/live", get(live::running))
        .route(
            "/api/v1/live-sessions",
            post(live::schedule).get(live::list),
        )
        .route("/api/v1/live-sessions/recent", get(live::recent))
        .route("/api/v1/live-sessions/{id}", get(live::get))
        .route("/api/v1/live-sessions/{id}/start", post(live::start))
        .route("/api/v1/live-sessions/{id}/end", post(live::end))
        .route("/api/v1/live-sessions/{id}/pin", post(live::pin))
        .route("/api/v1/stores/{id}/stock/{sku}", get(stock))
        .route("/api/v1/docs/{*doc_id}", get(export_doc))
        .fallback(|| async {
            err(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(axum::middleware::map_response(json_errors))
        .layer(cors)
        .with_state(hub)
}

/// The store consoles (another origin: the store node) call the hub from
/// the browser for live sessions; only the configured origins may, with a
/// bearer token in a header (no cookies, so no credentials mode).
fn console_cors(origins: &[String]) -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let list: Vec<axum::http::HeaderValue> =
        origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(list))
        .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("idempotency-key"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The regional managers' dashboard: one self-contained page over the KPI,
/// store, live and exception APIs.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/dashboard.html"))
}

/// Who a hub token belongs to and what it may see.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MeView {
    name: String,
    /// `admin`, `regional` or `manager`.
    role: String,
    /// A regional manager's region.
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// A store manager's store.
    #[serde(skip_serializing_if = "Option::is_none")]
    store_id: Option<String>,
    /// The stores of the directory the user may see, by id.
    stores: Vec<String>,
}

/// The logged-in hub user: name, role, region or store, and the stores in
/// their view.
#[utoipa::path(get, path = "/api/v1/me", tag = "system",
    responses((status = 200, body = MeView),
              (status = 401, body = linli_shared::api_doc::ErrorBody, description = "unauthenticated")),
    security(("bearer" = [])))]
pub(crate) async fn me(State(hub): State<Hub>, live::AnyUser(user): live::AnyUser) -> Json<MeView> {
    let scope = hub.scope(&user);
    let stores = scope.store_ids(&hub.directory().stores);
    Json(MeView {
        name: user.name,
        role: user.role.as_str().to_owned(),
        region: user.region,
        store_id: user.store_id,
        stores,
    })
}

/// The customer page: one self-contained page over the order API.
async fn shop() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/shop.html"))
}

/// Each store's link, for hub staff. `stuck` means connected with changes
/// the store has not acknowledged and no frame from it for longer than the
/// threshold; an idle link with nothing waiting is `connected`.
pub(crate) async fn store_views(hub: &Hub) -> Vec<serde_json::Value> {
    let now = hub.now();
    let stuck_after = hub.stuck_after_secs();
    let mut links: Vec<_> = hub.links().into_iter().collect();
    links.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(links.len());
    for (id, l) in links {
        let quiet = (now - l.last_activity).num_seconds();
        let state = if !l.connected {
            "disconnected"
        } else if quiet > stuck_after && hub.has_unacknowledged(&id).await.unwrap_or(false) {
            "stuck"
        } else {
            "connected"
        };
        out.push(json!({
            "store_id": id,
            "sync_state": state,
            "since": l.since,
            "last_activity": l.last_activity,
            "seconds_since_activity": quiet,
            "changes_applied": l.changes_applied,
            "refused": l.refused,
        }));
    }
    out
}

/// Public liveness: no store's link state (staff see those in
/// `GET /api/v1/stores`).
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "status, version and how many stores are connected")))]
async fn health(State(hub): State<Hub>) -> Json<serde_json::Value> {
    let connected = hub.links().values().filter(|l| l.connected).count();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "stores_connected": connected,
    }))
}

/// Prometheus text exposition of the hub's link counters.
async fn metrics(State(hub): State<Hub>) -> impl IntoResponse {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let c = &hub.counters;
    let connected = hub.links().values().filter(|l| l.connected).count();
    let mut out = String::new();
    for (name, help, kind, value) in [
        (
            "linli_hub_stores_connected",
            "Stores with a live sync session.",
            "gauge",
            connected as u64,
        ),
        (
            "linli_hub_sessions_replaced_total",
            "Sessions closed because a newer connection presented the same store certificate.",
            "counter",
            c.sessions_replaced.load(Relaxed),
        ),
        (
            "linli_hub_sessions_revoked_total",
            "Live sessions cut because their store was revoked.",
            "counter",
            c.sessions_revoked.load(Relaxed),
        ),
        (
            "linli_hub_refused_revoked_total",
            "Connections refused because their store is revoked.",
            "counter",
            c.refused_revoked.load(Relaxed),
        ),
        (
            "linli_hub_sessions_ended_total",
            "Store sync sessions that ended.",
            "counter",
            c.sessions_ended.load(Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

/// A hub user's login (`{"name","password"}`) → `{"token"}`.
#[utoipa::path(post, path = "/api/v1/login", tag = "system", request_body = LoginRequest,
    responses((status = 200, description = "`{\"token\"}`"),
              (status = 401, body = linli_shared::api_doc::ErrorBody, description = "invalid_credentials")))]
async fn login(
    State(hub): State<Hub>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body.map_err(orders::bad_json)?;
    let token = hub
        .login_from(&req.name, &req.password, addr.as_deref())
        .await?;
    Ok(Json(json!({ "token": token })))
}

/// Imports the chain's catalog (CSV in the format of `data/products.csv`);
/// it reaches every store through `catalog/1`. Admin.
#[utoipa::path(post, path = "/api/v1/catalog/import", tag = "products",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "imported and rejected rows with line numbers"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_csv")),
    security(("bearer" = [])))]
async fn import_catalog(
    State(hub): State<Hub>,
    Auth(user): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_csv(&headers)?;
    let report = hub.import_catalog(&user, body.to_vec()).await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// Refuses a body that is not `text/csv`.
pub(crate) fn require_csv(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct.starts_with("text/csv") {
        Ok(())
    } else {
        Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file as text/csv".into(),
        ))
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
struct DayQuery {
    /// Business day, `YYYY-MM-DD`.
    day: String,
}

/// A store's sales of a business day as the hub holds them. Staff.
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/sales", tag = "stores",
    params(("store_id" = String, Path), DayQuery),
    responses((status = 200, description = "count, total and the sales"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_region"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field")),
    security(("bearer" = [])))]
async fn sales(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
    Query(q): Query<DayQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let day = NaiveDate::parse_from_str(&q.day, "%Y-%m-%d").map_err(|_| {
        err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "day must be YYYY-MM-DD".into(),
        )
    })?;
    if !hub.knows_store(&id).await? {
        return Err(HubError::StoreNotFound(id).into());
    }
    hub.scope(&user).check_store(&id)?;
    let sales = hub.sales(&id, day).await?;
    let total: i64 = sales.iter().map(|s| s.total_fen).sum();
    let refunded: i64 = sales.iter().map(|s| s.refunded_fen).sum();
    Ok(Json(json!({
        "store_id": id, "day": day, "count": sales.len(), "total_fen": total,
        "refunded_fen": refunded, "net_fen": total - refunded, "sales": sales
    })))
}

/// A store's stock level of one SKU as the hub holds it. Staff.
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/stock/{sku}", tag = "stores",
    params(("store_id" = String, Path), ("sku" = String, Path)),
    responses((status = 200, description = "on hand and reserved"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_region"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "stock_not_found / store_not_found")),
    security(("bearer" = [])))]
async fn stock(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !hub.knows_store(&id).await? {
        return Err(HubError::StoreNotFound(id).into());
    }
    hub.scope(&user).check_store(&id)?;
    match hub.stock(&id, &sku).await? {
        Some(s) => Ok(Json(serde_json::to_value(s).unwrap_or_default())),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "stock_not_found",
            format!("the hub has no stock level of {sku} from store {id}"),
        )),
    }
}

/// A document as the hub holds it, saved by automerge (`application/octet-stream`):
/// plain automerge, loadable by any automerge implementation.
#[utoipa::path(get, path = "/api/v1/docs/{doc_id}", tag = "system",
    params(("doc_id" = String, Path, description = "e.g. `store/S001/ledger/2026-11-25`")),
    responses((status = 200, content_type = "application/octet-stream", description = "the automerge document"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "doc_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field")),
    security(("bearer" = [])))]
async fn export_doc(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(doc_id): Path<String>,
) -> Result<Response, ApiError> {
    if user.role != crate::auth::Role::Admin {
        return Err(HubError::Forbidden.into());
    }
    let doc = linli_shared::docs::DocId::parse(&doc_id).map_err(|e| {
        err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
    })?;
    let bytes = hub
        .with_docs(move |c, docs| Ok(docs.read(c, &doc, |d| d.clone().save())?))
        .await?;
    match bytes {
        Some(b) => Ok(([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response()),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "doc_not_found",
            format!("the hub has no document {doc_id}"),
        )),
    }
}
