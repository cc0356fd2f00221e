//! The simulated day's live session: S001's manager (its hub account)
//! schedules a session with three everyday goods at 88折 and starts it;
//! viewers order at the live price for a while; the figures are printed as
//! they grow; the manager ends it. The same HTTP calls the console's 直播
//! tab makes.

use reqwest::Client;
use serde_json::{Value, json};

use crate::calls::send;
use crate::chain::MANAGER_PASSWORD;

/// A running session of the simulated day.
#[derive(Debug)]
pub(crate) struct LiveRun {
    pub session_id: String,
    token: String,
    featured: Vec<String>,
}

/// Signs S001's manager in to the hub, schedules and starts a session.
pub(crate) async fn start(
    http: &Client,
    hub: &str,
    store: &str,
    goods: &[String],
) -> anyhow::Result<LiveRun> {
    let v = send(
        http.post(format!("{hub}/api/v1/login"))
            .json(&json!({"name": format!("{store}-manager"), "password": MANAGER_PASSWORD})),
    )
    .await?;
    let token = v["token"].as_str().unwrap_or_default().to_owned();
    let featured: Vec<String> = goods.iter().take(3).cloned().collect();
    let now = chrono::Utc::now();
    let v = send(
        http.post(format!("{hub}/api/v1/live-sessions"))
            .bearer_auth(&token)
            .json(&json!({"store_id": store, "title": "店长晚间直播：今日好货 88 折",
                "starts_at": now, "ends_at": now + chrono::Duration::minutes(30), "grace_minutes": 5,
                "featured": featured.iter().map(|s| json!({"sku": s, "discount_pct": 88})).collect::<Vec<_>>()})),
    )
    .await?;
    let session_id = v["session_id"].as_str().unwrap_or_default().to_owned();
    send(
        http.post(format!("{hub}/api/v1/live-sessions/{session_id}/start"))
            .bearer_auth(&token),
    )
    .await?;
    Ok(LiveRun {
        session_id,
        token,
        featured,
    })
}

impl LiveRun {
    /// A viewer orders the `n`-th featured product for pickup; returns
    /// what they paid for it (fen).
    pub(crate) async fn order(
        &self,
        http: &Client,
        hub: &str,
        store: &str,
        phone: &str,
        n: usize,
        key: &str,
    ) -> anyhow::Result<i64> {
        let v = send(
            http.post(format!("{hub}/api/v1/customer/session"))
                .json(&json!({ "phone": phone })),
        )
        .await?;
        let token = v["token"].as_str().unwrap_or_default();
        let sku = &self.featured[n % self.featured.len()];
        let v = send(
            http.post(format!("{hub}/api/v1/orders"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(
                    &json!({"channel": "live", "live_session_id": self.session_id,
                    "customer": {"phone": phone}, "fulfilment": "pickup", "store_id": store,
                    "lines": [{"sku": sku, "qty": 1}]}),
                ),
        )
        .await?;
        Ok(v["lines"][0]["unit_price_fen"].as_i64().unwrap_or(0))
    }

    /// The session's figures as the console shows them.
    pub(crate) async fn figures(&self, http: &Client, hub: &str) -> anyhow::Result<Value> {
        send(
            http.get(format!("{hub}/api/v1/live-sessions/{}", self.session_id))
                .bearer_auth(&self.token),
        )
        .await
    }

    pub(crate) async fn end(&self, http: &Client, hub: &str) -> anyhow::Result<Value> {
        send(
            http.post(format!(
                "{hub}/api/v1/live-sessions/{}/end",
                self.session_id
            ))
            .bearer_auth(&self.token),
        )
        .await
    }
}
