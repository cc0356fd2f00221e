//! Catalog import, product look-ups and stock endpoints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, IdemKey};
use crate::app::AppError;
use crate::app::catalog::{ImportReport, ProductView};
use crate::app::stock::{
    CountRequest, MovementView, ReceiptRequest, StockChange, StockLevelView, WasteRequest,
};

fn product_not_found(e: AppError) -> ApiError {
    match e {
        AppError::UnknownSku(_) | AppError::UnknownBarcode(_) => {
            ApiError::not_found("product_not_found", e.to_string())
        }
        other => other.into(),
    }
}

/// Imports products from CSV (`sku,barcode,name,category,unit,price_fen,shelf_life_days[,name_en]`).
/// Valid rows are inserted or updated; bad rows are reported with line numbers.
#[utoipa::path(post, path = "/api/v1/catalog/import", tag = "catalog",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn import(
    State(s): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("text/csv") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the catalog as CSV with Content-Type: text/csv",
        ));
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            super::error::body_too_large()
        } else {
            ApiError::new(r.status(), "bad_request", r.body_text())
        }
    })?;
    Ok(Json(s.app.import_catalog(&actor, body.to_vec()).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct SearchQuery {
    /// A name fragment (Chinese or English), pinyin initials (`xg` for
    /// 西瓜) or the start of a SKU.
    q: String,
}

/// Finds products without a barcode: by name, pinyin initials or SKU, best
/// matches first, at most 20.
#[utoipa::path(get, path = "/api/v1/products", tag = "catalog", params(SearchQuery),
    responses((status = 200, body = [ProductView])),
    security(("bearer" = [])))]
pub(super) async fn search(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Query(q): Query<SearchQuery>,
) -> Json<Vec<ProductView>> {
    Json(s.app.search_products(&q.q))
}

/// A product by SKU.
#[utoipa::path(get, path = "/api/v1/products/{sku}", tag = "catalog",
    params(("sku" = String, Path)),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn product_by_sku(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(sku): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    s.app
        .product_by_sku(&sku)
        .map(Json)
        .map_err(product_not_found)
}

/// A product by its EAN-13, or by a scale label (then with the label's
/// weight and price).
#[utoipa::path(get, path = "/api/v1/products/by-barcode/{code}", tag = "catalog",
    params(("code" = String, Path, description = "EAN-13 or scale label 2IIIIIWWWWWWC")),
    responses((status = 200, body = ProductView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn product_by_barcode(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(code): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    s.app
        .product_by_barcode(&code)
        .map(Json)
        .map_err(product_not_found)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct StockQuery {
    /// Only SKUs whose on-hand is below zero.
    #[serde(default)]
    negative: bool,
}

/// Levels of every SKU with stock history.
#[utoipa::path(get, path = "/api/v1/stock", tag = "stock", params(StockQuery),
    responses((status = 200, body = [StockLevelView])), security(("bearer" = [])))]
pub(super) async fn stock_levels(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Query(q): Query<StockQuery>,
) -> Result<Json<Vec<StockLevelView>>, ApiError> {
    Ok(Json(s.app.stock_levels(q.negative).await?))
}

/// A SKU's level: on hand, reserved for pickups, available.
#[utoipa::path(get, path = "/api/v1/stock/{sku}", tag = "stock", params(("sku" = String, Path)),
    responses((status = 200, body = StockLevelView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn stock_level(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(sku): Path<String>,
) -> Result<Json<StockLevelView>, ApiError> {
    s.app
        .stock_level(&sku)
        .await
        .map(Json)
        .map_err(product_not_found)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct HistoryQuery {
    /// Newest first; 1-1000, default 100.
    limit: Option<u32>,
}

/// A SKU's movement history, newest first.
#[utoipa::path(get, path = "/api/v1/stock/{sku}/movements", tag = "stock",
    params(("sku" = String, Path), HistoryQuery),
    responses((status = 200, body = [MovementView]), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn movements(
    State(s): State<AppState>,
    Auth(_staff): Auth,
    Path(sku): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<MovementView>>, ApiError> {
    s.app
        .movements(&sku, q.limit.unwrap_or(100))
        .await
        .map(Json)
        .map_err(product_not_found)
}

/// Books goods in.
#[utoipa::path(post, path = "/api/v1/stock/receipts", tag = "stock", request_body = ReceiptRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = StockChange), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn receive(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<ReceiptRequest>,
) -> Result<(StatusCode, Json<StockChange>), ApiError> {
    let change = s.app.receive_stock(&actor, key.0, req).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// Writes goods off (expired, damaged, other).
#[utoipa::path(post, path = "/api/v1/stock/waste", tag = "stock", request_body = WasteRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = StockChange), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn waste(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<WasteRequest>,
) -> Result<(StatusCode, Json<StockChange>), ApiError> {
    let change = s.app.record_waste(&actor, key.0, req).await?;
    Ok((StatusCode::CREATED, Json(change)))
}

/// Records a cycle count (manager): sets on-hand to the counted quantity.
#[utoipa::path(post, path = "/api/v1/stock/counts", tag = "stock", request_body = CountRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = StockChange), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn count(
    State(s): State<AppState>,
    Auth(actor): Auth,
    key: IdemKey,
    ApiJson(req): ApiJson<CountRequest>,
) -> Result<(StatusCode, Json<StockChange>), ApiError> {
    let change = s.app.cycle_count(&actor, key.0, req).await?;
    Ok((StatusCode::CREATED, Json(change)))
}
