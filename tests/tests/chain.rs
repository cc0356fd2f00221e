//! The README's run command, tried as a newcomer would: `linli` starts the
//! whole chain (a hub, three stores, the courier and payment simulators, a
//! simulated day), prints its URLs, takes a sale at a store console's API
//! and an online order at the hub's, paid at the payment simulator's
//! cashier, and stops cleanly on SIGINT; a second run on
//! the same folder comes back with what the first one recorded. The
//! simulated day fills the regional dashboard: the demo's regional manager
//! sees a value on every card of the overview for the day (and the
//! figures the day's events decide are really there: counter, online and
//! live GMV, pickups, a delivery on time, the community, the group-buy, a
//! write-off, S001's freshness).

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::collections::HashMap;
use std::time::Duration;

use linli_tests::{Spawned, spawn_listening, wait_for, workspace_bin};
use serde_json::{Value, json};

const START: Duration = Duration::from_secs(120);

struct Run {
    proc: Spawned,
    hub: String,
    stores: HashMap<String, String>,
}

fn start(dir: &std::path::Path) -> Run {
    let proc = spawn_listening(
        &workspace_bin("linli"),
        &[
            "--data-dir",
            dir.to_str().unwrap(),
            "--port-base",
            "0",
            "--tick-ms",
            "200",
        ],
        START,
    )
    .unwrap();
    let mut parts = proc.ready_line.split_whitespace();
    let hub = parts.next().unwrap().to_owned();
    let stores = parts
        .map(|p| {
            let (id, url) = p.split_once('=').unwrap();
            (id.to_owned(), url.to_owned())
        })
        .collect();
    Run { proc, hub, stores }
}

/// SIGINT, as Ctrl-C sends it; the chain must exit on its own, with success.
fn interrupt(mut run: Run) {
    let pid = run.proc.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_for(
        Duration::from_secs(60),
        "the chain to stop on SIGINT",
        || run.proc.child.try_wait().unwrap(),
    )
    .unwrap();
    assert!(status.success(), "the chain exited with {status}");
}

/// The business day in Asia/Shanghai now.
fn shanghai_today() -> chrono::NaiveDate {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    chrono::Utc::now().with_timezone(&cst).date_naive()
}

