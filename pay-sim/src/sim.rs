//! A local payment provider: the [API](crate) served from memory, for the
//! demo and for tests. It is a third party: it knows nothing of Linli but
//! the API, and a restarted simulator has forgotten everything.
//!
//! Besides the merchant API it has what a phone and a test need:
//!
//! - the cashier, standing in for WeChat's payment sheet on the phone:
//!   `GET /pay/{prepay_id}` shows the amount and a "确认支付" button, which
//!   POSTs `/pay/{prepay_id}/confirm` (and goes back to `?return=` when
//!   given); `POST /v3/sim/confirm/{prepay_id}` does the same for scripts;
//! - `POST /v3/sim/faults` [`Faults`]: a share of refund requests fails
//!   with `500 SYSTEM_ERROR` (half of them after applying the refund, as
//!   when an answer is lost), and each notification can be sent several
//!   times, so retries and duplicates are exercised;
//! - `GET /v3/sim/refunds` and `GET /v3/sim/stats`: what it holds, so a
//!   test can check that every refund happened exactly once;
//! - `POST /v3/sim/paid` [`PrepayRequest`]: a transaction paid at once,
//!   without notification (to stage many refunds).
//!
//! Notifications are sent by a task that [`serve`] owns: at once after
//! confirmation, then again every `notify_retry` (growing up to ten times
//! that) until the merchant answers `200` or `204`.

pub mod book;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use book::{Limits, SimError};

use crate::wire::{
    ErrorBody, Faults, Notification, PrepayRequest, PrepayResponse, RefundRequest, Resource,
    SimRefundRow, SimStats,
};
use book::Book;

/// The simulator's state. Cloning shares it, so a test can look inside
/// while [`serve`] runs with a clone.
#[derive(Clone)]
pub struct SimPay {
    book: Arc<Mutex<Book>>,
    key: Arc<str>,
    faults: Arc<Mutex<(Faults, rand::rngs::StdRng)>>,
    wake: Arc<Notify>,
    notify_retry: Duration,
}

impl std::fmt::Debug for SimPay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPay")
            .field("notify_retry", &self.notify_retry)
            .finish_non_exhaustive()
    }
}

impl SimPay {
    /// A simulator with the merchant `key` (API auth and notification
    /// signature), WeChat Pay's refund limits, no faults, and notifications
    /// retried every second.
    pub fn new(key: impl Into<String>) -> SimPay {
        SimPay {
            book: Arc::new(Mutex::new(Book::default())),
            key: Arc::from(key.into()),
            faults: Arc::new(Mutex::new((
                Faults {
                    refund_fail_rate: 0.0,
                    notification_copies: 1,
                },
                rand::rngs::StdRng::seed_from_u64(11),
            ))),
            wake: Arc::new(Notify::new()),
            notify_retry: Duration::from_secs(1),
        }
    }

    /// Other refund limits (tests shorten the one-minute spacing).
    #[must_use]
    pub fn with_limits(self, limits: Limits) -> SimPay {
        self.book().limits = limits;
        self
    }

    /// How long to wait before sending an unacknowledged notification
    /// again (at least 1 ms).
    #[must_use]
    pub fn with_notify_retry(mut self, every: Duration) -> SimPay {
        self.notify_retry = every.max(Duration::from_millis(1));
        self
    }

    /// Faults from now on; `seed` makes the injected failures repeatable.
    pub fn set_faults(&self, faults: Faults, seed: u64) {
        let mut g = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        *g = (faults, rand::rngs::StdRng::seed_from_u64(seed));
    }

    /// The simulator's counters.
    pub fn stats(&self) -> SimStats {
        self.book().stats.clone()
    }

    /// A transaction paid at once, without cashier or notification (to
    /// stage refunds).
    pub fn pay_directly(&self, req: PrepayRequest) -> Result<crate::wire::Transaction, SimError> {
        self.book().paid_directly(req, Utc::now())
    }

