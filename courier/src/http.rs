//! [`HttpCourier`]: a [`Courier`] that speaks Linli's courier wire protocol
//! over HTTP, and the protocol itself.
//!
//! # Wire protocol
//!
//! JSON over HTTP. Every request carries `Authorization: Bearer <api key>`; a
//! missing or wrong key gets `401`. Every error answer has the body
//! `{"error":{"code":"<stable code>","message":"<detail>"}}`.
//!
//! - `POST /v1/deliveries`, body a [`DeliveryRequest`], header
//!   `Idempotency-Key: <order_id>` (it must equal the body's `order_id`):
//!   - `201 {"courier_ref":"…","state":"requested"}` for a new delivery;
//!   - `200` with the same `courier_ref` (and its current `state`) when the key
//!     was seen before with the same body, so a store that lost an answer can
//!     simply send the request again;
//!   - `409` code `idempotency_key_reused` when the key was seen with a
//!     different body;
//!   - `422` code `invalid_field` when `window_end <= window_start`, a
//!     latitude or longitude is out of range, `items` is 0, an id is empty, or
//!     the key does not match `order_id`; `400` code `invalid_body` when the
//!     body is not a `DeliveryRequest` at all.
//! - `GET /v1/deliveries/{ref}` → `200` [`CourierStatus`]; `404` code
//!   `unknown_delivery`.
//! - `POST /v1/deliveries/{ref}/cancel` → `200` [`CourierStatus`] in state
//!   `cancelled`. Only a `requested` delivery can be cancelled; cancelling a
//!   cancelled one again answers `200` with the same status (so a retried
//!   cancel is harmless); any other state gets `409` code `not_cancellable`.
//!   `404` code `unknown_delivery`.
//!
//! Simulator control, not part of a real courier (see [`crate::sim`]):
//!
//! - `POST /v1/deliveries/{ref}/advance` moves `requested` → `picked_up` →
//!   `delivered`, stamping `picked_up_at` / `delivered_at`; `409` code
//!   `invalid_transition` from `delivered`, `failed` or `cancelled`.
//! - `POST /v1/deliveries/{ref}/fail`, body `{"reason":"…"}`, moves a
//!   `requested` or `picked_up` delivery to `failed` with that reason; `409`
//!   code `invalid_transition` otherwise.
//!
//! # Errors
//!
//! [`HttpCourier`] maps answers to [`CourierError`]: no connection, a timeout,
//! `5xx`, `408` and `429` are [`CourierError::Unavailable`] (retry later);
//! `404 unknown_delivery` is [`CourierError::UnknownDelivery`]; any other
//! `4xx` is [`CourierError::Rejected`] with the answer's code (or `http_<status>`
//! when the body has none); a `2xx` body that does not parse is
//! [`CourierError::Protocol`]. It never retries by itself.
//!
//! # TLS
//!
//! The workspace builds reqwest without TLS, which is all the local simulator
//! needs. A real courier is reached over HTTPS: build this crate with its
//! `rustls` feature (reqwest's `rustls-tls`). Without it [`HttpCourier::new`]
//! refuses an `https://` base URL rather than sending plain HTTP to port 443
//! and failing as "unavailable" forever.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::wire::{self, DispatchResponse, ErrorBody};
use crate::{Courier, CourierError, CourierFuture, CourierStatus, DeliveryRequest, Dispatched};

