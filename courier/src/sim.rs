//! A local courier: the [wire protocol](crate::http) served from memory, for
//! the demo and for tests.
//!
//! It behaves like a real courier where the store can tell the difference
//! (authentication, idempotent dispatch, validation, cancel only before
//! pickup, stable error codes) and adds control endpoints a real courier does
//! not have, so a demo or a test can say "the rider picked up" or "the
//! courier gave up": `POST /v1/deliveries/{ref}/advance` and
//! `POST /v1/deliveries/{ref}/fail`. With
//! [`SimCourier::with_auto_advance`] every open delivery moves one step per
//! period by itself, driven by a task that [`serve`] owns and stops.
//!
//! Deliveries live in memory only: a restarted simulator has forgotten them,
//! which is also what a store sees when a courier loses its records
//! ([`crate::CourierError::UnknownDelivery`]).

mod book;

pub use book::SimError;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::wire::{self, DispatchResponse, ErrorBody, ErrorDetail, FailRequest};
use crate::{CourierStatus, DeliveryRequest};
use book::Book;

/// The simulator's state: its deliveries, the API key it accepts and whether
/// deliveries advance by themselves. Cloning shares the deliveries, so a test
/// can keep a clone to look inside while [`serve`] runs with another.
#[derive(Clone)]
pub struct SimCourier {
    // A std mutex: every operation is a few map lookups and none is held
    // across an await.
    book: Arc<Mutex<Book>>,
    api_key: Arc<str>,
    auto_advance: Option<Duration>,
}

impl std::fmt::Debug for SimCourier {
    // The API key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCourier")
            .field("deliveries", &self.delivery_count())
            .field("auto_advance", &self.auto_advance)
            .finish_non_exhaustive()
    }
}

impl SimCourier {
    /// An empty simulator accepting `Authorization: Bearer <api_key>`, with
    /// deliveries that move only when told to.
    pub fn new(api_key: impl Into<String>) -> SimCourier {
        SimCourier {
            book: Arc::default(),
            api_key: Arc::from(api_key.into()),
            auto_advance: None,
        }
    }

    /// Every open delivery advances one step (requested → picked_up →
    /// delivered) each `every` (at least 1 ms) while [`serve`] runs.
    #[must_use]
    pub fn with_auto_advance(mut self, every: Duration) -> SimCourier {
        self.auto_advance = Some(every.max(Duration::from_millis(1)));
        self
    }

    /// How many deliveries the simulator holds (an idempotent replay adds
    /// none).
    pub fn delivery_count(&self) -> usize {
        self.book().len()
    }

    /// A delivery's status, as `GET /v1/deliveries/{ref}` answers it.
    pub fn status(&self, courier_ref: &str) -> Result<CourierStatus, SimError> {
        self.book().status(courier_ref)
    }

    /// Moves a delivery one step, as `POST /v1/deliveries/{ref}/advance`.
    pub fn advance(&self, courier_ref: &str) -> Result<CourierStatus, SimError> {
        self.book().advance(courier_ref, Utc::now())
    }

    /// Fails an open delivery with `reason`, as
    /// `POST /v1/deliveries/{ref}/fail`.
    pub fn fail(
        &self,
        courier_ref: &str,
        reason: impl Into<String>,
    ) -> Result<CourierStatus, SimError> {
        self.book().fail(courier_ref, reason.into())
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Book operations check before they change anything, so a panic in
        // one cannot leave it half-updated: a poisoned lock is still usable.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key_matches(&self, presented: &[u8]) -> bool {
        // Compare every byte so the answer time does not tell how much of a
        // guessed key was right.
        let expected = self.api_key.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// The simulator's HTTP API: the wire protocol plus the control endpoints,
/// all behind the API key.
pub fn router(state: SimCourier) -> Router {
    Router::new()
        .route("/v1/deliveries", post(dispatch))
        .route("/v1/deliveries/{courier_ref}", get(status))
        .route("/v1/deliveries/{courier_ref}/cancel", post(cancel))
        .route("/v1/deliveries/{courier_ref}/advance", post(advance))
        .route("/v1/deliveries/{courier_ref}/fail", post(fail))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_key))
        .with_state(state)
}

