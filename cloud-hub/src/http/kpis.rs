//! `GET /api/v1/kpis` and `GET /api/v1/kpis.csv`: the chain's numbers for
//! hub staff, per store and in total (DESIGN.md §8). The figures come from
//! [`crate::app::kpis`]; this adapter reads the query, checks the caller's scope
//! and writes JSON or a CSV Excel opens (UTF-8 with a BOM, Chinese header).

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use linli_shared::kpi::{By, Figures, MAX_PERIOD_DAYS, Period};
use serde::Deserialize;

use super::{ApiError, Auth, err};
use crate::app::kpis::{KpiRefusal, KpiReport, KpiScope};
use crate::hub::Hub;

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct KpiQuery {
    /// One store (else a region's, else every store the caller may see).
    store_id: Option<String>,
    /// A region of the store directory (stores.csv `region`, e.g. 杭州西区).
    region: Option<String>,
    /// First business day, `YYYY-MM-DD`.
    from: Option<String>,
    /// Last business day (inclusive), `YYYY-MM-DD`; at most 400 days after `from`.
    to: Option<String>,
    /// The series: `day`, `week` (ISO, from Monday) or `month`; none by default.
    by: Option<String>,
}

fn invalid(msg: String) -> ApiError {
    err(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", msg)
}

fn date(name: &str, v: Option<&str>) -> Result<NaiveDate, ApiError> {
    let label = if name == "from" {
        "开始日期"
    } else {
        "结束日期"
    };
    let v = v.ok_or_else(|| {
        invalid(format!(
            "请填写{label} {name}，格式为 YYYY-MM-DD（例如 2026-11-01） ({name} is required, YYYY-MM-DD)"
        ))
    })?;
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        invalid(format!(
            "{label} {name} 格式不对：{v:?}，请写成 YYYY-MM-DD（例如 2026-11-01） ({name} must be YYYY-MM-DD)"
        ))
    })
}

async fn report(hub: &Hub, user: &crate::auth::User, q: KpiQuery) -> Result<KpiReport, ApiError> {
    let from = date("from", q.from.as_deref())?;
    let to = date("to", q.to.as_deref())?;
    if to < from {
        return Err(invalid(format!(
            "结束日期 {to} 早于开始日期 {from}，请对调 (to must not be before from)"
        )));
    }
    let period = Period::new(from, to, hub.order_settings.utc_offset);
    if period.days() > MAX_PERIOD_DAYS {
        return Err(invalid(format!(
            "查询区间最长 {MAX_PERIOD_DAYS} 天，本次为 {} 天，请缩短 (a period may span at most {MAX_PERIOD_DAYS} days)",
            period.days()
        )));
    }
    let by = match q.by.as_deref() {
        None | Some("") => None,
        Some(b) => Some(By::parse(b).ok_or_else(|| {
            invalid(format!(
                "分组 by 只能是 day、week 或 month，收到 {b:?} (by must be day, week or month)"
            ))
        })?),
    };
    let scope = KpiScope {
        region: q.region.filter(|r| !r.is_empty()),
        store_id: q.store_id.filter(|s| !s.is_empty()),
    };
    let visible = hub.kpi_stores_of(user);
    let stores = match hub.kpi_stores(&visible, &scope)? {
        Ok(s) => s,
        Err(r @ KpiRefusal::NotYourRegion(_)) => {
            return Err(err(StatusCode::FORBIDDEN, "not_your_region", r.to_string()));
        }
        Err(r @ KpiRefusal::UnknownRegion(_)) => {
            return Err(err(
                StatusCode::NOT_FOUND,
                "region_not_found",
                r.to_string(),
            ));
        }
    };
    Ok(hub.kpis(stores, scope, period, by, hub.now()).await?)
}

