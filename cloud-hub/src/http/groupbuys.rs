//! Group-buy presales over HTTP: campaigns (admin), their progress
//! (anyone), customers' commitments, the supplier order (admin) and a
//! customer's own commitments. The rules live in [`crate::app::groupbuys`] and
//! [`linli_shared::groupbuy`].

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ApiError;
use super::orders::{Who, bad_json, idempotency_key};
use crate::app::groupbuys::{
    CommitmentPrepayView, Committed, GroupBuyView, NewGroupBuy, SupplierOrder,
};
use crate::auth::Caller;
use crate::error::HubError;
use crate::hub::Hub;

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// Opens a group-buy presale: a product (sold by the unit) at a price, a
/// threshold of participants or of communities (stores with at least
/// `min_per_community` participants each), a deadline, a pickup date, a
/// per-customer limit and the stores taking part. Admin for any stores; a
/// store manager for their own store alone (`store_ids` naming another
/// store: `403 not_your_store`).
#[utoipa::path(post, path = "/api/v1/group-buys", tag = "group-buys", request_body = NewGroupBuy,
    responses((status = 201, body = GroupBuyView),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden (not an admin or store manager), not_your_store"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, unknown_sku, unknown_store")),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(hub): State<Hub>,
    headers: HeaderMap,
    body: JsonBody<NewGroupBuy>,
) -> Result<(StatusCode, Json<GroupBuyView>), ApiError> {
    // any hub user, store managers included (a customer: forbidden)
    let user = super::communities::hub_user(&hub, &headers).await?;
    let Json(req) = body.map_err(bad_json)?;
    Ok((
        StatusCode::CREATED,
        Json(hub.create_group_buy(&user, req).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct ListQuery {
    /// `open` (the default: open and reached campaigns) or `all`.
    #[serde(default)]
    state: Option<String>,
}

/// Group-buys with their progress, newest first (100 at most).
#[utoipa::path(get, path = "/api/v1/group-buys", tag = "group-buys", params(ListQuery),
    responses((status = 200, body = [GroupBuyView]),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field: state is neither open nor all")))]
pub(crate) async fn list(
    State(hub): State<Hub>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<GroupBuyView>>, ApiError> {
    let open_only = match q.state.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => {
            return Err(HubError::Invalid(
                "state 只能是 open 或 all (state must be open or all)".into(),
            )
            .into());
        }
    };
    Ok(Json(hub.group_buys(open_only).await?))
}

/// A group-buy: `state` (`open`, `reached`, `failed`, `fulfilled`),
/// participants, communities, units and the progress per store; a failed
/// one says why.
#[utoipa::path(get, path = "/api/v1/group-buys/{group_buy_id}", tag = "group-buys",
    params(("group_buy_id" = String, Path)),
    responses((status = 200, body = GroupBuyView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "group_buy_not_found")))]
pub(crate) async fn get_one(
    State(hub): State<Hub>,
    Path(id): Path<String>,
) -> Result<Json<GroupBuyView>, ApiError> {
    Ok(Json(hub.group_buy(&id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommitRequest {
    /// The store the customer will collect at (its community counts it).
    store_id: String,
    /// Units.
    qty: i64,
}

/// A customer commits to a group-buy (`Idempotency-Key` required; a retry
/// returns the first answer with 200). Refused after the deadline, beyond
/// the per-customer limit, or at a store not taking part. At a hub that
/// takes online payment the commitment is `awaiting_payment` (with its
/// `payment`): it holds the customer's limit, counts toward the threshold
/// only once paid (`.../commitments/{commitment_id}/pay`), and is
/// cancelled if unpaid by `payment.pay_by`.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("Idempotency-Key" = String, Header)), request_body = CommitRequest,
    responses((status = 201, body = Committed), (status = 200, body = Committed, description = "replayed"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "group_buy_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "group_buy_closed, per_customer_limit, idempotency_key_reused"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field, store_not_in_group_buy")),
    security(("bearer" = [])))]
pub(crate) async fn commit(
    State(hub): State<Hub>,
    Who(who): Who,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: JsonBody<CommitRequest>,
) -> Result<(StatusCode, Json<Committed>), ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(req) = body.map_err(bad_json)?;
    let (out, replayed) = hub.commit(&who, key, &id, &req.store_id, req.qty).await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(out)))
}

/// Pays a commitment: the prepay the customer's phone hands to the payment
/// sheet (here the simulator's cashier, `cashier_url`), as for an order
/// (`POST /api/v1/orders/{order_id}/pay`). Idempotent: paying again returns
/// the same prepay. Only the customer who made it (or staff). The
/// provider's notification marks it paid; from then on it counts.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments/{commitment_id}/pay", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("commitment_id" = String, Path)),
    responses((status = 200, body = CommitmentPrepayView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "commitment_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "payment_not_required (this hub or commitment takes no online payment) / payment_closed (cancelled or unpaid too long)"),
              (status = 502, body = linli_shared::api_doc::ErrorBody, description = "payment_refused: the provider refused the prepay"),
              (status = 503, body = linli_shared::api_doc::ErrorBody, description = "payment_unavailable: the provider cannot be reached; try again")),
    security(("bearer" = [])))]
pub(crate) async fn pay(
    State(hub): State<Hub>,
    Who(who): Who,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CommitmentPrepayView>, ApiError> {
    Ok(Json(hub.pay_commitment(&who, &id, &cid).await?))
}

/// The customer takes back their own online commitment. Only while the
/// campaign is `open` (a reached one stays reached: `409
/// group_buy_reached`) and before the deadline (`409 group_buy_closed`);
/// a commitment made at a store's counter is cancelled there (`409
/// cancel_at_counter`). It stops counting and frees the customer's limit
/// at once; an unpaid one's payment closes, a paid one is refunded in full
/// through the refund queue (`refund`, refund id `GBC-<commitment_id>`).
/// Idempotent: cancelling again answers 200 with the same cancelled
/// commitment and refunds nothing more. Another customer's commitment is
/// `404 commitment_not_found`. Customers only.
#[utoipa::path(post, path = "/api/v1/group-buys/{group_buy_id}/commitments/{commitment_id}/cancel", tag = "group-buys",
    params(("group_buy_id" = String, Path), ("commitment_id" = String, Path)),
    responses((status = 200, body = Committed, description = "the cancelled commitment and the campaign after it"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "commitment_not_found (unknown, or another customer's), group_buy_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "group_buy_reached, group_buy_closed (past the deadline, or failed), cancel_at_counter")),
    security(("bearer" = [])))]
pub(crate) async fn cancel(
    State(hub): State<Hub>,
    Who(who): Who,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<Committed>, ApiError> {
    Ok(Json(hub.cancel_commitment(&who, &id, &cid).await?))
}

/// What to order from the supplier: units per store (以销定采). Reached
/// group-buys only. Admin; a store manager sees their own store's line of
/// a campaign their store takes part in (`403 not_your_store` otherwise).
#[utoipa::path(get, path = "/api/v1/group-buys/{group_buy_id}/supplier-order", tag = "group-buys",
    params(("group_buy_id" = String, Path)),
    responses((status = 200, body = SupplierOrder),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "forbidden, not_your_store"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "group_buy_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "group_buy_not_reached")),
    security(("bearer" = [])))]
pub(crate) async fn supplier_order(
    State(hub): State<Hub>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<SupplierOrder>, ApiError> {
    let user = super::communities::hub_user(&hub, &headers).await?;
    Ok(Json(hub.supplier_order(&user, &id).await?))
}

/// The caller's commitments with their campaigns: each with its payment
/// and refund (a failed campaign's paid commitments are refunded, `refund`
/// going from `pending` to `succeeded`), a cancelled one with why
/// (`failure_reason`). Customers.
#[utoipa::path(get, path = "/api/v1/customer/group-buys", tag = "group-buys",
    responses((status = 200, body = [Committed])),
    security(("bearer" = [])))]
pub(crate) async fn mine(
    State(hub): State<Hub>,
    Who(who): Who,
) -> Result<Json<Vec<Committed>>, ApiError> {
    let Caller::Customer { customer_id, .. } = who else {
        return Err(HubError::Forbidden.into());
    };
    Ok(Json(hub.my_commitments(&customer_id).await?))
}