/// The figures of the dashboard's overview cards, read from the page itself
/// (`const FIGURES` in cloud-hub/assets/dashboard.html), so that a card
/// added there is a card this test wants filled.
fn dashboard_cards() -> Vec<String> {
    let page = std::fs::read_to_string(format!(
        "{}/../cloud-hub/assets/dashboard.html",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let start = page.find("const FIGURES = [").unwrap();
    let end = start + page[start..].find("];").unwrap();
    let cards: Vec<String> = page[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[\""))
        .filter_map(|l| l.split('"').next())
        .map(str::to_owned)
        .collect();
    assert!(cards.len() > 10, "the overview's cards: {cards:?}");
    cards
}

/// What the regional dashboard still lacks for the day: empty cards, and
/// figures the day's events decide that are not there (yet).
fn unfilled(v: &Value, cards: &[String]) -> Vec<String> {
    let t = &v["totals"];
    let mut out: Vec<String> = cards
        .iter()
        .filter(|k| t[k.as_str()].is_null())
        .map(|k| format!("card {k} is empty"))
        .collect();
    let positive = |k: &str| t[k].as_f64().is_some_and(|x| x > 0.0);
    for k in [
        "counter_gmv_fen",
        "online_gmv_fen",
        "live_gmv_fen",
        "online_order_share",
        "online_gmv_share",
        "pickup_rate",
        "pickup_completion_rate",
        "community_mau_rate",
        "waste_rate",
    ] {
        if !positive(k) {
            out.push(format!("{k} = {}", t[k]));
        }
    }
    // the courier delivers well inside the two-hour window; the day's
    // group-buy is reached
    for k in ["on_time_delivery_rate", "groupbuy_success_rate"] {
        if t[k] != json!(1.0) {
            out.push(format!("{k} = {}", t[k]));
        }
    }
    if !t["live_sessions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|s| s["store_id"] == "S001"))
    {
        out.push(format!("no live session of S001: {}", t["live_sessions"]));
    }
    // S001 is the demo's store in 杭州西区; its figures are fresh
    if !v["freshness"]["S001"].is_string() {
        out.push(format!("S001 has no freshness: {}", v["freshness"]));
    }
    out
}

/// The regional manager's dashboard for the day (`/api/v1/kpis` for the
/// region, as the page asks it), once every card has a value.
fn dashboard_is_filled(http: &reqwest::blocking::Client, hub: &str, first_day: chrono::NaiveDate) {
    let (name, password, region) = linli_chain::chain::REGIONAL;
    let v: Value = http
        .post(format!("{hub}/api/v1/login"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = v["token"].as_str().unwrap().to_owned();
    let cards = dashboard_cards();
    let mut last = (Value::Null, Vec::new());
    let filled = wait_for(
        Duration::from_secs(120),
        "every card of the regional dashboard to have a value",
        || {
            std::thread::sleep(Duration::from_millis(250));
            let v: Value = http
                .get(format!("{hub}/api/v1/kpis"))
                .query(&[
                    ("region", region.to_owned()),
                    ("from", first_day.to_string()),
                    ("to", shanghai_today().to_string()),
                    ("by", "day".to_owned()),
                ])
                .bearer_auth(&token)
                .send()
                .ok()?
                .json()
                .ok()?;
            let missing = unfilled(&v, &cards);
            let done = missing.is_empty();
            last = (v.clone(), missing);
            done.then_some(v)
        },
    );
    let v = match filled {
        Ok(v) => v,
        Err(e) => panic!("{e}: still missing {:?} in {}", last.1, last.0),
    };
    // only the region's stores: S001 of the demo's three, and the
    // directory's other 杭州西区 stores (not run by the demo: no figures)
    let stores = v["stores"].as_array().unwrap();
    assert!(
        stores.iter().all(|s| s["region"] == region),
        "{}",
        v["stores"]
    );
    let ids: Vec<&str> = stores
        .iter()
        .map(|s| s["store_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"S001") && !ids.contains(&"S002") && !ids.contains(&"S003"),
        "{ids:?}"
    );
    let s1 = stores.iter().find(|s| s["store_id"] == "S001").unwrap();
    assert!(s1["freshness"]["newest_fact_at"].is_string(), "{s1}");
    assert_eq!(
        s1["gmv_fen"], v["totals"]["gmv_fen"],
        "S001 is the region's only open store"
    );
    assert!(
        v["series"].as_array().is_some_and(|a| !a.is_empty()),
        "the trend charts have points"
    );
}

fn login(http: &reqwest::blocking::Client, store: &str) -> String {
    let v: Value = http
        .post(format!("{store}/api/v1/login"))
        .json(&json!({"name": "cashier", "pin": "1234"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

#[test]
fn the_whole_chain_runs_from_one_command_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("chain");
    let first_day = shanghai_today();
    let run = start(&data);
    assert_eq!(run.stores.len(), 3, "three stores: {:?}", run.stores);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // the pages a newcomer opens
    for url in std::iter::once(&run.hub).chain(run.stores.values()) {
        let page = http.get(format!("{url}/")).send().unwrap();
        assert_eq!(page.status().as_u16(), 200, "{url}/");
        assert!(
            page.text().unwrap().contains("zh-CN"),
            "{url}/ is Chinese first"
        );
    }

    // a sale at S001's counter (the bun of the reference data, by barcode)
    let s001 = run.stores["S001"].clone();
    let token = login(&http, &s001);
    let sale = http
        .post(format!("{s001}/api/v1/sales"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "newcomer-sale")
        .json(&json!({"lines": [{"barcode": "6942215277577"}],
                      "payments": [{"method": "wechat_pay", "amount_fen": 1950}]}))
        .send()
        .unwrap();
    assert_eq!(sale.status().as_u16(), 201, "{}", sale.text().unwrap());
    let sale: Value = sale.json().unwrap();

    // an online order at the hub, for pickup at S002
    let me: Value = http
        .post(format!("{}/api/v1/customer/session", run.hub))
        .json(&json!({"phone": "13900001111"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let me = me["token"].as_str().unwrap().to_owned();
    let order = wait_for(Duration::from_secs(60), "the hub to take an order", || {
        let r = http
            .post(format!("{}/api/v1/orders", run.hub))
            .bearer_auth(&me)
            .header("Idempotency-Key", "newcomer-order")
            .json(
                &json!({"channel": "miniapp", "customer": {"phone": "13900001111"},
                          "fulfilment": "pickup", "store_id": "S002",
                          "lines": [{"sku": "P00001", "qty": 1}]}),
            )
            .send()
            .ok()?;
        (r.status().as_u16() == 201).then(|| r.json::<Value>().unwrap())
    })
    .unwrap();
    assert_eq!(order["store_id"], "S002", "{order}");
    // the demo takes online payment: the order waits for it, the customer
    // confirms at the payment simulator's cashier, the hub sees it paid
    assert_eq!(order["payment"]["state"], "awaiting_payment", "{order}");
    let id = order["order_id"].as_str().unwrap();
    let prepay: Value = http
        .post(format!("{}/api/v1/orders/{id}/pay", run.hub))
        .bearer_auth(&me)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let cashier = prepay["cashier_url"].as_str().unwrap();
    let confirmed = http.post(format!("{cashier}/confirm")).send().unwrap();
    assert!(confirmed.status().is_success(), "{}", confirmed.status());
    wait_for(Duration::from_secs(30), "the order to be paid", || {
        let v: Value = http
            .get(format!("{}/api/v1/orders/{id}", run.hub))
            .bearer_auth(&me)
            .send()
            .ok()?
            .json()
            .ok()?;
        (v["payment"]["state"] == "paid" && v["pickup_code"].is_string()).then_some(())
    })
    .unwrap();

    // the simulated day is running: sales reach the hub from every store
    let admin = admin_token(&http, &run.hub);
    wait_for(
        Duration::from_secs(60),
        "the day's sales at the hub",
        || {
            let day = sale["business_day"].as_str()?;
            let all = run.stores.keys().all(|id| {
                http.get(format!("{}/api/v1/stores/{id}/sales?day={day}", run.hub))
                    .bearer_auth(&admin)
                    .send()
                    .ok()
                    .and_then(|r| r.json::<Value>().ok())
                    .and_then(|v| v["sales"].as_array().map(|a| !a.is_empty()))
                    .unwrap_or(false)
            });
            all.then_some(())
        },
    )
    .unwrap();
    // the day fills the regional manager's dashboard
    dashboard_is_filled(&http, &run.hub, first_day);
    interrupt(run);

    // a second run reuses the folder: the sale is still there
    let run = start(&data);
    let s001 = run.stores["S001"].clone();
    let token = login(&http, &s001);
    let back: Value = http
        .get(format!(
            "{s001}/api/v1/sales/{}",
            sale["sale_id"].as_str().unwrap()
        ))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(back["ticket_no"], sale["ticket_no"], "{back}");
    interrupt(run);
}

fn admin_token(http: &reqwest::blocking::Client, hub: &str) -> String {
    let v: Value = http
        .post(format!("{hub}/api/v1/login"))
        .json(&json!({"name": "admin", "password": "linli-admin"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}