/// The chain's numbers per store and in total over `from..=to` (business
/// days, the store's local time), with a series when `by` is given, each
/// store's freshness and each figure's formula. Rates are fractions, `null`
/// when nothing to divide by. Staff; a regional manager sees their region.
#[utoipa::path(get, path = "/api/v1/kpis", tag = "kpis",
    params(KpiQuery),
    responses((status = 200, body = KpiReport, description = "totals, stores, series, freshness and formulas"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_region"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found / region_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field: a bad date, `to` before `from`, more than 400 days, a bad `by`")),
    security(("bearer" = [])))]
pub(crate) async fn kpis(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Query(q): Query<KpiQuery>,
) -> Result<Json<KpiReport>, ApiError> {
    Ok(Json(report(&hub, &user, q).await?))
}

/// The same numbers as CSV, one row per store (`text/csv; charset=utf-8`
/// with a byte-order mark so Excel reads the Chinese): money in yuan, rates
/// in percent, empty where there is nothing to divide by.
#[utoipa::path(get, path = "/api/v1/kpis.csv", tag = "kpis",
    params(KpiQuery),
    responses((status = 200, content_type = "text/csv", description = "one row per store, Chinese header row"),
              (status = 403, body = linli_shared::api_doc::ErrorBody, description = "not_your_region"),
              (status = 404, body = linli_shared::api_doc::ErrorBody, description = "store_not_found / region_not_found"),
              (status = 422, body = linli_shared::api_doc::ErrorBody, description = "invalid_field")),
    security(("bearer" = [])))]
pub(crate) async fn kpis_csv(
    State(hub): State<Hub>,
    Auth(user): Auth,
    Query(q): Query<KpiQuery>,
) -> Result<Response, ApiError> {
    let r = report(&hub, &user, q).await?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv(&r)).into_response())
}

const HEADER: &str = "门店编号,门店名称,区域,总成交额(元),门店净销售额(元),线上成交额(元),订单数,直播成交额(元),社群月活率(%),社群成员数,线上订单占比(%),线上金额占比(%),自提率(%),自提完成率(%),逾期未取,复购率(%),30日复购率(%),损耗率(%),准时送达率(%),平均交货时长(秒),超卖率(%),团购成团率(%),团购柜台收款(元),数据更新至";

fn yuan(fen: i64) -> String {
    format!(
        "{}{}.{:02}",
        if fen < 0 { "-" } else { "" },
        fen.abs() / 100,
        fen.abs() % 100
    )
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}", r * 100.0)).unwrap_or_default()
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn row(id: &str, name: &str, region: &str, f: &Figures, fresh: &str) -> String {
    [
        field(id),
        field(name),
        field(region),
        yuan(f.gmv_fen),
        yuan(f.counter_gmv_fen),
        yuan(f.online_gmv_fen),
        f.orders.to_string(),
        yuan(f.live_gmv_fen),
        pct(f.community_mau_rate),
        f.community_members.to_string(),
        pct(f.online_order_share),
        pct(f.online_gmv_share),
        pct(f.pickup_rate),
        pct(f.pickup_completion_rate),
        f.overdue_pickups.to_string(),
        pct(f.repurchase_rate),
        pct(f.repurchase_30d_rate),
        pct(f.waste_rate),
        pct(f.on_time_delivery_rate),
        f.avg_handover_secs
            .map(|s| format!("{s:.0}"))
            .unwrap_or_default(),
        pct(f.oversell_rate),
        pct(f.groupbuy_success_rate),
        yuan(f.groupbuy_counter_fen),
        field(fresh),
    ]
    .join(",")
}

fn csv(r: &KpiReport) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    out.push_str(HEADER);
    out.push_str("\r\n");
    for s in &r.stores {
        let fresh = s.freshness.newest_fact_at.as_deref().unwrap_or("");
        out.push_str(&row(
            &s.store_id,
            &s.name,
            s.region.as_deref().unwrap_or(""),
            &s.figures,
            fresh,
        ));
        out.push_str("\r\n");
    }
    out.push_str(&row("合计", "", "", &r.totals, ""));
    out.push_str("\r\n");
    out.into_bytes()
}
