//! Customers across channels: import of the channels' identity records,
//! a customer's records and merges, and unmerge (issue 12). Admin only: these
//! are personal data. The use cases are in [`crate::app::customers`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{ApiError, Auth, orders::bad_json, require_csv};
use crate::app::customers::erasure::ErasureView;
use crate::app::customers::{CustomerExport, CustomerView, ImportReport, UnmergeReport};
use crate::hub::Hub;

/// Imports the channels' source records (CSV in the format of
/// `data/identities.csv`: `record_id,source,phone,openid,unionid,member_card,nickname,store_id`;
/// a `true_customer_id` column is ignored) and resolves every record the hub
/// holds into customers. Re-importing a file changes nothing; a record id
/// seen before is updated. A file with any unreadable row imports nothing
/// and lists every bad line in `details.rejected`. Admin.
#[utoipa::path(post, path = "/api/v1/customers/identities/import", tag = "customers",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport, description = "each record's customer"),
              (status = 422, body = linli_shared::api_doc::ErrorBody,
               description = "invalid_csv (details.rejected: [{line, reason}])")),
    security(("bearer" = [])))]
pub(crate) async fn import(
    State(hub): State<Hub>,
    Auth(user): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    require_csv(&headers)?;
    Ok(Json(hub.import_identities(&user, body.to_vec()).await?))
}

/// A customer: its source records, why they are one (the merges: rule,
/// shared value, the two records) and its profile: orders at the counter
/// (matched by the member's phone hash) and online, spend, visits (distinct
/// business days, UTC+8), first and last purchase, R/F/M scores 1–5 by
/// quintiles over every customer with a purchase, the segment (重要价值客户
/// …), home store, community, pickups and deliveries. The id may be an
/// identity customer's or an online customer's; the answer names the
/// customer it belongs to. Admin.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path)),
    responses((status = 200, body = CustomerView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "customer_not_found"),
              (status = 410, body = linli_shared::api_doc::ErrorBody,
               description = "customer_erased (details.erasure_id)")),
    security(("bearer" = [])))]
pub(crate) async fn get_customer(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
) -> Result<Json<CustomerView>, ApiError> {
    Ok(Json(hub.customer(&user, &id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnmergeRequest {
    /// The records to split off; they must be this customer's, and not all
    /// of them.
    record_ids: Vec<String>,
}

/// Splits records off a customer. The part with the most records keeps the
/// id; the split-off records become their own customer(s) and are never
/// merged with the rest again, whatever later imports bring. Admin.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/unmerge", tag = "customers",
    params(("customer_id" = String, Path)),
    request_body = UnmergeRequest,
    responses((status = 200, body = UnmergeReport, description = "the parts and their ids"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "customer_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody,
               description = "invalid_field: no record named, a record not this customer's, or all of them")),
    security(("bearer" = [])))]
pub(crate) async fn unmerge(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
    body: Result<Json<UnmergeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<UnmergeReport>, ApiError> {
    let Json(req) = body.map_err(bad_json)?;
    Ok(Json(hub.unmerge(&user, &id, req.record_ids).await?))
}

/// Everything the hub holds about a customer, as a JSON download (PIPL
/// Art. 45): records, merges, profile, accounts, orders, matched counter
/// sales and refunds, community memberships, joins and votes, group-buy
/// commitments, coupon claims and redemptions, payments, refunds. Admin.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}/export", tag = "customers",
    params(("customer_id" = String, Path)),
    responses((status = 200, body = CustomerExport,
               description = "attachment (Content-Disposition) customer-<id>.json"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "customer_not_found"),
              (status = 410, body = linli_shared::api_doc::ErrorBody,
               description = "customer_erased (details.erasure_id)")),
    security(("bearer" = [])))]
pub(crate) async fn export(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let out = hub.export_customer(&user, &id).await?;
    // ids are ours ("C" + record id or ULID), but keep the header plain ASCII
    let name: String = out
        .customer_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Ok((
        [(
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"customer-{name}.json\""),
        )],
        Json(out),
    )
        .into_response())
}

/// Erases a customer (PIPL Art. 47): the hub deletes the person's records,
/// accounts, phones, openids, nicknames and addresses, puts a tombstone id
/// where rows named them (amounts and ids stay for the books), and asks
/// every store to erase what it holds; each store confirms through its
/// ledger, and `pending_stores` lists those that have not yet.
/// `Idempotency-Key` required; a retry, or erasing an erased customer,
/// returns the erasure made first (200). Admin.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/erase", tag = "customers",
    params(("customer_id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 201, body = ErasureView, description = "erased at the hub; stores asked"),
              (status = 200, body = ErasureView, description = "erased before (a retry)"),
              (status = 400, body = linli_shared::api_doc::ErrorBody, description = "idempotency_key_required"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "customer_not_found"),
              (status = 409, body = linli_shared::api_doc::ErrorBody, description = "idempotency_key_reused")),
    security(("bearer" = [])))]
pub(crate) async fn erase(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<(axum::http::StatusCode, Json<ErasureView>), ApiError> {
    let key = super::orders::idempotency_key(&headers)?;
    let (view, fresh) = hub.erase_customer(&user, &id, key).await?;
    let status = if fresh {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// An erasure: what the hub changed and which stores have confirmed
/// (`pending_stores`: not yet; `complete`: all have). Admin.
#[utoipa::path(get, path = "/api/v1/erasures/{erasure_id}", tag = "customers",
    params(("erasure_id" = String, Path)),
    responses((status = 200, body = ErasureView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "erasure_not_found")),
    security(("bearer" = [])))]
pub(crate) async fn erasure(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Path(id): Path<String>,
) -> Result<Json<ErasureView>, ApiError> {
    Ok(Json(hub.erasure(&user, &id).await?))
}