/// How long to wait for a TCP connection before calling the courier
/// unavailable.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole request may take, connection included.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A courier reached over HTTP with the protocol in the [module docs](self).
#[derive(Clone)]
pub struct HttpCourier {
    name: String,
    base: Url,
    /// `Bearer <key>`, marked sensitive so reqwest keeps it out of logs.
    auth: HeaderValue,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpCourier {
    // The API key stays out of logs and panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCourier")
            .field("name", &self.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl HttpCourier {
    /// A courier named `name` (copied into [`Dispatched::courier`]) at
    /// `base_url` (e.g. `http://127.0.0.1:7300` or
    /// `https://api.example/partner`), authenticating with `api_key`.
    ///
    /// Uses a 3 s connect timeout and a 10 s request timeout; see
    /// [`HttpCourier::with_timeouts`]. Fails with [`CourierError::Protocol`]
    /// on a base URL that is not `http`/`https`, an `https` one without the
    /// `rustls` feature, or a key that cannot go in a header.
    pub fn new(
        name: impl Into<String>,
        base_url: impl Into<String>,
        api_key: impl Into<String>,
    ) -> Result<HttpCourier, CourierError> {
        let base_url = base_url.into();
        let base = Url::parse(&base_url)
            .map_err(|e| CourierError::Protocol(format!("invalid base url {base_url:?}: {e}")))?;
        match base.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => {
                return Err(CourierError::Protocol(format!(
                    "base url {base_url:?} is https but linli-courier was built without \
                     its `rustls` feature (plain HTTP only)"
                )));
            }
            other => {
                return Err(CourierError::Protocol(format!(
                    "base url {base_url:?} has scheme {other:?}, expected http or https"
                )));
            }
        }
        if base.cannot_be_a_base() {
            return Err(CourierError::Protocol(format!(
                "base url {base_url:?} cannot have paths"
            )));
        }
        let mut auth = HeaderValue::try_from(format!("Bearer {}", api_key.into()))
            .map_err(|_| CourierError::Protocol("api key is not a valid header value".into()))?;
        auth.set_sensitive(true);
        Ok(HttpCourier {
            name: name.into(),
            base,
            auth,
            client: build_client(DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)?,
        })
    }

    /// The same courier with other timeouts: `connect` for the TCP (and TLS)
    /// connection, `request` for the whole exchange. Exceeding either is
    /// [`CourierError::Unavailable`].
    pub fn with_timeouts(
        mut self,
        connect: Duration,
        request: Duration,
    ) -> Result<HttpCourier, CourierError> {
        self.client = build_client(connect, request)?;
        Ok(self)
    }

    /// `base/v1/deliveries/<tail…>`, each segment percent-encoded so a courier
    /// reference can never escape its path segment.
    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` refused cannot-be-a-base URLs, so this always succeeds
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(wire::DELIVERIES)
                .extend(tail);
        }
        url
    }

    /// Sends a request and sorts the answer into success or [`CourierError`].
    /// `ok` lists the success statuses this endpoint may answer.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
        what: &str,
    ) -> Result<T, CourierError> {
        let response = request
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| send_error(&self.name, what, e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            CourierError::Unavailable(format!("{}: {what}: reading the answer: {e}", self.name))
        })?;
        if ok.contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                CourierError::Protocol(format!(
                    "{}: {what}: unparseable {status} answer: {e}",
                    self.name
                ))
            });
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (error.code, error.message),
            Err(_) => (
                format!("http_{}", status.as_u16()),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ),
        };
        tracing::debug!(courier = %self.name, what, %status, code, "courier refused");
        Err(match status {
            StatusCode::NOT_FOUND if code == "unknown_delivery" => {
                CourierError::UnknownDelivery(message)
            }
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                CourierError::Unavailable(format!("{}: {what}: {status}: {message}", self.name))
            }
            s if s.is_server_error() => {
                CourierError::Unavailable(format!("{}: {what}: {status}: {message}", self.name))
            }
            s if s.is_client_error() => CourierError::Rejected { code, message },
            _ => {
                CourierError::Protocol(format!("{}: {what}: unexpected status {status}", self.name))
            }
        })
    }
}

fn build_client(connect: Duration, request: Duration) -> Result<reqwest::Client, CourierError> {
    reqwest::Client::builder()
        .connect_timeout(connect)
        .timeout(request)
        .build()
        .map_err(|e| CourierError::Protocol(format!("cannot build the HTTP client: {e}")))
}

fn send_error(name: &str, what: &str, e: reqwest::Error) -> CourierError {
    if e.is_builder() {
        CourierError::Protocol(format!("{name}: {what}: {e}"))
    } else {
        // connect refused, DNS, timeout, connection reset: all "try later"
        CourierError::Unavailable(format!("{name}: {what}: {e}"))
    }
}

impl Courier for HttpCourier {
    fn name(&self) -> &str {
        &self.name
    }

    fn dispatch<'a>(&'a self, req: &'a DeliveryRequest) -> CourierFuture<'a, Dispatched> {
        Box::pin(async move {
            let request = self
                .client
                .request(Method::POST, self.url(&[]))
                .header(wire::IDEMPOTENCY_KEY, req.order_id.as_str())
                .json(req);
            let answer: DispatchResponse = self
                .call(request, &[StatusCode::CREATED, StatusCode::OK], "dispatch")
                .await?;
            tracing::debug!(courier = %self.name, order_id = %req.order_id,
                courier_ref = %answer.courier_ref, state = ?answer.state, "dispatched");
            Ok(Dispatched {
                courier: self.name.clone(),
                courier_ref: answer.courier_ref,
            })
        })
    }

    fn status<'a>(&'a self, courier_ref: &'a str) -> CourierFuture<'a, CourierStatus> {
        Box::pin(async move {
            let request = self.client.request(Method::GET, self.url(&[courier_ref]));
            self.call(request, &[StatusCode::OK], "status").await
        })
    }

    fn cancel<'a>(&'a self, courier_ref: &'a str) -> CourierFuture<'a, CourierStatus> {
        Box::pin(async move {
            let request = self
                .client
                .request(Method::POST, self.url(&[courier_ref, "cancel"]));
            self.call(request, &[StatusCode::OK], "cancel").await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_encode_the_ref() {
        let c = HttpCourier::new("x", "http://127.0.0.1:1/partner/", "k").unwrap();
        assert_eq!(
            c.url(&["a/b?c", "cancel"]).as_str(),
            "http://127.0.0.1:1/partner/v1/deliveries/a%2Fb%3Fc/cancel"
        );
        let c = HttpCourier::new("x", "http://127.0.0.1:1", "k").unwrap();
        assert_eq!(c.url(&[]).as_str(), "http://127.0.0.1:1/v1/deliveries");
    }

    #[test]
    fn refuses_bad_base_urls() {
        for url in ["not a url", "ftp://x/", "mailto:a@b"] {
            assert!(
                matches!(
                    HttpCourier::new("x", url, "k"),
                    Err(CourierError::Protocol(_))
                ),
                "{url}"
            );
        }
        let https = HttpCourier::new("x", "https://courier.example/", "k");
        assert_eq!(https.is_ok(), cfg!(feature = "rustls"));
    }

    #[test]
    fn debug_hides_the_key() {
        let c = HttpCourier::new("x", "http://127.0.0.1:1", "secret-key").unwrap();
        assert!(!format!("{c:?}").contains("secret-key"));
    }
}
