//! Group-buys at the counter: the campaigns this store takes part in, and
//! committing a customer by phone (offline too, within the allotment).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, IdemKey};
use crate::app::groupbuy::{
    CommitRequest, CounterCommitmentView, CounterCommitted, CounterGroupBuy, GroupBuyReceipt,
    ReceiveRequest,
};

/// The group-buys this store takes part in, with what its counter has
/// committed of its allotment.
#[utoipa::path(get, path = "/api/v1/group-buys", tag = "group-buys",
    responses((status = 200, body = [CounterGroupBuy])), security(("bearer" = [])))]
pub(super) async fn list(
    State(s): State<AppState>,
    Auth(_staff): Auth,
) -> Result<Json<Vec<CounterGroupBuy>>, ApiError> {
    Ok(Json(s.app.group_buys().await?))
}

/// Commits the customer with this phone to a group-buy at this counter,
/// offline too: before the deadline by this store's clock, within the
/// per-customer limit and the store's allotment. Reaches the hub with the
/// day's ledger.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = CommitRequest,
    responses((status = 201, body = CounterCommitted), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn commit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CommitRequest>,
) -> Result<(StatusCode, Json<CounterCommitted>), ApiError> {
    let out = s.app.commit_at_counter(&actor, key.0, &id, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// A reached group-buy's goods arrived (manager): books them in and makes
/// each participant here a pickup order with its code, as far as the stock
/// goes; a later receipt serves those still waiting. One order per
/// participant, however often it runs.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/receipts", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ReceiveRequest,
    responses((status = 201, body = GroupBuyReceipt), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn receive(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReceiveRequest>,
) -> Result<(StatusCode, Json<GroupBuyReceipt>), ApiError> {
    let out = s.app.receive_group_buy(&actor, key.0, &id, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The commitments this counter took for a group-buy, newest first (at
/// most 200), active, cancelled or refunded (a failed campaign's), each
/// with its refund (when, by whom, why: `reason`, `reason_text`).
#[utoipa::path(get, path = "/api/v1/group-buys/{group_buy_id}/commitments", tag = "group-buys",
    params(("group_buy_id" = String, Path)),
    responses((status = 200, body = [CounterCommitmentView]),
              (status = 404, body = ErrorBody, description = "group_buy_not_found")),
    security(("bearer" = [])))]
pub(super) async fn commitments(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<CounterCommitmentView>>, ApiError> {
    Ok(Json(s.app.counter_commitments(&id).await?))
}

/// Cancels a commitment this counter took and records the refund the
/// customer is given back at the counter (refund id `GBC-<commitment_id>`,
/// the commitment's amount), offline too. The rule is the hub's for an
/// online cancel: only while the group-buy is open as this store knows it
/// (`409 group_buy_reached` once the hub's participants list has come)
/// and before its deadline by this store's clock (`409
/// group_buy_closed`). Its units go back to the store's allotment and the
/// customer's limit at once; the cancel reaches the hub with the day's
/// ledger and the commitment stops counting there. Idempotent: cancelling
/// again answers 200 with the same cancelled commitment and refunds
/// nothing more. A commitment this counter did not take (another
/// store's, an online one) is `404 commitment_not_found`.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments/{commitment_id}/cancel", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("commitment_id" = String, Path)),
    responses((status = 200, body = CounterCommitmentView, description = "the cancelled commitment with its refund"),
              (status = 404, body = ErrorBody, description = "commitment_not_found (not taken at this counter), group_buy_not_found"),
              (status = 409, body = ErrorBody, description = "group_buy_reached, group_buy_closed (past the deadline)")),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CounterCommitmentView>, ApiError> {
    Ok(Json(s.app.cancel_at_counter(&actor, &id, &cid).await?))
}

/// Refunds at this counter a commitment it took in a group-buy the hub
/// says failed (its word reaches the store with its orders document): the
/// commitment's full amount, in cash, refund id `GBF-<commitment_id>`,
/// reason `group_buy_failed` (拼团未成团，已在柜台退款). The refund reaches
/// the hub with the day's ledger, where the campaign shows which stores
/// still owe refunds. Until the store knows the campaign failed (open,
/// reached) `409 group_buy_not_failed`; a commitment cancelled while the
/// campaign was open was refunded then: `409 commitment_cancelled`.
/// Idempotent: refunding again answers 200 with the same refund and gives
/// nothing more. A commitment this counter did not take is `404
/// commitment_not_found`.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments/{commitment_id}/refund", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("commitment_id" = String, Path)),
    responses((status = 200, body = CounterCommitmentView, description = "the refunded commitment with its refund"),
              (status = 404, body = ErrorBody, description = "commitment_not_found (not taken at this counter), group_buy_not_found"),
              (status = 409, body = ErrorBody, description = "group_buy_not_failed (not failed as this store knows it), commitment_cancelled (cancelled and refunded before)")),
    security(("bearer" = [])))]
pub(super) async fn refund(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CounterCommitmentView>, ApiError> {
    Ok(Json(
        s.app.refund_failed_at_counter(&actor, &id, &cid).await?,
    ))
}