    /// A transaction, as the query API answers it.
    pub fn transaction(&self, out_trade_no: &str) -> Result<crate::wire::Transaction, SimError> {
        self.book().query(out_trade_no)
    }

    /// Every refund it holds.
    pub fn refunds(&self) -> Vec<SimRefundRow> {
        self.book().refund_rows()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // book operations check before they change anything
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this refund request should fail, and if so whether after
    /// applying it.
    fn draw_fault(&self) -> Option<bool> {
        let mut g = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let rate = g.0.refund_fail_rate.clamp(0.0, 1.0);
        if rate > 0.0 && g.1.gen_bool(rate) {
            Some(g.1.gen_bool(0.5))
        } else {
            None
        }
    }

    fn copies(&self) -> u32 {
        let g = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        g.0.notification_copies.clamp(1, 10)
    }

    fn key_matches(&self, presented: &[u8]) -> bool {
        let expected = self.key.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The simulator's HTTP API.
pub fn router(state: SimPay) -> Router {
    let merchant = Router::new()
        .route("/v3/pay/transactions/jsapi", post(prepay))
        .route("/v3/pay/transactions/out-trade-no/{no}", get(query))
        .route("/v3/pay/transactions/out-trade-no/{no}/close", post(close))
        .route("/v3/refund/domestic/refunds", post(refund))
        .route("/v3/sim/faults", post(faults))
        .route("/v3/sim/refunds", get(refunds))
        .route("/v3/sim/stats", get(stats))
        .route("/v3/sim/paid", post(paid))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .merge(merchant)
        .route("/v3/sim/confirm/{prepay_id}", post(confirm_api))
        .route("/pay/{prepay_id}", get(cashier))
        .route("/pay/{prepay_id}/confirm", post(confirm_form))
        .route(
            "/health",
            get(|| async { Json(serde_json::json!({"status":"ok"})) }),
        )
        .with_state(state)
}

/// Serves [`router`] on `listener` until `cancel` fires, with the task that
/// sends notifications. Returns once both have stopped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: SimPay,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let tasks_cancel = cancel.child_token();
    let mut tasks = JoinSet::new();
    tasks.spawn(notifier(state.clone(), tasks_cancel.clone()));
    tracing::info!(%addr, "payment simulator serving");
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    tasks_cancel.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::warn!(error = %e, "payment simulator task ended abnormally");
        }
    }
    tracing::info!(%addr, "payment simulator stopped");
    served
}

