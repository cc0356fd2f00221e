//! The HTTP calls every part of the simulated day makes: a request whose
//! answer must be a success, the demo admin's login, a customer's session.

use anyhow::Context;
use reqwest::Client;
use serde_json::{Value, json};

use crate::chain::ADMIN;

/// Sends `req`; its JSON answer, or an error with the status and body.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let r = req.send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

/// The demo admin's hub token.
pub(crate) async fn admin_token(http: &Client, hub: &str) -> anyhow::Result<String> {
    let v = send(
        http.post(format!("{hub}/api/v1/login"))
            .json(&json!({"name": ADMIN.0, "password": ADMIN.1})),
    )
    .await
    .context("the hub refused the demo admin")?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no token for the demo admin: {v}"))
}

/// A customer's session token at the hub, by phone.
pub(crate) async fn customer(http: &Client, hub: &str, phone: &str) -> anyhow::Result<String> {
    let v = send(
        http.post(format!("{hub}/api/v1/customer/session"))
            .json(&json!({ "phone": phone })),
    )
    .await?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no customer session: {v}"))
}
