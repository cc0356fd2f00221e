//! The README's quick start, run as a newcomer would: `linli-edge demo`
//! starts a store with the sample catalog, and a sale goes through.

#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use std::time::Duration;

use linli_tests::{spawn_listening, workspace_bin};
use serde_json::{Value, json};

#[test]
fn demo_store_sells_from_the_sample_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let bin = workspace_bin("linli-edge");
    assert!(bin.exists(), "build the workspace first: {}", bin.display());
    let node = spawn_listening(
        &bin,
        &[
            "demo",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let http = reqwest::blocking::Client::new();
    let health: Value = http
        .get(format!("{}/health", node.base_url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    let login: Value = http
        .post(format!("{}/api/v1/login", node.base_url))
        .json(&json!({"name":"cashier","pin":"1234"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = login["token"].as_str().unwrap();
    let resp = http
        .post(format!("{}/api/v1/sales", node.base_url))
        .bearer_auth(token)
        .header("Idempotency-Key", "demo-1")
        .json(&json!({"lines":[{"barcode":"6942215277577"}],"payments":[{"method":"alipay","amount_fen":1950}]}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let stock: Value = http
        .get(format!("{}/api/v1/stock/P00001", node.base_url))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stock["on_hand"], 39, "demo opening stock is 40 units");
}