/// Sends due notifications until acknowledged.
async fn notifier(sim: SimPay, cancel: CancellationToken) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client; notifications are not sent");
            return;
        }
    };
    loop {
        let now = Utc::now();
        let (due, next): (Vec<book::Pending>, Option<chrono::DateTime<Utc>>) = {
            let b = sim.book();
            let due = b
                .pending
                .values()
                .filter(|p| p.due <= now)
                .cloned()
                .collect();
            let next = b.pending.values().map(|p| p.due).filter(|d| *d > now).min();
            (due, next)
        };
        for p in due {
            let acked = send_notification(&sim, &client, &p).await;
            let mut b = sim.book();
            if acked {
                b.pending.remove(&p.out_trade_no);
                b.stats.notifications_acknowledged += 1;
            } else if let Some(q) = b.pending.get_mut(&p.out_trade_no) {
                q.attempts += 1;
                let wait = sim.notify_retry * q.attempts.min(10);
                q.due = Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(1));
            }
        }
        let wait = next
            .and_then(|n| (n - Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sim.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One attempt: the notification, signed, `copies` times; acknowledged if
/// any copy got `200` or `204`.
async fn send_notification(sim: &SimPay, client: &reqwest::Client, p: &book::Pending) -> bool {
    let body = Notification {
        id: ulid::Ulid::new().to_string(),
        create_time: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        event_type: "TRANSACTION.SUCCESS".into(),
        resource_type: "encrypt-resource".into(),
        summary: "支付成功".into(),
        resource: Resource {
            algorithm: "NONE".into(),
            original_type: "transaction".into(),
            ciphertext: serde_json::to_string(&p.transaction).unwrap_or_default(),
            associated_data: "transaction".into(),
            nonce: String::new(),
        },
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut acked = false;
    for _ in 0..sim.copies() {
        let ts = Utc::now().timestamp().to_string();
        let nonce = ulid::Ulid::new().to_string();
        let sig = crate::sign::sign(sim.key.as_bytes(), &ts, &nonce, &body);
        sim.book().stats.notifications_sent += 1;
        let sent = client
            .post(&p.notify_url)
            .header("content-type", "application/json")
            .header(crate::wire::HEADER_TIMESTAMP, &ts)
            .header(crate::wire::HEADER_NONCE, &nonce)
            .header(crate::wire::HEADER_SERIAL, "LINLI-SIM-1")
            .header(crate::wire::HEADER_SIGNATURE, sig)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(r)
                if r.status() == reqwest::StatusCode::OK
                    || r.status() == reqwest::StatusCode::NO_CONTENT =>
            {
                acked = true;
            }
            Ok(r) => {
                tracing::info!(out_trade_no = %p.out_trade_no, status = %r.status(), "notification not acknowledged");
            }
            Err(e) => {
                tracing::info!(out_trade_no = %p.out_trade_no, error = %e, "notification not delivered");
            }
        }
    }
    acked
}

async fn require_key(State(sim): State<SimPay>, request: Request, next: Next) -> Response {
    let ok = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|k| sim.key_matches(k));
    if !ok {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

/// An error answer, WeChat Pay style.
#[derive(Debug)]
enum ApiError {
    Unauthorized,
    Body(String),
    Sim(SimError),
}

impl From<SimError> for ApiError {
    fn from(e: SimError) -> Self {
        ApiError::Sim(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::Body(e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "SIGN_ERROR",
                "missing or wrong merchant key".to_owned(),
            ),
            ApiError::Body(m) => (StatusCode::BAD_REQUEST, "PARAM_ERROR", m),
            ApiError::Sim(e) => {
                let status = match &e {
                    SimError::OrderNotExist(_) => StatusCode::NOT_FOUND,
                    SimError::FrequencyLimited(_) => StatusCode::TOO_MANY_REQUESTS,
                    SimError::SystemError => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::BAD_REQUEST,
                };
                (status, e.code(), e.to_string())
            }
        };
        let mut r = (
            status,
            Json(ErrorBody {
                code: code.into(),
                message,
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        r
    }
}

async fn prepay(
    State(sim): State<SimPay>,
    body: Result<Json<PrepayRequest>, JsonRejection>,
) -> Result<Json<PrepayResponse>, ApiError> {
    let Json(req) = body?;
    let prepay_id = sim.book().prepay(req)?;
    Ok(Json(PrepayResponse { prepay_id }))
}

async fn query(
    State(sim): State<SimPay>,
    Path(no): Path<String>,
) -> Result<Json<crate::wire::Transaction>, ApiError> {
    Ok(Json(sim.book().query(&no)?))
}

async fn close(State(sim): State<SimPay>, Path(no): Path<String>) -> Result<StatusCode, ApiError> {
    sim.book().close(&no)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn refund(
    State(sim): State<SimPay>,
    body: Result<Json<RefundRequest>, JsonRejection>,
) -> Result<Json<crate::wire::Refund>, ApiError> {
    let Json(req) = body?;
    let fault = sim.draw_fault();
    if fault == Some(false) {
        sim.book().stats.injected_failures += 1;
        return Err(SimError::SystemError.into());
    }
    let done = sim.book().refund(req, Utc::now())?;
    if fault == Some(true) {
        // applied, but the merchant never hears it
        sim.book().stats.injected_failures += 1;
        return Err(SimError::SystemError.into());
    }
    Ok(Json(done))
}

async fn faults(
    State(sim): State<SimPay>,
    body: Result<Json<Faults>, JsonRejection>,
) -> Result<Json<Faults>, ApiError> {
    let Json(f) = body?;
    sim.set_faults(f, 11);
    Ok(Json(f))
}

async fn refunds(State(sim): State<SimPay>) -> Json<Vec<SimRefundRow>> {
    Json(sim.refunds())
}

async fn stats(State(sim): State<SimPay>) -> Json<SimStats> {
    Json(sim.stats())
}

async fn paid(
    State(sim): State<SimPay>,
    body: Result<Json<PrepayRequest>, JsonRejection>,
) -> Result<Json<crate::wire::Transaction>, ApiError> {
    let Json(req) = body?;
    Ok(Json(sim.book().paid_directly(req, Utc::now())?))
}

fn confirm(sim: &SimPay, prepay_id: &str) -> Result<crate::wire::Transaction, ApiError> {
    let t = sim.book().confirm(prepay_id, Utc::now())?;
    sim.wake.notify_one();
    tracing::info!(out_trade_no = %t.out_trade_no, "payment confirmed by the customer");
    Ok(t)
}

async fn confirm_api(
    State(sim): State<SimPay>,
    Path(prepay_id): Path<String>,
) -> Result<Json<crate::wire::Transaction>, ApiError> {
    Ok(Json(confirm(&sim, &prepay_id)?))
}

#[derive(Debug, serde::Deserialize)]
struct ReturnTo {
    #[serde(rename = "return")]
    return_to: Option<String>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn safe_return(r: Option<String>) -> Option<String> {
    r.filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The cashier: what WeChat shows on the phone, reduced to one button.
async fn cashier(
    State(sim): State<SimPay>,
    Path(prepay_id): Path<String>,
    Query(q): Query<ReturnTo>,
) -> Response {
    let Some((no, desc, total, paid)) = sim.book().prepay_info(&prepay_id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(
                "<!doctype html><meta charset=utf-8><p>没有这笔支付 (no such payment)</p>"
                    .to_owned(),
            ),
        )
            .into_response();
    };
    let ret = safe_return(q.return_to);
    let action = match &ret {
        Some(r) => format!(
            "/pay/{}/confirm?return={}",
            percent_encode(&prepay_id),
            percent_encode(r)
        ),
        None => format!("/pay/{}/confirm", percent_encode(&prepay_id)),
    };
    let state = if paid {
        "<p id=state>已支付 (paid)</p>"
    } else {
        "<p id=state>待支付 (awaiting payment)</p>"
    };
    Html(format!(
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>\
<meta name=viewport content=\"width=device-width,initial-scale=1\"><title>微信支付（模拟）</title>\
<style>body{{font-family:sans-serif;max-width:420px;margin:2em auto;text-align:center}}\
.amt{{font-size:2.4em;margin:.4em 0}}button{{font-size:1.2em;padding:.6em 2em;background:#07c160;color:#fff;border:0;border-radius:6px}}</style></head>\
<body><h1>微信支付（模拟）<br><small>WeChat Pay (simulator)</small></h1>\
<p>{desc}</p><p>订单号 Order {no}</p><p class=amt id=amount>¥{yuan}.{fen:02}</p>{state}\
<form method=post action=\"{action}\"><button id=confirm type=submit>确认支付 Confirm payment</button></form></body></html>",
        desc = escape(&desc),
        no = escape(&no),
        yuan = total / 100,
        fen = total % 100,
        action = escape(&action),
    ))
    .into_response()
}

async fn confirm_form(
    State(sim): State<SimPay>,
    Path(prepay_id): Path<String>,
    Query(q): Query<ReturnTo>,
) -> Response {
    match confirm(&sim, &prepay_id) {
        Ok(_) => match safe_return(q.return_to) {
            Some(r) => Redirect::to(&r).into_response(),
            None => Html(
                "<!doctype html><html lang=zh-CN><meta charset=utf-8><h1 id=done>支付成功 (paid)</h1></html>"
                    .to_owned(),
            )
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}
