//! Promotions at the counter: what the counter prices with (the store's
//! markdowns and the coupon campaigns it takes, with what is left of each
//! allotment). A sale takes a coupon with `"coupon": "LC1.…"` in
//! `POST /api/v1/sales`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::error::ApiError;
use super::extract::Auth;
use crate::app::promotions::PromotionsView;

/// The store's markdowns (with the rules' version) and the coupon
/// campaigns its counter takes, with the money left of each allotment.
#[utoipa::path(get, path = "/api/v1/promotions", tag = "promotions",
    responses((status = 200, body = PromotionsView)), security(("bearer" = [])))]
pub(super) async fn get(
    State(s): State<AppState>,
    Auth(_staff): Auth,
) -> Result<Json<PromotionsView>, ApiError> {
    Ok(Json(s.app.promotions().await?))
}