/// Serves [`router`] on `listener` until `cancel` fires, with the
/// auto-advance task when the state asks for one. Returns once the server
/// and the task have both stopped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: SimCourier,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    // A child token: if the server fails on its own, the task stops without
    // cancelling whatever else the caller's token guards.
    let tasks_cancel = cancel.child_token();
    let mut tasks = JoinSet::new();
    if let Some(every) = state.auto_advance {
        tasks.spawn(auto_advance(state.clone(), every, tasks_cancel.clone()));
    }
    tracing::info!(%addr, auto_advance = ?state.auto_advance, "courier simulator serving");
    let served = axum::serve(listener, router(state))
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    tasks_cancel.cancel();
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::warn!(error = %e, "courier simulator task ended abnormally");
        }
    }
    tracing::info!(%addr, "courier simulator stopped");
    served
}

async fn auto_advance(sim: SimCourier, every: Duration, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first tick is immediate; a new delivery gets a full period first.
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticks.tick() => {
                let moved = sim.book().advance_all(Utc::now());
                if moved > 0 {
                    tracing::debug!(moved, "auto-advanced deliveries");
                }
            }
        }
    }
}

async fn require_key(State(sim): State<SimCourier>, request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|key| sim.key_matches(key));
    if !authorized {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

async fn dispatch(
    State(sim): State<SimCourier>,
    headers: HeaderMap,
    body: Result<Json<DeliveryRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<DispatchResponse>), ApiError> {
    let Json(req) = body?;
    let key = headers
        .get(wire::IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::MissingIdempotencyKey)?;
    let order_id = req.order_id.clone();
    let done = sim
        .book()
        .dispatch(key, req, || format!("sim-{}", ulid::Ulid::new()))?;
    let code = if done.created {
        tracing::info!(%order_id, courier_ref = %done.status.courier_ref, "delivery requested");
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(DispatchResponse {
            courier_ref: done.status.courier_ref,
            state: done.status.state,
        }),
    ))
}

async fn status(
    State(sim): State<SimCourier>,
    Path(courier_ref): Path<String>,
) -> Result<Json<CourierStatus>, ApiError> {
    Ok(Json(sim.status(&courier_ref)?))
}

async fn cancel(
    State(sim): State<SimCourier>,
    Path(courier_ref): Path<String>,
) -> Result<Json<CourierStatus>, ApiError> {
    Ok(Json(sim.book().cancel(&courier_ref)?))
}

async fn advance(
    State(sim): State<SimCourier>,
    Path(courier_ref): Path<String>,
) -> Result<Json<CourierStatus>, ApiError> {
    Ok(Json(sim.advance(&courier_ref)?))
}

async fn fail(
    State(sim): State<SimCourier>,
    Path(courier_ref): Path<String>,
    body: Result<Json<FailRequest>, JsonRejection>,
) -> Result<Json<CourierStatus>, ApiError> {
    let Json(FailRequest { reason }) = body?;
    Ok(Json(sim.fail(&courier_ref, reason)?))
}

/// Everything a simulator endpoint can answer besides success, each with its
/// status and stable code.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    /// No or wrong `Authorization: Bearer` key.
    #[error("missing or wrong API key")]
    Unauthorized,
    /// Dispatch without the `Idempotency-Key` header.
    #[error("the Idempotency-Key header is required on dispatch")]
    MissingIdempotencyKey,
    /// The body is not JSON of the expected shape.
    #[error("{0}")]
    InvalidBody(String),
    /// The request was understood and refused by the simulator's rules.
    #[error(transparent)]
    Sim(#[from] SimError),
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::InvalidBody(e.body_text())
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::MissingIdempotencyKey => (StatusCode::BAD_REQUEST, "missing_idempotency_key"),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::Sim(e) => match e {
                SimError::InvalidField(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
                SimError::IdempotencyKeyReused(_) => {
                    (StatusCode::CONFLICT, "idempotency_key_reused")
                }
                SimError::UnknownDelivery(_) => (StatusCode::NOT_FOUND, "unknown_delivery"),
                SimError::NotCancellable { .. } => (StatusCode::CONFLICT, "not_cancellable"),
                SimError::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
