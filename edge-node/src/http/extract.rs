//! Request extractors that speak the API's error language: a JSON body, the
//! logged-in staff member, and the `Idempotency-Key` header.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::app::Actor;
use crate::app::idempotency::IdempotencyKey;

/// A JSON body whose rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(v))
    }
}

/// The client's address (IP only), if the server was started with connect
/// info; login attempts are limited per address.
#[derive(Debug)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// The bearer token of the request, if any.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The staff member behind the bearer token.
#[derive(Debug)]
pub struct Auth(pub Actor);

/// The bearer token itself, checked (for logging out).
#[derive(Debug)]
pub struct AuthToken(pub String);

impl FromRequestParts<AppState> for AuthToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::from(crate::app::AppError::Unauthenticated))?
            .to_owned();
        state.app.authenticate(&token).await?;
        Ok(AuthToken(token))
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)
            .ok_or_else(|| ApiError::from(crate::app::AppError::Unauthenticated))?;
        let actor = state.app.authenticate(token).await?;
        Ok(Auth(actor))
    }
}

/// The `Idempotency-Key` header, if present and well-formed.
#[derive(Debug)]
pub struct IdemKey(pub Option<IdempotencyKey>);

impl IdemKey {
    /// The key, or the error that says it is required.
    pub fn required(self) -> Result<IdempotencyKey, ApiError> {
        self.0
            .ok_or_else(|| ApiError::from(crate::app::AppError::IdempotencyKeyRequired))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdemKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("idempotency-key") {
            None => Ok(IdemKey(None)),
            Some(v) => {
                let s = v.to_str().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "idempotency_key_required",
                        "Idempotency-Key must be visible ASCII",
                    )
                })?;
                Ok(IdemKey(Some(IdempotencyKey::parse(s)?)))
            }
        }
    }
}
