//! 一店一群 over HTTP: a store's community, joining it from the shop, its
//! members (staff), and its polls. The rules live in
//! [`crate::app::communities`] and [`linli_shared::community`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::ApiError;
use super::orders::{MaybeWho, Who, bad_json};
use crate::app::communities::{
    CommunityView, JoinView, MemberView, MyCommunity, OnlineJoin, PollView,
};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// A hub user (store managers included) from the bearer token; a
/// customer's token is refused as forbidden, not as unknown.
pub(crate) async fn hub_user(
    hub: &Hub,
    headers: &axum::http::HeaderMap,
) -> Result<crate::auth::User, HubError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(HubError::Unauthenticated)?;
    match hub.authenticate_user(token).await {
        Err(HubError::Unauthenticated) => match hub.authenticate_customer(token).await {
            Ok(_) => Err(HubError::Forbidden),
            Err(e) => Err(e),
        },
        other => other,
    }
}

fn customer(who: Caller) -> Result<String, HubError> {
    match who {
        Caller::Customer { customer_id, .. } => Ok(customer_id),
        Caller::Staff(_) => Err(HubError::Invalid(
            "顾客本人加入社群；店员请在门店收银台按手机号添加 (customers join here; a cashier adds a member by phone at the store's counter)".into(),
        )),
    }
}

/// A store's community: members and this month's active members; a hub
/// admin or the store's manager also gets the join code and the shop link
/// that joins it.
#[utoipa::path(get, path = "/api/v1/communities/{store_id}", tag = "communities",
    params(("store_id" = String, Path)),
    responses((status = 200, body = CommunityView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found")),
    security((), ("bearer" = [])))]
