//! Customers across channels: import of the channels' identity records,
//! a customer's records and merges, and unmerge (issue 12). Admin only: these
//! are personal data. The use cases are in [`crate::customers`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{ApiError, Auth, orders::bad_json, require_csv};
use crate::customers::{CustomerView, ImportReport, UnmergeReport};
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

/// A customer: its source records and why they are one (the merges: rule,
/// shared value, the two records). The profile with orders and RFM comes
/// later. Admin.
#[utoipa::path(get, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(("customer_id" = String, Path)),
    responses((status = 200, body = CustomerView),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "customer_not_found")),
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
