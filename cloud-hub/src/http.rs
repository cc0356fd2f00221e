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
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::hub::{Hub, HubError, User};

mod orders;

/// How long without a frame before a connected store counts as stuck.
pub const STUCK_AFTER_SECS: i64 = 60;

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
            HubError::Csv(_) | HubError::StoresCsv(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", msg)
            }
            HubError::UnknownSku(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_sku", msg),
            HubError::UnknownStore(_) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "unknown_store", msg)
            }
            HubError::OrderNotFound(_) => err(StatusCode::NOT_FOUND, "order_not_found", msg),
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
                Some(json!({ "alternatives": u.alternatives, "serving_stores": u.serving_stores })),
            ),
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

pub fn router(hub: Hub) -> Router {
    Router::new()
        .route("/", get(shop))
        .route("/health", get(health))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(orders::logout))
        .route(
            "/api/v1/catalog/import",
            post(import_catalog).layer(DefaultBodyLimit::max(8 * 1024 * 1024)),
        )
        .route("/api/v1/openapi.json", get(orders::openapi))
        .route("/api/v1/customer/session", post(orders::session))
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
        .route("/api/v1/orders/{id}/qr.svg", get(orders::qr_svg))
        .route("/api/v1/exceptions", get(orders::exceptions))
        .route("/api/v1/stores/{id}/sales", get(sales))
        .route("/api/v1/stores/{id}/stock/{sku}", get(stock))
        .route("/api/v1/docs/{*doc_id}", get(export_doc))
        .fallback(|| async {
            err(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .with_state(hub)
}

/// The customer page: one self-contained page over the order API.
async fn shop() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/shop.html"))
}

fn store_views(hub: &Hub) -> Vec<serde_json::Value> {
    let now = Utc::now();
    let mut links: Vec<_> = hub.links().into_iter().collect();
    links.sort_by(|a, b| a.0.cmp(&b.0));
    links
        .into_iter()
        .map(|(id, l)| {
            let quiet = (now - l.last_activity).num_seconds();
            let state = if !l.connected {
                "disconnected"
            } else if quiet > STUCK_AFTER_SECS {
                "stuck"
            } else {
                "connected"
            };
            json!({
                "store_id": id,
                "sync_state": state,
                "since": l.since,
                "last_activity": l.last_activity,
                "seconds_since_activity": quiet,
                "changes_applied": l.changes_applied,
                "refused": l.refused,
            })
        })
        .collect()
}

async fn health(State(hub): State<Hub>) -> Json<serde_json::Value> {
    let stores = store_views(&hub);
    let connected = stores
        .iter()
        .filter(|s| s["sync_state"] != "disconnected")
        .count();
    let stuck: Vec<_> = stores
        .iter()
        .filter(|s| s["sync_state"] == "stuck")
        .map(|s| s["store_id"].clone())
        .collect();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "stores_connected": connected,
        "stores_stuck": stuck,
        "stores": stores,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    name: String,
    password: String,
}

async fn login(
    State(hub): State<Hub>,
    ClientAddr(addr): ClientAddr,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) =
        body.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed_json", e.body_text()))?;
    let token = hub
        .login_from(&req.name, &req.password, addr.as_deref())
        .await?;
    Ok(Json(json!({ "token": token })))
}

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
fn require_csv(headers: &HeaderMap) -> Result<(), ApiError> {
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

#[derive(Deserialize)]
struct DayQuery {
    day: String,
}

async fn sales(
    State(hub): State<Hub>,
    Auth(_user): Auth,
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
    let sales = hub.sales(&id, day).await?;
    let total: i64 = sales.iter().map(|s| s.total_fen).sum();
    Ok(Json(
        json!({ "store_id": id, "day": day, "count": sales.len(), "total_fen": total, "sales": sales }),
    ))
}

async fn stock(
    State(hub): State<Hub>,
    Auth(_user): Auth,
    Path((id, sku)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
async fn export_doc(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(doc_id): Path<String>,
) -> Result<Response, ApiError> {
    if user.role != crate::hub::Role::Admin {
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