pub(crate) async fn get_community(
    State(hub): State<Hub>,
    headers: axum::http::HeaderMap,
    Path(store_id): Path<String>,
) -> Result<Json<CommunityView>, ApiError> {
    // the staff view for an admin or this store's manager; anyone else
    // (customers, no token) sees the counts
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let staff = match token {
        Some(t) => match hub.authenticate_user(t).await {
            Ok(u) => crate::app::communities::may_manage(&u, &store_id).is_ok(),
            Err(_) => false,
        },
        None => false,
    };
    Ok(Json(hub.community(&store_id, staff).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinRequest {
    /// The store's join code (shown in the store, in its QR link).
    #[serde(default)]
    join_code: Option<String>,
    /// Or the customer's location, which the store must serve.
    #[serde(default)]
    lat: Option<f64>,
    #[serde(default)]
    lon: Option<f64>,
}

/// The customer joins the store's community by its join code or by a
/// location the store serves. A customer belongs to one community at a
/// time: joining another moves them (`outcome: moved`, `moved_from`).
#[utoipa::path(post, path = "/api/v1/communities/{store_id}/members", tag = "communities",
    params(("store_id" = String, Path)), request_body = JoinRequest,
    responses((status = 201, body = JoinView, description = "joined, moved or already a member"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "outside_service_area (details.serving: the stores that serve the location)"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "wrong_join_code, invalid_field")),
    security(("bearer" = [])))]
pub(crate) async fn join(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(store_id): Path<String>,
    body: JsonBody<JoinRequest>,
) -> Result<(StatusCode, Json<JoinView>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let customer_id = customer(who)?;
    let how = match (req.join_code, req.lat, req.lon) {
        (Some(code), None, None) => OnlineJoin::Code(code),
        (None, Some(lat), Some(lon)) => OnlineJoin::Location(
            linli_shared::geo::GeoPoint::new(lat, lon)
                .map_err(|e| HubError::Invalid(format!("位置无效 (lat/lon: {e})")))?,
        ),
        _ => {
            return Err(HubError::Invalid(
                "请给出入群码，或者给出位置 lat 和 lon (give join_code, or lat and lon)".into(),
            )
            .into());
        }
    };
    let v = hub.join_online(&customer_id, &store_id, how).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// The join link as a QR code (SVG) for the store to show or print: the
/// shop at this hub's address (the request's `Host`, `https` behind a proxy
/// that says `X-Forwarded-Proto: https`) with the store and its join code.
/// A hub admin or the store's manager.
#[utoipa::path(get, path = "/api/v1/communities/{store_id}/join-qr.svg", tag = "communities",
    params(("store_id" = String, Path)),
    responses((status = 200, content_type = "image/svg+xml", description = "QR code of the join link"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found")),
    security(("bearer" = [])))]
pub(crate) async fn join_qr(
    State(hub): State<Hub>,
    headers: axum::http::HeaderMap,
    Path(store_id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let user = hub_user(&hub, &headers).await?;
    crate::app::communities::may_manage(&user, &store_id)?;
    let view = hub.community(&store_id, true).await?;
    let path = view.join_path.unwrap_or_default();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").unwrap_or("localhost");
    let scheme = match header("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    super::orders::qr_response(&format!("{scheme}://{host}{path}"))
}

/// The community's members, newest first (1,000 at most), phones masked.
/// A hub admin or the store's manager.
#[utoipa::path(get, path = "/api/v1/communities/{store_id}/members", tag = "communities",
    params(("store_id" = String, Path)),
    responses((status = 200, body = [MemberView]),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found")),
    security(("bearer" = [])))]
pub(crate) async fn members(
    State(hub): State<Hub>,
    headers: axum::http::HeaderMap,
    Path(store_id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let user = hub_user(&hub, &headers).await?;
    Ok(Json(hub.members(&user, &store_id).await?))
}

/// The caller's community and its polls (`null` when in none). Customers.
#[utoipa::path(get, path = "/api/v1/customer/community", tag = "communities",
    responses((status = 200, body = Option<MyCommunity>)),
    security(("bearer" = [])))]
pub(crate) async fn my_community(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<Option<MyCommunity>>, ApiError> {
    let Caller::Customer { customer_id, .. } = who else {
        return Err(HubError::Forbidden.into());
    };
    Ok(Json(hub.my_community(&customer_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PollRequest {
    /// 1-100 characters, e.g. "明天店播，大家最想看哪款？".
    question: String,
    /// 2-8 distinct SKUs of the catalog, in the order shown.
    options: Vec<String>,
    /// When voting ends (RFC 3339, in the future).
    closes_at: DateTime<Utc>,
}

/// A store's manager asks the community a question before a stream. A
/// hub admin or the store's manager (`403 not_your_store` for another's).
#[utoipa::path(post, path = "/api/v1/communities/{store_id}/polls", tag = "communities",
    params(("store_id" = String, Path)), request_body = PollRequest,
    responses((status = 201, body = PollView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, unknown_sku")),
    security(("bearer" = [])))]
pub(crate) async fn create_poll(
    State(hub): State<Hub>,
    headers: axum::http::HeaderMap,
    Path(store_id): Path<String>,
    body: JsonBody<PollRequest>,
) -> Result<(StatusCode, Json<PollView>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let user = hub_user(&hub, &headers).await?;
    let draft = linli_shared::community::PollDraft {
        question: req.question,
        options: req.options,
        closes_at: req.closes_at,
    };
    let v = hub.create_poll(&user, &store_id, draft).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// A store's polls with their results, newest first (50 at most); a
/// customer's own vote is shown to them.
#[utoipa::path(get, path = "/api/v1/communities/{store_id}/polls", tag = "communities",
    params(("store_id" = String, Path)),
    responses((status = 200, body = [PollView]),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found")),
    security((), ("bearer" = [])))]
pub(crate) async fn polls(
    State(hub): State<Hub>,
    MaybeWho(who): MaybeWho,
    Path(store_id): Path<String>,
) -> Result<Json<Vec<PollView>>, ApiError> {
    let me = match &who {
        Some(Caller::Customer { customer_id, .. }) => Some(customer_id.as_str()),
        _ => None,
    };
    Ok(Json(hub.polls(&store_id, me).await?))
}

/// One poll with its results and its ranking (the featured order for the
/// next live session).
#[utoipa::path(get, path = "/api/v1/communities/{store_id}/polls/{poll_id}", tag = "communities",
    params(("store_id" = String, Path), ("poll_id" = String, Path)),
    responses((status = 200, body = PollView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "poll_not_found")),
    security((), ("bearer" = [])))]
pub(crate) async fn poll(
    State(hub): State<Hub>,
    MaybeWho(who): MaybeWho,
    Path((store_id, poll_id)): Path<(String, String)>,
) -> Result<Json<PollView>, ApiError> {
    let me = match &who {
        Some(Caller::Customer { customer_id, .. }) => Some(customer_id.as_str()),
        _ => None,
    };
    let p = hub.poll(&store_id, &poll_id, me).await?;
    Ok(Json(p.ok_or(HubError::PollNotFound(poll_id))?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoteRequest {
    /// The option's number (from 0).
    option: usize,
}

/// A member's one vote. Customers who are members of the store's
/// community.
#[utoipa::path(post, path = "/api/v1/communities/{store_id}/polls/{poll_id}/votes", tag = "communities",
    params(("store_id" = String, Path), ("poll_id" = String, Path)), request_body = VoteRequest,
    responses((status = 201, body = PollView, description = "counted; the results with the caller's vote"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_a_member"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "poll_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "already_voted, poll_closed"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "no_such_option")),
    security(("bearer" = [])))]
pub(crate) async fn vote(
    State(hub): State<Hub>,
    Who(who): Who,
    Path((store_id, poll_id)): Path<(String, String)>,
    body: JsonBody<VoteRequest>,
) -> Result<(StatusCode, Json<PollView>), ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    let Caller::Customer { customer_id, .. } = who else {
        return Err(HubError::Forbidden.into());
    };
    let v = hub
        .vote(&customer_id, &store_id, &poll_id, req.option)
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}
