//! The two web pages in a real browser, against real processes: the
//! customer page the hub serves at `/` and the cashier console a store node
//! serves at `/`, driven in headless Debian Chromium by
//! `tests/js/browser_e2e.mjs` (playwright-core, pinned in
//! `tests/js/package.json`; it never downloads a browser).
//!
//! - `pickup`: a customer orders two products for pickup at S001; the
//!   console accepts, picks and readies it (the customer sees `ready`),
//!   hands it over by the scanned QR payload (the customer sees
//!   `handed_over`), and refuses a second hand-over, saying so; a community
//!   order is handed over by its 6-digit code; goods are received and
//!   written off on the Stock screen.
//! - `offline`: with the store's link cut, the console shows the offline
//!   banner, still sells and still hands over an order placed before the cut
//!   and one placed during the cut, which never reached the store, by its
//!   signed QR payload alone; after the heal the banner goes and both
//!   customers see `handed_over`.
//! - `languages` then `cashier`: both pages open in Chinese (`lang`
//!   zh-CN, Chinese texts and error sentences with the code small), switch
//!   to English and back, remembered over a reload; then a till at 1024x768
//!   worked from the keyboard alone: a bad scan's error goes with the next
//!   good scan, a kg product's own barcode asks for its weight, F4 voids the
//!   newest line, products are found by pinyin initials (`xg`), SKU and
//!   name, F6/F2/Enter pays by WeChat and the method resets to cash, F2 and
//!   Enter in the cash field pay cash with the change shown, the receipt
//!   prints alone at 80 mm, and with 30 lines Total and Pay stay on screen.
//!   Every console screen, the weight prompt and the shop at phone size are
//!   checked with axe-core (pinned in `tests/js/package.json`): no serious
//!   or critical violation.
//! - `manager` (1024x768): goods received by SKU in the product's unit (5 of
//!   a kg product is 5 kg, and the confirmation says so), a write-off that
//!   would take stock below zero warned about and then confirmed, a cycle
//!   count, negative and low stock highlighted, two sales, a refund from the
//!   day's sales, and the end-of-day report with the cash expected.
//! - `phone` (1024x768): a new online order beeps and raises a badge on the
//!   Sell and Pickup screens; once ready, the cashier finds it by the
//!   customer's last four phone digits and hands it over, exactly once.
//! - `shop` (390x844): the phone's location chooses S001; categories;
//!   prices and what S001 has; the basket dock keeps the amount to pay on
//!   screen; too many potatoes are refused naming them and what is left,
//!   with S002 (which has them) offered with its distance; the session
//!   survives closing the page and "my orders" shows both orders with code
//!   and QR; a delivery takes a compound, building and room and a slot. No
//!   control lies off-screen.
//! - `community` (390x844): a customer located at S001 joins its community
//!   and votes in the manager's poll, once; a second joins by the store's
//!   join link; the cashier adds a third by phone at the counter (a bad
//!   number refused). Both customers join S001's group-buy, the second
//!   one reaching it, and the cashier commits a third at the counter; the
//!   manager books the goods in ("到货") and sees the pickup orders made.
//!   The hub then counts the vote, the group-buy's participants, and the
//!   three members once the counter join has synced.
//! - `delivery`: a delivery to where the phone is (Shanghai), which nobody
//!   reaches, is refused with the hub's reason shown; one to a compound near S001 is accepted, picked, dispatched with the store's
//!   own rider and delivered, and the customer sees each step; an order the
//!   customer cancels leaves the store's pick list.
//!
//! - `pay`: the hub takes online payment through `linli-pay-sim`: the
//!   shop's order waits for payment with no pickup code, the customer pays
//!   at the simulator's cashier page and comes back to the paid order and
//!   its code; only then does the order reach the console. Then the
//!   customer commits to a group-buy twice, paying each at the cashier,
//!   sees both paid, cancels one and sees it cancelled by the customer
//!   with its refund through (the hub and the simulator are checked
//!   after).
//! - `live` (1024x768 and a phone): the store manager signs in to the hub
//!   from the console's 直播 tab (the node knows the hub's HTTP address,
//!   the hub allows the console's origin), schedules a session with a live
//!   price and an 88折 and starts it; the customer sees it in the shop and
//!   orders the bun at ¥9.90; the console's figures count the order within
//!   seconds; the manager pins the bun and ends the session.
//! - `promotions` (1024x768 and a phone): the store manager signs in to the
//!   hub from the console's 社群 tab, sees the join code, link and QR,
//!   creates a poll, and sees the coupon campaign's allotment on the 促销
//!   tab, and opens a group-buy for the store; a customer joins by the
//!   link and sees the poll, claims an online
//!   coupon and uses it at checkout (¥8.00 off), claims a counter coupon;
//!   the console sells with its code (the receipt shows the coupon) and
//!   refuses it the second time, in Chinese; a marked-down product shows
//!   its struck-through and marked price on the Sell screen (the node's
//!   quote), and an exact WeChat payment of that total goes through.
//! - `dashboard` (1280x900): the hub's /dashboard; a regional manager (a
//!   wrong password refused in Chinese) sees a seeded November equal to
//!   figures worked out by hand, only their region's stores (another
//!   region's store neither offered nor answered), exports the store
//!   table and the hub's CSV, opens a store, the live and exception views.
//!
//! Needs Node, `npm ci --prefix tests/js` and Chromium at `/usr/bin/chromium`
//! (or `$CHROMIUM`): without them the test fails and says how to install
//! them, it never passes silently. On failure the script's screenshots, the
//! hub's and the store's logs are kept in the cluster's temp dir.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const STORE: &str = "S001";
const CONNECT: Duration = Duration::from_secs(30);
/// The script has its own deadlines (150 s overall); this one only catches a
/// hung Node.
const SCRIPT: Duration = Duration::from_secs(180);
const INSTALL_JS: &str = "run `npm ci --prefix tests/js` (needs Node.js and npm)";
const INSTALL_CHROMIUM: &str = "install Chromium: `apt-get install -y --no-install-recommends chromium` (Debian), or set CHROMIUM to a Chromium binary";

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

