//! The live-session API: a store manager (or an admin) schedules, starts,
//! pins and ends a store's session; its manager and chain staff read the
//! figures (poll once a second); the shop reads the running session of a
//! store. Handlers only translate; the rules live in [`crate::app::live`] and
//! [`linli_shared::live`].

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::app::live::{LiveView, PinLive, ScheduleLive};
use crate::auth::User;
use crate::error::HubError;
use crate::hub::Hub;

/// Any hub user, store managers included (only the live routes take them).
pub(crate) struct AnyUser(pub User);

impl FromRequestParts<Hub> for AnyUser {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, hub: &Hub) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(HubError::Unauthenticated)?;
        Ok(AnyUser(hub.authenticate_user(token.trim()).await?))
    }
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Schedules a live session for a store and pulls stock rights for its
/// featured products to the hub. The store's manager or an admin.
#[utoipa::path(post, path = "/api/v1/live-sessions", tag = "live", request_body = ScheduleLive,
    responses((status = 201, body = LiveView, description = "the session, `scheduled`"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden / not_your_store"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field / unknown_sku / unknown_store")),
    security(("bearer" = [])))]
pub(crate) async fn schedule(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    body: JsonBody<ScheduleLive>,
) -> Result<(StatusCode, Json<LiveView>), ApiError> {
    let Json(req) = body.map_err(super::orders::bad_json)?;
    Ok((
        StatusCode::CREATED,
        Json(hub.schedule_live(&user, req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct StoreQuery {
    /// The store whose sessions to list.
    store_id: String,
}

/// A store's sessions, newest first (at most 50), without figures. Its
/// manager and chain staff.
#[utoipa::path(get, path = "/api/v1/live-sessions", tag = "live", params(StoreQuery),
    responses((status = 200, body = [LiveView]),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_store")),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    Query(q): Query<StoreQuery>,
) -> Result<Json<Vec<LiveView>>, ApiError> {
    Ok(Json(hub.live_sessions(&user, &q.store_id).await?))
}

/// The sessions of the caller's stores that started within the last day,
/// running first, each with its live figures (the dashboard's live page
/// polls it once a second). Chain staff: an admin sees every store, a
/// regional manager their region's; a store manager their own store's.
#[utoipa::path(get, path = "/api/v1/live-sessions/recent", tag = "live",
    responses((status = 200, body = [LiveView])),
    security(("bearer" = [])))]
pub(crate) async fn recent(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
) -> Result<Json<Vec<LiveView>>, ApiError> {
    Ok(Json(hub.recent_live(&user).await?))
}

/// A session with its live figures: orders, buyers, GMV and top products
/// from the orders the session priced, cancelled ones left out; `as_of` is
/// when the newest counted order was placed. Its store's manager and chain
/// staff; the console polls it once a second.
#[utoipa::path(get, path = "/api/v1/live-sessions/{session_id}", tag = "live",
    params(("session_id" = String, Path)),
    responses((status = 200, body = LiveView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "live_session_not_found")),
    security(("bearer" = [])))]
pub(crate) async fn get(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    Path(id): Path<String>,
) -> Result<Json<LiveView>, ApiError> {
    Ok(Json(hub.live_session(&user, &id).await?))
}

/// Starts the session: live prices apply from now. Starting a started
/// session changes nothing; an ended one is `409 live_session_state`.
#[utoipa::path(post, path = "/api/v1/live-sessions/{session_id}/start", tag = "live",
    params(("session_id" = String, Path)),
    responses((status = 200, body = LiveView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden / not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "live_session_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "live_session_state")),
    security(("bearer" = [])))]
pub(crate) async fn start(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    Path(id): Path<String>,
) -> Result<Json<LiveView>, ApiError> {
    Ok(Json(hub.start_live(&user, &id).await?))
}

/// Ends the session (live prices stop after the grace period); ending it
/// again changes nothing.
#[utoipa::path(post, path = "/api/v1/live-sessions/{session_id}/end", tag = "live",
    params(("session_id" = String, Path)),
    responses((status = 200, body = LiveView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden / not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "live_session_not_found")),
    security(("bearer" = [])))]
pub(crate) async fn end(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    Path(id): Path<String>,
) -> Result<Json<LiveView>, ApiError> {
    Ok(Json(hub.end_live(&user, &id).await?))
}

/// Pins the featured product being shown (a started session).
#[utoipa::path(post, path = "/api/v1/live-sessions/{session_id}/pin", tag = "live",
    params(("session_id" = String, Path)), request_body = PinLive,
    responses((status = 200, body = LiveView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden / not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "live_session_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "live_session_state"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "not_featured")),
    security(("bearer" = [])))]
pub(crate) async fn pin(
    State(hub): State<Hub>,
    AnyUser(user): AnyUser,
    Path(id): Path<String>,
    body: JsonBody<PinLive>,
) -> Result<Json<LiveView>, ApiError> {
    let Json(req) = body.map_err(super::orders::bad_json)?;
    Ok(Json(hub.pin_live(&user, &id, req.sku).await?))
}

/// What the shop shows of a store's live stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunningLive {
    /// The session whose live prices apply at the store now, if any
    /// (its figures are not shown to customers and read 0).
    session: Option<LiveView>,
}

/// The live session running at a store now, with its featured products and
/// live prices (for the shop; no login).
#[utoipa::path(get, path = "/api/v1/stores/{store_id}/live", tag = "live",
    params(("store_id" = String, Path)),
    responses((status = 200, body = RunningLive),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found")))]
pub(crate) async fn running(
    State(hub): State<Hub>,
    Path(store): Path<String>,
) -> Result<Json<RunningLive>, ApiError> {
    if hub.directory().stores.get(&store).is_none() {
        return Err(HubError::StoreNotFound(store).into());
    }
    Ok(Json(RunningLive {
        session: hub.running_live(&store).await?,
    }))
}
