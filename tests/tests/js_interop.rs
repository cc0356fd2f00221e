//! Our documents are plain automerge: the ledger and stock documents that a
//! store syncs to the hub, exported by the hub as automerge `save()` bytes,
//! load in automerge's JavaScript implementation (npm `@automerge/automerge`,
//! pinned in `tests/js/package.json`) and read the same sales and stock
//! values as the store's receipts, the hub's API and the store's API.
//!
//! Needs Node and `npm ci --prefix tests/js` (CI runs it): without them
//! the test fails and says so, it never passes silently.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use linli_tests::{Cluster, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);
const STORE: &str = "S001";
const INSTALL: &str = "run `npm ci --prefix tests/js` (needs Node.js and npm)";

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Node and the pinned automerge package, or a failure that says how to
/// get them.
fn require_node() {
    let out = Command::new("node").arg("--version").output();
    let version = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => panic!("`node --version` failed ({}): {INSTALL}", o.status),
        Err(e) => panic!("cannot run `node` ({e}): install Node.js, then {INSTALL}"),
    };
    let pkg: Value =
        serde_json::from_slice(&std::fs::read(js_dir().join("package.json")).unwrap()).unwrap();
    let pinned = pkg["dependencies"]["@automerge/automerge"]
        .as_str()
        .unwrap();
    let installed = js_dir().join("node_modules/@automerge/automerge/package.json");
    let installed: Value = match std::fs::read(&installed) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(e) => panic!("{} is missing ({e}): {INSTALL}", installed.display()),
    };
    assert_eq!(
        installed["version"].as_str(),
        Some(pinned),
        "tests/js/node_modules holds another @automerge/automerge than the pinned one: {INSTALL}"
    );
    eprintln!("node {version}, @automerge/automerge {pinned}");
}

/// Fetches a document from the hub's export endpoint into a file.
fn export_doc(c: &Cluster, doc_id: &str) -> PathBuf {
    let hub = c.hub().unwrap();
    let resp = c
        .http
        .get(format!("{}/api/v1/docs/{doc_id}", hub.http))
        .bearer_auth(&hub.token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "export of {doc_id}");
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/octet-stream"),
        "export of {doc_id}"
    );
    let bytes = resp.bytes().unwrap();
    assert!(!bytes.is_empty(), "export of {doc_id} is empty");
    let file = c
        .dir
        .path()
        .join(format!("{}.automerge", doc_id.replace('/', "_")));
    std::fs::write(&file, &bytes).unwrap();
    eprintln!("{doc_id}: {} bytes", bytes.len());
    file
}

/// The parts of a day's document `base` the hub holds, in order (the first
/// part it does not hold ends them).
fn hub_parts(c: &Cluster, base: &str) -> Vec<String> {
    let hub = c.hub().unwrap();
    let mut out = Vec::new();
    for part in 0..linli_shared::docs::MAX_PARTS {
        let id = if part == 0 {
            base.to_owned()
        } else {
            format!("{base}/p{part}")
        };
        let status = c
            .http
            .get(format!("{}/api/v1/docs/{id}", hub.http))
            .bearer_auth(&hub.token)
            .send()
            .unwrap()
            .status();
        if status.as_u16() == 404 {
            break;
        }
        out.push(id);
    }
    out
}