fn data_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data")
        .join(name)
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Node, the pinned playwright-core and a Chromium binary, or a failure that
/// says how to get them.
fn require_browser() {
    let version = match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Ok(o) => panic!("`node --version` failed ({}): {INSTALL_JS}", o.status),
        Err(e) => panic!("cannot run `node` ({e}): install Node.js, then {INSTALL_JS}"),
    };
    let pkg: Value =
        serde_json::from_slice(&std::fs::read(js_dir().join("package.json")).unwrap()).unwrap();
    let pinned = pkg["dependencies"]["playwright-core"].as_str().unwrap();
    let installed = js_dir().join("node_modules/playwright-core/package.json");
    let installed: Value = match std::fs::read(&installed) {
        Ok(b) => serde_json::from_slice(&b).unwrap(),
        Err(e) => panic!("{} is missing ({e}): {INSTALL_JS}", installed.display()),
    };
    assert_eq!(
        installed["version"].as_str(),
        Some(pinned),
        "tests/js/node_modules holds another playwright-core than the pinned one: {INSTALL_JS}"
    );
    let chromium = chromium();
    assert!(
        chromium.is_file(),
        "no Chromium at {}: {INSTALL_CHROMIUM}",
        chromium.display()
    );
    eprintln!(
        "node {version}, playwright-core {pinned}, {}",
        chromium.display()
    );
}

/// Posts a CSV from `data/` to a hub import endpoint as admin.
fn import_csv(c: &Cluster, path: &str, file: &str) {
    let hub = c.hub().unwrap();
    let resp = c
        .http
        .post(format!("{}{path}", hub.http))
        .bearer_auth(&hub.token)
        .header("content-type", "text/csv")
        .body(std::fs::read(data_file(file)).unwrap())
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().unwrap();
    assert!(
        (200..300).contains(&status),
        "{path} with {file}: {status} {body}"
    );
}

