//! The counter's side of 一店一群: adding a customer to the store's
//! community by phone (works offline; the hub decides membership).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, IdemKey};
use crate::app::community::{CounterJoin, JoinRequest};

/// Adds the customer with this phone to the store's community. Recorded at
/// once, offline too, and sent to the hub with the day's ledger; a customer
/// belongs to the community of their newest join, so adding someone who
/// joined another store since moves them here.
#[utoipa::path(post, path = "/api/v1/community/members", tag = "community", request_body = JoinRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CounterJoin), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn add_member(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<(StatusCode, Json<CounterJoin>), ApiError> {
    let j = s.app.add_member(&actor, key.0, req).await?;
    Ok((StatusCode::CREATED, Json(j)))
}
