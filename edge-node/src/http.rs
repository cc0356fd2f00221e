//! The HTTP JSON API under `/api/v1`, plus `/health` and `/metrics`.
//!
//! [`router`] is a plain function of the state, so tests drive it with
//! `tower::ServiceExt::oneshot` without a socket. Handlers only translate
//! between HTTP and [`crate::app::App`]; the rules live there.

mod catalog;
mod community;
pub mod error;
pub mod extract;
mod groupbuy;
mod online;
pub mod openapi;
mod orders;
mod promotions;
mod reports;
mod sales;
pub mod system;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::App;
use crate::metrics::{Metrics, RequestLabels, RouteLabels};
use error::ApiError;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub app: App,
    pub metrics: Arc<Metrics>,
    /// Largest JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest CSV body accepted.
    pub max_csv_bytes: usize,
    /// The state of the link to the hub.
    pub sync_status: Arc<crate::uplink::SyncStatus>,
    /// The hub's HTTP base URL, for the console's live tab.
    pub hub_http: Option<String>,
}

/// The whole HTTP surface of the store node.
pub fn router(state: AppState) -> Router {
    let csv_limit = DefaultBodyLimit::max(state.max_csv_bytes);
    let api = Router::new()
        .route("/login", post(system::login))
        .route("/logout", post(system::logout))
        .route("/openapi.json", get(system::openapi))
        .route("/catalog/import", post(catalog::import).layer(csv_limit))
        .route("/products", get(catalog::search))
        .route("/products/{sku}", get(catalog::product_by_sku))
        .route(
            "/products/by-barcode/{code}",
            get(catalog::product_by_barcode),
        )
        .route("/stock", get(catalog::stock_levels))
        .route("/stock/receipts", post(catalog::receive))
        .route("/stock/waste", post(catalog::waste))
        .route("/stock/counts", post(catalog::count))
        .route("/stock/{sku}", get(catalog::stock_level))
        .route("/stock/{sku}/movements", get(catalog::movements))
        .route("/sales", post(sales::create).get(sales::list))
        .route("/sales/quote", post(sales::quote))
        .route("/sales/{sale_id}", get(sales::get))
        .route("/sales/{sale_id}/refunds", post(sales::refund))
        .route("/orders", post(orders::create).get(orders::list))
        .route("/orders/{order_id}", get(orders::get))
        .route("/orders/{order_id}/cancel", post(orders::cancel))
        .route("/pickups/redeem", post(orders::redeem))
        .route("/pickups/lookup", post(online::lookup))
        .route("/pickups/by-phone", post(online::by_phone))
        .route("/reports/day", get(reports::day))
        .route("/reports/kpis", get(reports::kpis))
        .route("/community/members", post(community::add_member))
        .route("/promotions", get(promotions::get))
        .route("/group-buys", get(groupbuy::list))
        .route(
            "/group-buys/{group_buy_id}/receipts",
            post(groupbuy::receive),
        )
        .route(
            "/group-buys/{group_buy_id}/commitments",
            post(groupbuy::commit).get(groupbuy::commitments),
        )
        .route(
            "/group-buys/{group_buy_id}/commitments/{commitment_id}/cancel",
            post(groupbuy::cancel),
        )
        .route(
            "/group-buys/{group_buy_id}/commitments/{commitment_id}/refund",
            post(groupbuy::refund),
        )
        .route("/online-orders", get(online::list))
        .route("/online-orders/{order_id}", get(online::get))
        .route("/online-orders/{order_id}/accept", post(online::accept))
        .route("/online-orders/{order_id}/pick", post(online::pick))
        .route("/online-orders/{order_id}/ready", post(online::ready))
        .route("/online-orders/{order_id}/dispatch", post(online::dispatch))
        .route(
            "/online-orders/{order_id}/delivered",
            post(online::delivered),
        )
        .route("/riders", get(online::riders).post(online::add_rider))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_while_recovering,
        ));
    Router::new()
        .route("/", get(console))
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .nest("/api/v1", api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::map_response(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The cashier console: one self-contained page over this API.
async fn console() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../assets/console.html"))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint; see /api/v1/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method; see /api/v1/openapi.json",
    )
}

/// A node whose new database is still recovering from the hub records
/// nothing: every write is refused with 503 `recovering` (logging in and
/// looking a pickup code up still work).
async fn refuse_while_recovering(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let read_only = req.method() == axum::http::Method::GET
        || req.extensions().get::<MatchedPath>().is_some_and(|p| {
            p.as_str().ends_with("/login")
                || p.as_str().ends_with("/pickups/lookup")
                || p.as_str().ends_with("/pickups/by-phone")
        });
    if !read_only && state.app.sync_ctx().recovering() {
        return ApiError::from(crate::app::AppError::Recovering).into_response();
    }
    next.run(req).await
}

/// Counts requests and observes their latency per route template.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await.into_response();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route: route.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(started.elapsed().as_secs_f64());
    resp
}