/// What automerge-js reads in a saved document.
fn read_with_js(file: &Path) -> Value {
    let script = js_dir().join("read_doc.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(file)
        .current_dir(js_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node {} {} failed ({}):\n{}",
        script.display(),
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "read_doc.mjs printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Five sales of different shapes: units, weighed goods in grams, a line
/// by barcode, several lines.
fn sales() -> Vec<Value> {
    vec![
        json!([{"sku": "P00001", "qty": 2}]),
        json!([{"sku": "P00003", "qty": 750}]),
        json!([{"barcode": "6942215277577"}, {"sku": "P00007", "qty": 3}]),
        json!([{"sku": "P00002", "qty": 1234}, {"sku": "P00001", "qty": 1}]),
        json!([{"sku": "P00009", "qty": 1}, {"sku": "P00010", "qty": 2}, {"sku": "P00003", "qty": 250}]),
    ]
}

/// The fields both sides hold for a line: sku, qty, total.
fn line_facts(lines: &Value) -> Vec<Value> {
    lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| json!({"sku": l["sku"], "qty": l["qty"], "total_fen": l["total_fen"]}))
        .collect()
}

#[test]
fn store_document_saved_by_hub_loads_in_automerge_js() {
    require_node();
    let started = Instant::now();
    let mut c = Cluster::new(41).unwrap();
    c.add_store(STORE).unwrap();

    let mut receipts = Vec::new();
    for (i, lines) in sales().into_iter().enumerate() {
        receipts.push(c.sell(STORE, &format!("js-{i}"), lines).unwrap());
    }
    let day = receipts[0]["business_day"].as_str().unwrap().to_owned();
    assert!(receipts.iter().all(|r| r["business_day"] == day.as_str()));
    let ids: Vec<String> = receipts
        .iter()
        .map(|r| r["sale_id"].as_str().unwrap().to_owned())
        .collect();
    c.wait_hub_has(STORE, &day, &ids, CONVERGE).unwrap();

    // Every SKU sold, and the store's own word on its level.
    let skus: BTreeSet<String> = receipts
        .iter()
        .flat_map(|r| r["lines"].as_array().unwrap().clone())
        .map(|l| l["sku"].as_str().unwrap().to_owned())
        .collect();
    let mut store_levels = BTreeMap::new();
    for sku in &skus {
        let s = c.store_get(STORE, &format!("/api/v1/stock/{sku}")).unwrap();
        let level = json!({"on_hand": s["on_hand"], "reserved": s["reserved"]});
        assert!(level["on_hand"].is_i64(), "store stock of {sku}: {s}");
        // The stock document follows the ledger; wait until the hub agrees.
        wait_for(CONVERGE, "the hub's stock to match the store's", || {
            let h = c
                .hub_get(&format!("/api/v1/stores/{STORE}/stock/{sku}"))
                .ok()?;
            (h["on_hand"] == level["on_hand"] && h["reserved"] == level["reserved"]).then_some(())
        })
        .unwrap();
        store_levels.insert(sku.clone(), level);
    }
    // Opening stock is 40 units / 20,000 g: the sales show in the levels.
    assert_eq!(store_levels["P00001"]["on_hand"], 40 - 2 - 1 - 1);
    assert_eq!(store_levels["P00003"]["on_hand"], 20_000 - 750 - 250);

    // The ledger, as automerge-js reads it, every part (the opening goods-in
    // of 1,500 SKUs fills part 0 alone: a part holds ~400 records).
    let ledger_id = format!("store/{STORE}/ledger/{day}");
    let mut js_sales = serde_json::Map::new();
    for id in hub_parts(&c, &ledger_id) {
        let ledger = read_with_js(&export_doc(&c, &id));
        assert_eq!(ledger["kind"], "ledger");
        assert_eq!(ledger["doc_id"], id.as_str());
        assert_eq!(ledger["schema"], 1);
        js_sales.extend(ledger["sales"].as_object().unwrap().clone());
    }
    let js_sales = &js_sales;
    let js_ids: BTreeSet<&str> = js_sales.keys().map(String::as_str).collect();
    let want_ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(js_ids, want_ids, "sale ids read by automerge-js");
    for r in &receipts {
        let id = r["sale_id"].as_str().unwrap();
        let s = &js_sales[id];
        assert_eq!(s["ticket_no"], r["ticket_no"], "ticket of {id}");
        assert_eq!(s["total_fen"], r["total_fen"], "total of {id}");
        assert_eq!(s["cashier"], r["cashier"], "cashier of {id}");
        assert_eq!(s["member"], r["member"], "member flag of {id}");
        assert_eq!(
            line_facts(&s["lines"]),
            line_facts(&r["lines"]),
            "lines of {id}"
        );
        assert_eq!(s["payments"], r["payments"], "payments of {id}");
    }
    // The weighed line reads back in grams, as sold.
    let weighed = &js_sales[ids[1].as_str()]["lines"][0];
    assert_eq!(weighed["sku"], "P00003");
    assert_eq!(weighed["qty"], 750);

    // The hub's own sales view says the same as automerge-js.
    let hub_sales = c
        .hub_get(&format!("/api/v1/stores/{STORE}/sales?day={day}"))
        .unwrap();
    for h in hub_sales["sales"].as_array().unwrap() {
        let id = h["sale_id"].as_str().unwrap();
        assert_eq!(js_sales[id]["ticket_no"], h["ticket_no"], "hub ticket {id}");
        assert_eq!(js_sales[id]["total_fen"], h["total_fen"], "hub total {id}");
    }

    // The stock of the day, as automerge-js reads it: part 0 opened the day
    // with every level, each later part holds what moved in it, and a later
    // part's level wins.
    let stock_id = format!("store/{STORE}/stock/{day}");
    let mut levels = serde_json::Map::new();
    let mut parts = 0;
    for id in hub_parts(&c, &stock_id) {
        let stock = read_with_js(&export_doc(&c, &id));
        assert_eq!(stock["kind"], "stock");
        assert_eq!(stock["doc_id"], id.as_str());
        assert_eq!(stock["schema"], 1);
        if let Some(l) = stock["levels"].as_object() {
            levels.extend(l.clone());
        }
        parts += 1;
    }
    assert!(parts >= 2, "the opening part and a part of what moved");
    let stock = json!({ "levels": levels });
    for (sku, store_level) in &store_levels {
        let js = &stock["levels"][sku.as_str()];
        let hub = c
            .hub_get(&format!("/api/v1/stores/{STORE}/stock/{sku}"))
            .unwrap();
        let hub_level = json!({"on_hand": hub["on_hand"], "reserved": hub["reserved"]});
        assert_eq!(js, &hub_level, "{sku}: automerge-js vs the hub");
        assert_eq!(js, store_level, "{sku}: automerge-js vs the store");
    }
    eprintln!(
        "{} sales and {} stock levels read by automerge-js ({} levels in {parts} parts) in {:?}",
        js_sales.len(),
        store_levels.len(),
        stock["levels"].as_object().map_or(0, |m| m.len()),
        started.elapsed()
    );
}