/// A hub with the chain's stores and catalog, and store S001 linked to it.
fn cluster(seed: u64) -> Cluster {
    let mut c = Cluster::new(seed).unwrap();
    import_csv(&c, "/api/v1/stores/import", "stores.csv");
    import_csv(&c, "/api/v1/catalog/import", "products.csv");
    c.add_store(STORE).unwrap();
    wait_for(CONNECT, "the store to connect to the hub", || {
        let h = c.store_get(STORE, "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    c
}

/// The payment simulator process (`linli-pay-sim`) and a cluster whose hub
/// takes online payment through it.
fn paying_cluster(seed: u64) -> (linli_tests::Spawned, Cluster) {
    let sim = linli_tests::spawn_listening(
        &linli_tests::workspace_bin("linli-pay-sim"),
        &["--listen", "127.0.0.1:0", "--key", "browser-pay-key"],
        CONNECT,
    )
    .unwrap();
    let mut c = Cluster::new_with_hub_args(
        seed,
        &["--pay-url", &sim.base_url, "--pay-key", "browser-pay-key"],
    )
    .unwrap();
    import_csv(&c, "/api/v1/stores/import", "stores.csv");
    import_csv(&c, "/api/v1/catalog/import", "products.csv");
    c.add_store(STORE).unwrap();
    wait_for(CONNECT, "the store to connect to the hub", || {
        let h = c.store_get(STORE, "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    (sim, c)
}

/// Runs one scenario of `browser_e2e.mjs`, answering its requests to cut
/// and heal the store's link; returns its output, or panics with it on
/// failure.
fn run_scenario(c: &mut Cluster, scenario: &str, extra: &[&str]) -> String {
    let started = Instant::now();
    let shots = c.dir.path().join("screenshots");
    let mut child = Command::new("node")
        .arg(js_dir().join("browser_e2e.mjs"))
        .args(["--hub", &c.hub().unwrap().http])
        .args(["--store", &c.store(STORE).unwrap().base_url])
        .args(["--scenario", scenario])
        .arg("--shots")
        .arg(&shots)
        .args(extra)
        .env("CHROMIUM", chromium())
        .current_dir(js_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start node ({e}): {INSTALL_JS}"));
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut transcript = String::new();
    let mut problem = None;
    loop {
        let left = SCRIPT.saturating_sub(started.elapsed());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                problem = Some(format!("the script did not finish within {SCRIPT:?}"));
                let _ = child.kill();
                break;
            }
        };
        eprintln!(
            "[{scenario} {:>5.1}s] {line}",
            started.elapsed().as_secs_f64()
        );
        transcript.push_str(&line);
        transcript.push('\n');
        if let Some(what) = line.strip_prefix("LINLI-NEED ") {
            let mode = match what {
                "cut" => LinkMode::Cut,
                "heal" => LinkMode::Up,
                other => panic!("the script asked for {other:?}"),
            };
            c.link(STORE, mode).unwrap();
            writeln!(stdin, "LINLI-DONE {what}").unwrap();
            stdin.flush().unwrap();
        }
    }
    let status = child.wait().unwrap();
    let errors = err_reader.join().unwrap_or_default();
    if status.success() && problem.is_none() {
        eprintln!("{scenario}: passed in {:?}", started.elapsed());
        return transcript;
    }
    // Keep the temp dir (screenshots, hub.log, S001.log) for the post-mortem.
    let kept = std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap()).keep();
    panic!(
        "browser scenario {scenario} failed ({}): {}\n--- stdout ---\n{transcript}--- stderr ---\n{errors}\n\
         screenshots and logs kept in {}",
        status,
        problem.as_deref().unwrap_or("see its output"),
        kept.display()
    );
}

#[test]
fn a_pickup_order_goes_from_the_customer_page_through_the_console() {
    require_browser();
    let mut c = cluster(71);
    // A community group-buy order taken at the store: its 6-digit code.
    let (status, order) = c
        .store_post(
            STORE,
            "/api/v1/orders",
            Some("community-1"),
            json!({"channel": "community", "fulfilment": "pickup",
                   "customer": {"phone": "13500135000"}, "lines": [{"sku": "P00003", "qty": 750}]}),
        )
        .unwrap();
    assert_eq!(status, 201, "community order: {order}");
    let code = order["pickup_code"].as_str().unwrap().to_owned();
    run_scenario(&mut c, "pickup", &["--community", &code]);
    // What the console showed is what the node recorded: opening stock 40,
    // one handed over, 12 received, 2 written off.
    let level = c.store_get(STORE, "/api/v1/stock/P00007").unwrap();
    assert_eq!(
        level["on_hand"],
        40 - 1 + 12 - 2,
        "P00007 at the store: {level}"
    );
}

/// `pay`: with a payment provider, the shop's order waits for payment (no
/// pickup code), the customer pays at the simulator's cashier page and comes
/// back to the paid order with its code, and only then does the order reach
/// the store's console.
///
/// Then the same customer commits to a group-buy at S001 twice, paying
/// each at the cashier, and cancels one on the page: the page shows it
/// cancelled by the customer with its refund through, and the hub and the
/// provider agree: one participant with one unit left, one full refund
/// `GBC-<commitment>`, and no other.
#[test]
fn a_customer_pays_for_an_order_at_the_payment_simulators_cashier() {
    require_browser();
    let (sim, mut c) = paying_cluster(79);
    let deadline = chrono::Utc::now() + chrono::Duration::hours(3);
    let gb_id = c.open_group_buy(&["S001"], 5, deadline, json!({})).unwrap();
    let out = run_scenario(&mut c, "pay", &["--group-buy", &gb_id]);
    let cancelled = out
        .lines()
        .find_map(|l| l.strip_prefix("gb-cancelled: "))
        .expect("the scenario names the cancelled commitment")
        .to_owned();

    let g = c.hub_get(&format!("/api/v1/group-buys/{gb_id}")).unwrap();
    assert_eq!(
        (
            g["state"].as_str(),
            g["participants"].as_u64(),
            g["qty"].as_i64()
        ),
        (Some("open"), Some(1), Some(1)),
        "{g}"
    );
    // the customer's own view, from a new session of the same phone
    let h = c.hub().unwrap();
    let session: Value = c
        .http
        .post(format!("{}/api/v1/customer/session", h.http))
        .json(&json!({"phone": "13800138001"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mine: Value = c
        .http
        .get(format!("{}/api/v1/customer/group-buys", h.http))
        .bearer_auth(session["token"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 2, "{mine:?}");
    for m in mine {
        let k = &m["commitment"];
        assert_eq!(k["payment"]["state"], "paid", "{k}");
        if k["commitment_id"] == cancelled.as_str() {
            assert_eq!(
                (k["status"].as_str(), k["cancel_reason"].as_str()),
                (Some("cancelled"), Some("customer_cancelled"))
            );
            assert_eq!(k["refund"]["refund_id"], format!("GBC-{cancelled}"));
            assert_eq!(
                (
                    k["refund"]["state"].as_str(),
                    k["refund"]["amount_fen"].as_i64()
                ),
                (Some("succeeded"), Some(3990))
            );
        } else {
            assert_eq!(k["status"], "active", "{k}");
            assert!(k.get("refund").is_none(), "{k}");
        }
    }
    // the provider refunded exactly that, once
    let refunds: Value = c
        .http
        .get(format!("{}/v3/sim/refunds", sim.base_url))
        .bearer_auth("browser-pay-key")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let refunds = refunds.as_array().unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (
            refunds[0]["out_trade_no"].as_str(),
            refunds[0]["out_refund_no"].as_str(),
            refunds[0]["amount"].as_i64()
        ),
        (
            Some(cancelled.as_str()),
            Some(format!("GBC-{cancelled}").as_str()),
            Some(3990)
        )
    );
}

#[test]
fn a_delivery_is_refused_out_of_reach_then_dispatched_with_the_stores_rider() {
    require_browser();
    let mut c = cluster(73);
    let (status, body) = c
        .store_post(
            STORE,
            "/api/v1/riders",
            None,
            json!({"name": "Li Wei", "phone": "13600136000"}),
        )
        .unwrap();
    assert_eq!(status, 200, "adding a rider: {body}");
    run_scenario(&mut c, "delivery", &[]);
}

#[test]
fn a_cashier_works_the_till_in_chinese_from_the_keyboard() {
    require_browser();
    let mut c = cluster(74);
    run_scenario(&mut c, "languages", &[]);
    let out = run_scenario(&mut c, "cashier", &[]);
    // The keyboard sales are the node's: three tickets that day.
    let tickets: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("S001-")))
        .collect();
    assert!(tickets.len() >= 3, "tickets in the transcript: {tickets:?}");
}

#[test]
fn the_console_sells_and_hands_over_while_the_hub_is_unreachable() {
    require_browser();
    let mut c = cluster(72);
    let out = run_scenario(&mut c, "offline", &[]);
    // The sale rung up in the browser while cut off reaches the hub.
    let ticket = out
        .lines()
        .find_map(|l| l.strip_prefix("step: sale recorded, ticket "))
        .expect("the script reports the sale's ticket")
        .trim()
        .to_owned();
    let ymd = ticket.split('-').nth(1).unwrap();
    let day = format!("{}-{}-{}", &ymd[..4], &ymd[4..6], &ymd[6..]);
    wait_for(CONNECT, "the offline sale to reach the hub", || {
        let sales = c
            .hub_get(&format!("/api/v1/stores/{STORE}/sales?day={day}"))
            .ok()?;
        sales["sales"]
            .as_array()?
            .iter()
            .any(|s| s["ticket_no"] == ticket.as_str())
            .then_some(())
    })
    .unwrap();
}

#[test]
fn a_store_manager_receives_counts_refunds_and_closes_the_day() {
    require_browser();
    let mut c = cluster(75);
    run_scenario(&mut c, "manager", &[]);
    // What the screens confirmed is what the node booked: 20 kg + 5 kg of
    // potatoes (in grams), 40 - 50 cheese, buns counted to 3, two sold, one
    // refunded back onto the shelf.
    let on_hand = |sku: &str| {
        c.store_get(STORE, &format!("/api/v1/stock/{sku}")).unwrap()["on_hand"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(on_hand("P00003"), 25_000);
    assert_eq!(on_hand("P00007"), -10);
    assert_eq!(on_hand("P00001"), 3 - 2 + 1);
    let report = c.store_get(STORE, "/api/v1/reports/day").unwrap();
    assert_eq!(report["cash_expected_fen"], 1950, "{report}");
}

#[test]
fn a_lost_code_is_handed_over_by_phone_and_a_new_order_beeps_on_every_screen() {
    require_browser();
    let mut c = cluster(76);
    run_scenario(&mut c, "phone", &[]);
    let level = c.store_get(STORE, "/api/v1/stock/P00001").unwrap();
    assert_eq!(
        level["on_hand"],
        40 - 1,
        "handed over exactly once: {level}"
    );
}

#[test]
fn a_customer_shops_on_a_phone_and_finds_every_order_after_closing_the_page() {
    require_browser();
    let mut c = cluster(77);
    // a second store with stock, for the refusal to offer
    c.add_store("S002").unwrap();
    wait_for(CONNECT, "S002 to connect to the hub", || {
        let h = c.store_get("S002", "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    // S001 writes 15 of its 20 kg of potatoes off: it then lends the hub
    // less than S002 does
    let (status, body) = c
        .store_post(
            STORE,
            "/api/v1/stock/waste",
            None,
            json!({"lines": [{"sku": "P00003", "qty": 15_000}], "reason": "damaged"}),
        )
        .unwrap();
    assert_eq!(status, 201, "waste: {body}");
    wait_for(CONNECT, "S001 to lend fewer potatoes than S002", || {
        let v = c.hub_get("/api/v1/stock?sku=P00003").ok()?;
        let of = |s: &str| v.as_array()?.iter().find(|x| x["store_id"] == s)?["sellable"].as_i64();
        let (a, b) = (of("S001")?, of("S002")?);
        (a >= 1000 && a + 1000 <= b).then_some(())
    })
    .unwrap();
    let out = run_scenario(&mut c, "shop", &[]);
    // the delivery reaches S001 with the address the customer gave
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("LINLI-DELIVERY "))
        .expect("the script reports the delivery")
        .trim()
        .to_owned();
    wait_for(CONNECT, "the delivery at S001 with its address", || {
        let o = c
            .store_get(STORE, &format!("/api/v1/online-orders/{id}"))
            .ok()?;
        (o["delivery"]["address"] == "文三路花园 3 幢 2 单元 201").then_some(())
    })
    .unwrap();
}

#[test]
fn customers_join_a_stores_community_vote_and_make_its_group_buy_and_the_counter_adds_one() {
    require_browser();
    let mut c = cluster(78);
    let h = c.hub().unwrap();
    let closes = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let poll: Value = c
        .http
        .post(format!("{}/api/v1/communities/S001/polls", h.http))
        .bearer_auth(&h.token)
        .json(&json!({"question": "明天店播，大家最想看哪款？", "options": ["P00001", "P00002", "P00003"], "closes_at": closes}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let poll_id = poll["poll_id"].as_str().unwrap().to_owned();
    let code = c.hub_get("/api/v1/communities/S001").unwrap()["join_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = chrono::Utc::now() + chrono::Duration::hours(3);
    let gb_id = c.open_group_buy(&["S001"], 2, deadline, json!({})).unwrap();
    run_scenario(
        &mut c,
        "community",
        &[
            "--join-code",
            &code,
            "--poll",
            &poll_id,
            "--group-buy",
            &gb_id,
        ],
    );
    // two customers online, one at the counter once its ledger has synced;
    // fulfilled once every participant has a pickup order from the goods-in
    wait_for(CONNECT, "the group-buy's three participants", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{gb_id}")).ok()?;
        ((g["state"] == "reached" || g["state"] == "fulfilled") && g["participants"] == 3)
            .then_some(())
    })
    .unwrap();
    let p = c
        .hub_get(&format!("/api/v1/communities/S001/polls/{poll_id}"))
        .unwrap();
    assert_eq!(p["votes"], 1, "{p}");
    assert_eq!(p["options"][1]["votes"], 1, "{p}");
    wait_for(CONNECT, "three members at the hub", || {
        let v = c.hub_get("/api/v1/communities/S001").ok()?;
        (v["members"] == 3).then_some(())
    })
    .unwrap();
}

#[test]
fn a_cashier_cancels_a_counter_commitment_offline_with_the_consoles_cancel_button() {
    require_browser();
    let mut c = cluster(80);
    let deadline = chrono::Utc::now() + chrono::Duration::hours(3);
    let gb_id = c.open_group_buy(&["S001"], 5, deadline, json!({})).unwrap();
    let out = run_scenario(&mut c, "gbcancel", &["--group-buy", &gb_id]);
    assert!(out.contains("gb-counter-cancelled: "), "{out}");
    // the cancel reaches the hub with the ledger: one neighbour left
    wait_for(CONNECT, "the hub to count the one left", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{gb_id}")).ok()?;
        (g["participants"] == 1 && g["qty"] == 1).then_some(())
    })
    .unwrap();
}

#[test]
fn a_cashier_refunds_a_failed_group_buys_counter_commitment_with_the_consoles_refund_button() {
    require_browser();
    let mut c = cluster(81);
    // five neighbours needed, two will come; no grace after the deadline
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(30);
    let gb_id = c
        .open_group_buy(&["S001"], 5, deadline, json!({"grace_minutes": 0}))
        .unwrap();
    let out = run_scenario(&mut c, "gbfail", &["--group-buy", &gb_id]);
    assert!(out.contains("gb-counter-refunded: "), "{out}");
    // the refund reaches the hub with the ledger: one done, one owed
    wait_for(CONNECT, "the hub to count the counter refund", || {
        let g = c.hub_get(&format!("/api/v1/group-buys/{gb_id}")).ok()?;
        let r = &g["counter_refunds"];
        (g["state"] == "failed" && r["done"] == 1 && r["owed"] == 1).then_some(())
    })
    .unwrap();
}

#[test]
fn a_store_manager_runs_a_live_session_and_a_customer_orders_at_the_live_price() {
    require_browser();
    let mut c = Cluster::new(79).unwrap();
    import_csv(&c, "/api/v1/stores/import", "stores.csv");
    import_csv(&c, "/api/v1/catalog/import", "products.csv");
    let hub_http = c.hub().unwrap().http.clone();
    c.add_store_with(STORE, &["--hub-http", &hub_http]).unwrap();
    // the hub learns the console's origin (known once the store runs) and
    // the store's manager account
    let origin = c.store(STORE).unwrap().base_url.clone();
    c.hub_args = vec!["--console-origin".into(), origin];
    c.restart_hub_with(&[
        "user",
        "add",
        "--name",
        "m1",
        "--role",
        "manager",
        "--store",
        STORE,
        "--password",
        "manager-one",
    ])
    .unwrap();
    assert_eq!(c.hub().unwrap().http, hub_http);
    wait_for(CONNECT, "the store to connect to the hub", || {
        let h = c.store_get(STORE, "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    let out = run_scenario(
        &mut c,
        "live",
        &["--manager", "m1", "--password", "manager-one"],
    );
    let order = out
        .lines()
        .find_map(|l| l.strip_prefix("LINLI-LIVE-ORDER "))
        .unwrap()
        .trim()
        .to_owned();
    // the hub recorded the order with its session and the live price
    let hub = c.hub().unwrap();
    let v: Value = c
        .http
        .get(format!("{}/api/v1/orders/{order}", hub.http))
        .bearer_auth(&hub.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["channel"], "live", "{v}");
    assert_eq!(v["lines"][0]["unit_price_fen"], 990, "{v}");
    let session = v["live_session_id"].as_str().unwrap();
    let s: Value = c
        .http
        .get(format!("{}/api/v1/live-sessions/{session}", hub.http))
        .bearer_auth(&hub.token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (s["status"].clone(), s["orders"].clone()),
        (json!("ended"), json!(1)),
        "{s}"
    );
}

/// `promotions` (a phone and the console at 1024x768): the admin opens a
/// coupon campaign (满30减8) that S001's counter takes. The store manager
/// signs in to the hub from the console's 社群 tab, sees the community's
/// join code, link and QR, creates a poll, and sees the campaign's
/// allotment on the 促销 tab; a customer joins by the link and sees the
/// poll, claims an online coupon and uses it at checkout (the order shows
/// ¥8.00 off), claims a counter coupon and shows its code; the console
/// sells with that code (the receipt shows the coupon) and refuses it the
/// second time, in Chinese. The manager also opens a group-buy for S001
/// from the 社群 tab (the hub has it, for S001 alone).
#[test]
fn a_customer_uses_coupons_online_and_at_the_counter_and_the_manager_runs_the_community() {
    require_browser();
    let mut c = Cluster::new(80).unwrap();
    import_csv(&c, "/api/v1/stores/import", "stores.csv");
    import_csv(&c, "/api/v1/catalog/import", "products.csv");
    let hub_http = c.hub().unwrap().http.clone();
    c.add_store_with(STORE, &["--hub-http", &hub_http]).unwrap();
    let origin = c.store(STORE).unwrap().base_url.clone();
    c.hub_args = vec!["--console-origin".into(), origin];
    c.restart_hub_with(&[
        "user",
        "add",
        "--name",
        "m1",
        "--role",
        "manager",
        "--store",
        STORE,
        "--password",
        "manager-one",
    ])
    .unwrap();
    wait_for(CONNECT, "the store to connect to the hub", || {
        let h = c.store_get(STORE, "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    let h = c.hub().unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let resp = c
        .http
        .post(format!("{}/api/v1/coupons", h.http))
        .bearer_auth(&h.token)
        .json(
            &json!({"name": "满30减8", "off": {"amount_fen": 800}, "min_spend_fen": 3000,
                      "budget_fen": 100_000, "per_customer_limit": 2, "valid_until": until,
                      "store_ids": [STORE], "counter_allotment_fen": 5000}),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let coupon: Value = resp.json().unwrap();
    let coupon_id = coupon["coupon_id"].as_str().unwrap().to_owned();
    // a markdown the till shows before payment (P00013 is in no basket above)
    let resp = c
        .http
        .put(format!("{}/api/v1/stores/{STORE}/markdowns", h.http))
        .bearer_auth(&h.token)
        .json(
            &json!({"markdowns": [{"name": "豆浆特价", "skus": ["P00013"], "price_fen": 2500,
                                      "from": "00:00", "to": "24:00"}]}),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // the counter takes it once its terms and allotment have synced
    wait_for(
        CONNECT,
        "the campaign and the markdown at S001's counter",
        || {
            let p = c.store_get(STORE, "/api/v1/promotions").ok()?;
            (p["coupons"]
                .as_array()?
                .iter()
                .any(|x| x["coupon_id"] == coupon_id.as_str() && x["left_fen"] == 5000)
                && p["markdowns"].as_array()?.len() == 1)
                .then_some(())
        },
    )
    .unwrap();
    let code = c.hub_get("/api/v1/communities/S001").unwrap()["join_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run_scenario(
        &mut c,
        "promotions",
        &[
            "--manager",
            "m1",
            "--password",
            "manager-one",
            "--join-code",
            &code,
            "--coupon",
            &coupon_id,
        ],
    );
    // the hub counted one online redemption; the counter's reaches it by sync
    let v = c.hub_get(&format!("/api/v1/coupons/{coupon_id}")).unwrap();
    assert_eq!(v["online_used_fen"], 800, "{v}");
    wait_for(CONNECT, "the counter's redemption at the hub", || {
        let v = c.hub_get(&format!("/api/v1/coupons/{coupon_id}")).ok()?;
        (v["counter_used_fen"] == 800).then_some(())
    })
    .unwrap();
    let poll = out
        .lines()
        .find_map(|l| l.strip_prefix("LINLI-POLL "))
        .expect("the script reports the poll")
        .trim()
        .to_owned();
    let p = c
        .hub_get(&format!("/api/v1/communities/S001/polls/{poll}"))
        .unwrap();
    assert_eq!(p["question"], "明天店播，大家最想看哪款？", "{p}");
    // the manager's group-buy, for S001 alone
    let gb = out
        .lines()
        .find_map(|l| l.strip_prefix("LINLI-GROUP-BUY "))
        .expect("the script reports the group-buy")
        .trim()
        .to_owned();
    let g = c.hub_get(&format!("/api/v1/group-buys/{gb}")).unwrap();
    assert_eq!(
        (&g["store_ids"], &g["price_fen"], &g["state"], &g["sku"]),
        (
            &json!(["S001"]),
            &json!(3990),
            &json!("open"),
            &json!("P00009")
        ),
        "{g}"
    );
}

/// November 2026 at the hub as stores' ledgers would send it: S001 sells a
/// bun (¥19.50) twice a day on the 1st-20th (member `hA` on the 1st and
/// 2nd, `hB` on the 3rd; 30 by `cashier`, 10 by `li`), refunds one on the
/// 5th and throws two away; S006 (also 杭州西区) sells cheese (¥10.70) on
/// the 1st-10th; S002 (杭州北区) sells water (¥82.40) five times. Seeded
/// through the hub's own library (the path a store's sync takes), before
/// the hub process starts on the same data.
fn seed_november(hub_dir: &Path) -> anyhow::Result<()> {
    use automerge::sync::SyncDoc;
    use chrono::{FixedOffset, NaiveDate, TimeZone};
    use linli_shared::docs::ledger::{
        MovementFact, RefundFact, SaleFact, SaleLineFact, record_movement, record_refund,
        record_sale,
    };
    use linli_shared::docs::{DocId, Owner, new_doc};
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let hub = linli_hub::hub::Hub::open(&linli_hub::hub::HubPaths {
            data_dir: hub_dir.to_owned(),
        })?;
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let at = |day: u32, hour: u32| {
            cst.with_ymd_and_hms(2026, 11, day, hour, 0, 0)
                .unwrap()
                .to_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let sale =
            |id: String, at: String, cashier: &str, sku: &str, fen: i64, member: &str| SaleFact {
                ticket_no: id.clone(),
                sale_id: id,
                created_at: at,
                cashier: cashier.into(),
                total_fen: fen,
                lines: vec![SaleLineFact {
                    sku: sku.into(),
                    qty: 1,
                    total_fen: fen,
                    unit_price_fen: fen,
                }],
                member_hash: member.into(),
                ..SaleFact::default()
            };
        let mut actor = 0u8;
        for day in 1..=20u32 {
            let mut facts = Vec::new();
            for (n, hour) in [(0, 9), (1, 17)] {
                let i = (day - 1) * 2 + n;
                let member = match (day, n) {
                    (1 | 2, 0) => "hA",
                    (3, 0) => "hB",
                    _ => "",
                };
                let cashier = if i < 30 { "cashier" } else { "li" };
                facts.push((
                    "S001",
                    sale(
                        format!("S001-{i}"),
                        at(day, hour),
                        cashier,
                        "P00001",
                        1950,
                        member,
                    ),
                ));
            }
            if day <= 10 {
                facts.push((
                    "S006",
                    sale(
                        format!("S006-{day}"),
                        at(day, 10),
                        "wang",
                        "P00007",
                        1070,
                        "",
                    ),
                ));
            }
            if day <= 5 {
                facts.push((
                    "S002",
                    sale(
                        format!("S002-{day}"),
                        at(day, 11),
                        "zhao",
                        "P00010",
                        8240,
                        "",
                    ),
                ));
            }
            for store in ["S001", "S006", "S002"] {
                let mine: Vec<&SaleFact> = facts
                    .iter()
                    .filter(|(s, _)| *s == store)
                    .map(|(_, f)| f)
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let id =
                    DocId::store_ledger(store, NaiveDate::from_ymd_opt(2026, 11, day).unwrap());
                actor += 1;
                let mut doc = new_doc(&id, Owner::Store(store.into()).actor([actor; 8]))?;
                for f in mine {
                    record_sale(&mut doc, f)?;
                }
                if store == "S001" && day == 5 {
                    record_refund(
                        &mut doc,
                        &RefundFact {
                            refund_id: "R-S001-5".into(),
                            sale_id: "S001-8".into(),
                            amount_fen: 1950,
                            staff: "cashier".into(),
                            at: at(5, 12),
                            ..RefundFact::default()
                        },
                    )?;
                    record_movement(
                        &mut doc,
                        &MovementFact {
                            movement_id: "W-S001-5".into(),
                            sku: "P00001".into(),
                            kind: "waste".into(),
                            delta: -2,
                            reason: "expired".into(),
                            ref_id: String::new(),
                            staff: "li".into(),
                            at: at(5, 21),
                        },
                    )?;
                }
                doc.commit();
                // the store's side of a sync session, until nothing is left
                let mut state = automerge::sync::State::new();
                loop {
                    let Some(msg) = doc.sync().generate_sync_message(&mut state) else {
                        break;
                    };
                    hub.receive_from(store, id.clone(), msg.encode()).await?;
                    let (s, i) = (store.to_owned(), id.clone());
                    let reply = hub
                        .with_docs(move |c, docs| Ok(docs.generate(c, &i, &s)?))
                        .await?;
                    match reply {
                        Some(r) => doc.sync().receive_sync_message(
                            &mut state,
                            automerge::sync::Message::decode(&r)?,
                        )?,
                        None => break,
                    }
                }
            }
        }
        anyhow::Ok(())
    })
}

/// `dashboard` (1280x900): see [`dashboardScenario`] in `browser_e2e.mjs`.
/// The expected figures are worked out here by hand from the seed: 杭州西区
/// is S001 and S006 with sales (and its other stores with none).
#[test]
fn a_regional_manager_sees_the_months_numbers_of_their_region_only_and_exports_them() {
    require_browser();
    let mut c = Cluster::new(90).unwrap();
    import_csv(&c, "/api/v1/stores/import", "stores.csv");
    import_csv(&c, "/api/v1/catalog/import", "products.csv");
    c.with_hub_stopped(|dir| {
        seed_november(dir)?;
        let status = Command::new(linli_tests::workspace_bin("linli-hub"))
            .args(["user", "add", "--data-dir"])
            .arg(dir)
            .args([
                "--name",
                "west",
                "--role",
                "regional",
                "--region",
                "杭州西区",
                "--password",
                "west-password",
            ])
            .status()?;
        anyhow::ensure!(status.success(), "user add failed");
        Ok(())
    })
    .unwrap();
    c.add_store(STORE).unwrap();
    let csv = std::fs::read_to_string(data_file("stores.csv")).unwrap();
    let west: Vec<String> = csv
        .lines()
        .filter(|l| l.ends_with(",杭州西区"))
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert!(west.contains(&"S006".to_owned()) && !west.contains(&"S002".to_owned()));
    // 40 buns less one refunded, 10 cheeses
    let counter = 40 * 1950 - 1950 + 10 * 1070;
    let expected = json!({
        "from": "2026-11-01", "to": "2026-11-30", "region": "杭州西区", "stores": west,
        "totals": {
            "gmv_fen": counter, "counter_gmv_fen": counter, "online_gmv_fen": 0, "orders": 50,
            "live_gmv_fen": 0, "online_order_share": 0.0,
            // hA bought on two days, hB on one
            "repurchase_rate": 0.5,
            // two buns thrown away against 40 buns and 10 cheeses sold, at catalog prices
            "waste_rate": 3900.0 / (40.0 * 1950.0 + 10.0 * 1070.0 + 3900.0),
            "pickup_rate": null,
        }
    });
    let path = c.dir.path().join("dashboard-expected.json");
    std::fs::write(&path, expected.to_string()).unwrap();
    let out = run_scenario(
        &mut c,
        "dashboard",
        &[
            "--user",
            "west",
            "--password",
            "west-password",
            "--other",
            "S002",
            "--expected",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("the overview equals the expected month"),
        "{out}"
    );
}
