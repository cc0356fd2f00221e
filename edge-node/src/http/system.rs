//! Health, metrics, login and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, AuthToken, ClientAddr};
use crate::app::Role;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: String,
    pub store_id: String,
    pub version: String,
    pub database: DatabaseHealth,
    pub sync: crate::uplink::SyncHealth,
    /// The hub's HTTP base URL, when configured (the console's live tab
    /// calls the hub there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_http: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatabaseHealth {
    pub ok: bool,
}

/// Liveness and readiness of the node.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub(super) async fn health(State(s): State<AppState>) -> impl IntoResponse {
    let ok = s.app.database_ok().await;
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        store_id: s.app.settings().store_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        database: DatabaseHealth { ok },
        sync: s.sync_status.health(&s.app).await,
        hub_http: s.hub_http.clone(),
    };
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(super) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    /// 4-8 digits.
    pub pin: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub name: String,
    pub role: Role,
}

/// Logs a staff member in with name and PIN. Five wrong PINs in a row lock
/// the name (`429 locked_out`, 15 min by default); each client address has
/// a bucket of attempts (`429 rate_limited`). Both carry
/// `details.retry_after_secs`.
#[utoipa::path(post, path = "/api/v1/login", tag = "staff", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = super::error::ErrorBody),
              (status = 429, body = super::error::ErrorBody, description = "locked_out or rate_limited")))]
pub(super) async fn login(
    State(s): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (token, actor) = s
        .app
        .login_from(&req.name, &req.pin, addr.as_deref())
        .await?;
    Ok(Json(LoginResponse {
        token,
        name: actor.name,
        role: actor.role,
    }))
}

/// Ends the session of the bearer token: it stops working at once.
#[utoipa::path(post, path = "/api/v1/logout", tag = "staff",
    responses((status = 204, description = "logged out"), (status = 401, body = super::error::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn logout(
    State(s): State<AppState>,
    AuthToken(token): AuthToken,
) -> Result<axum::http::StatusCode, ApiError> {
    s.app.logout(&token).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub(super) async fn openapi() -> impl IntoResponse {
    Json(super::openapi::document())
}
