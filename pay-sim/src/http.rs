//! [`HttpPay`]: the hub's client of the payment API described in the
//! [crate docs](crate).
//!
//! It never retries by itself: the hub's refund queue decides, from
//! [`PayError`], whether to try again later with the same refund id.
//! No connection, a timeout, `5xx` and `429 FREQUENCY_LIMITED` are
//! retryable; any other `4xx` is a refusal that the same request would get
//! again.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::wire::{ErrorBody, PrepayRequest, PrepayResponse, Refund, RefundRequest, Transaction};

/// Why a payment call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayError {
    /// Unreachable, timed out, or a server error: retry later, the same
    /// request (it is idempotent on its merchant id).
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
    /// Too many refunds of one order too fast: retry after the spacing.
    #[error("payment provider: too frequent ({0})")]
    FrequencyLimited(String),
    /// Refused with a code; the same request gets the same answer.
    #[error("payment provider refused ({code}): {message}")]
    Rejected { code: String, message: String },
    /// The provider does not know this order.
    #[error("payment provider does not know order {0}")]
    NotFound(String),
    /// An answer this client cannot read, or a bad configuration.
    #[error("payment protocol error: {0}")]
    Protocol(String),
}

/// A payment provider reached over HTTP.
#[derive(Clone)]
pub struct HttpPay {
    base: Url,
    auth: HeaderValue,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpPay {
    // the key stays out of logs
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPay")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl HttpPay {
    /// A client of the provider at `base_url` (plain `http://`, the local
    /// simulator) with the merchant key.
    pub fn new(base_url: &str, key: &str) -> Result<HttpPay, PayError> {
        let base = Url::parse(base_url)
            .map_err(|e| PayError::Protocol(format!("invalid base url {base_url:?}: {e}")))?;
        if base.scheme() != "http" || base.cannot_be_a_base() {
            return Err(PayError::Protocol(format!(
                "base url {base_url:?} must be http://host:port (no TLS in this build)"
            )));
        }
        let mut auth = HeaderValue::try_from(format!("Bearer {key}"))
            .map_err(|_| PayError::Protocol("key is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PayError::Protocol(e.to_string()))?;
        Ok(HttpPay { base, auth, client })
    }

    /// The provider's base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// Where the customer confirms a prepay (the simulator's cashier page,
    /// standing in for WeChat's cashier on the phone).
    pub fn cashier_url(&self, prepay_id: &str) -> String {
        self.url(&["pay", prepay_id]).to_string()
    }

    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut s) = url.path_segments_mut() {
            s.pop_if_empty().extend(tail);
        }
        url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Option<T>, PayError> {
        let resp = req
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
            .map_err(|e| PayError::Unavailable(format!("{what}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| PayError::Unavailable(format!("{what}: reading the answer: {e}")))?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| PayError::Protocol(format!("{what}: unreadable answer: {e}")));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.code, e.message),
            Err(_) => (
                format!("HTTP_{}", status.as_u16()),
                String::from_utf8_lossy(&body).chars().take(200).collect(),
            ),
        };
        Err(match status {
            _ if code == "FREQUENCY_LIMITED" => PayError::FrequencyLimited(message),
            StatusCode::NOT_FOUND => PayError::NotFound(message),
            s if s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT =>
            {
                PayError::Unavailable(format!("{what}: {code}: {message}"))
            }
            _ => PayError::Rejected { code, message },
        })
    }

    fn required<T>(v: Option<T>, what: &str) -> Result<T, PayError> {
        v.ok_or_else(|| PayError::Protocol(format!("{what}: empty answer")))
    }

    /// Creates (or finds again) the prepay of an order.
    pub async fn prepay(&self, req: &PrepayRequest) -> Result<PrepayResponse, PayError> {
        let r = self
            .client
            .post(self.url(&["v3", "pay", "transactions", "jsapi"]))
            .json(req);
        Self::required(self.call(r, "prepay").await?, "prepay")
    }

    /// The transaction of an order.
    pub async fn query(&self, out_trade_no: &str) -> Result<Transaction, PayError> {
        let r =
            self.client
                .get(self.url(&["v3", "pay", "transactions", "out-trade-no", out_trade_no]));
        Self::required(self.call(r, "query").await?, "query")
    }

    /// Closes an unpaid order so it can no longer be paid.
    pub async fn close(&self, out_trade_no: &str) -> Result<(), PayError> {
        let r = self
            .client
            .post(self.url(&[
                "v3",
                "pay",
                "transactions",
                "out-trade-no",
                out_trade_no,
                "close",
            ]))
            .json(&serde_json::json!({}));
        self.call::<serde_json::Value>(r, "close").await.map(|_| ())
    }

    /// Asks for a refund; the same `out_refund_no` again returns the first
    /// refund.
    pub async fn refund(&self, req: &RefundRequest) -> Result<Refund, PayError> {
        let r = self
            .client
            .post(self.url(&["v3", "refund", "domestic", "refunds"]))
            .json(req);
        Self::required(self.call(r, "refund").await?, "refund")
    }
}
