//! The manager's end-of-day report, and the store's figures from its own
//! books (the chain's numbers, issue 12).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::Auth;
use crate::app::reports::DayReport;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct ReportQuery {
    /// Business day `YYYY-MM-DD` (the store's local date); default today.
    day: Option<String>,
}

/// The end-of-day report (manager): the day's sales by payment method, its
/// refunds (paid back in cash up to the cash the sale took, the rest by the
/// sale's other method) and the cash expected in the drawer.
#[utoipa::path(get, path = "/api/v1/reports/day", tag = "sales", params(ReportQuery),
    responses((status = 200, body = DayReport), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn day(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<ReportQuery>,
) -> Result<Json<DayReport>, ApiError> {
    let day = match q.day {
        Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "营业日格式应为 YYYY-MM-DD，例如 2026-11-25 (day must be YYYY-MM-DD)",
            )
        })?,
        None => s.app.business_day(s.app.now()),
    };
    Ok(Json(s.app.day_report(&actor, day).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct KpiQuery {
    /// First business day `YYYY-MM-DD`.
    from: String,
    /// Last business day `YYYY-MM-DD` (inclusive).
    to: String,
}

/// The store's figures over `from..=to`, from its own books, with the
/// chain's formulas (manager): what the store's data decides (counter
/// sales, refunds, write-offs, online orders it fulfilled, hand-overs,
/// staff, group-buy money at its counter); the hub's own facts
/// (community, oversells, group-buy outcomes) are `null` or 0 here.
#[utoipa::path(get, path = "/api/v1/reports/kpis", tag = "sales", params(KpiQuery),
    responses((status = 200, body = linli_shared::kpi::Figures), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn kpis(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<KpiQuery>,
) -> Result<Json<linli_shared::kpi::Figures>, ApiError> {
    let date = |v: &str| {
        NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                "日期格式应为 YYYY-MM-DD，例如 2026-11-01 (from and to must be YYYY-MM-DD)",
            )
        })
    };
    let (from, to) = (date(&q.from)?, date(&q.to)?);
    Ok(Json(s.app.kpis(&actor, from, to).await?))
}
