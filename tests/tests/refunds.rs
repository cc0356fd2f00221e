//! Refunds reach the hub (issue 8 item 12): with real processes and real
//! QUIC, a day's net sales at the hub equal the store's after whole and
//! partial refunds, made online or during an outage and synced on heal.
//! Also checks that both databases are private to their owner (item 17).

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::collections::BTreeMap;
use std::time::Duration;

use linli_tests::{Cluster, LinkMode, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

fn sale_lines(i: usize) -> Value {
    json!([{"sku": "P00001", "qty": 2 + i % 2}, {"barcode": "6942215277577"}, {"sku": "P00003", "qty": 250 + i}])
}

/// sale id -> (total, refunded).
type DaySales = BTreeMap<String, (i64, i64)>;

/// A day's sales as the store's day list has them.
fn store_day(c: &Cluster, day: &str) -> DaySales {
    c.store_get("S001", &format!("/api/v1/sales?day={day}"))
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["sale_id"].as_str().unwrap().to_owned(),
                (
                    s["total_fen"].as_i64().unwrap(),
                    s["refunded_fen"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

/// The same from the hub, with its day totals (gross, refunded, net).
fn hub_day(c: &Cluster, day: &str) -> Option<(DaySales, [i64; 3])> {
    let v = c
        .hub_get(&format!("/api/v1/stores/S001/sales?day={day}"))
        .ok()?;
    let sales = v["sales"]
        .as_array()?
        .iter()
        .map(|s| {
            Some((
                s["sale_id"].as_str()?.to_owned(),
                (s["total_fen"].as_i64()?, s["refunded_fen"].as_i64()?),
            ))
        })
        .collect::<Option<_>>()?;
    let totals = [
        v["total_fen"].as_i64()?,
        v["refunded_fen"].as_i64()?,
        v["net_fen"].as_i64()?,
    ];
    Some((sales, totals))
}

/// Waits until the hub holds exactly the store's day, sale by sale, and
/// its net equals the store's; returns the store's net.
fn assert_hub_nets_like_the_store(c: &Cluster, day: &str) -> i64 {
    let store = store_day(c, day);
    let gross: i64 = store.values().map(|(t, _)| t).sum();
    let refunded: i64 = store.values().map(|(_, r)| r).sum();
    let mut last = None;
    let r = wait_for(CONVERGE, "the hub's day to equal the store's", || {
        let got = hub_day(c, day);
        let ok = got
            .as_ref()
            .is_some_and(|(s, t)| *s == store && *t == [gross, refunded, gross - refunded]);
        last = got;
        ok.then_some(())
    });
    assert!(
        r.is_ok(),
        "store: {store:?} gross {gross} refunded {refunded}; hub: {last:?}"
    );
    gross - refunded
}

fn refund(c: &Cluster, key: &str, sale_id: &str, body: Value) -> Value {
    let (s, v) = c
        .store_post(
            "S001",
            &format!("/api/v1/sales/{sale_id}/refunds"),
            Some(key),
            body,
        )
        .unwrap();
    assert_eq!(s, 201, "{v}");
    v
}

#[test]
fn a_days_net_sales_at_the_hub_equal_the_stores_after_refunds() {
    let mut c = Cluster::new(12).unwrap();
    c.add_store("S001").unwrap();
    wait_for(CONVERGE, "the store to connect", || {
        let h = c.store_get("S001", "/health").ok()?;
        (h["sync"]["state"] == "connected").then_some(())
    })
    .unwrap();
    let mut ids = Vec::new();
    let mut day = String::new();
    for i in 0..6 {
        let r = c.sell("S001", &format!("s-{i}"), sale_lines(i)).unwrap();
        day = r["business_day"].as_str().unwrap().to_owned();
        ids.push(r["sale_id"].as_str().unwrap().to_owned());
    }
    c.wait_hub_has("S001", &day, &ids, CONVERGE).unwrap();

    // online: a whole refund, and a partial one (one bun of a line, with waste)
    refund(&c, "r-whole", &ids[0], json!({}));
    let part = refund(
        &c,
        "r-part",
        &ids[1],
        json!({"lines": [{"line_no": 1, "qty": 1, "disposition": "waste"}]}),
    );
    assert!(part["amount_fen"].as_i64().unwrap() > 0);
    let net_online = assert_hub_nets_like_the_store(&c, &day);

    // offline: refunds (partial, then the rest of the same sale; a whole
    // one; one of a sale made offline) wait for the link and then arrive
    c.link("S001", LinkMode::Cut).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the store to see the outage",
        || {
            let h = c.store_get("S001", "/health").ok()?;
            (h["sync"]["state"] != "connected").then_some(())
        },
    )
    .unwrap();
    refund(&c, "r-off-1", &ids[2], json!({"lines": [{"line_no": 3}]}));
    refund(&c, "r-off-2", &ids[2], json!({}));
    refund(&c, "r-off-3", &ids[3], json!({}));
    let offline = c.sell("S001", "s-off", sale_lines(7)).unwrap();
    let offline_id = offline["sale_id"].as_str().unwrap().to_owned();
    ids.push(offline_id.clone());
    refund(
        &c,
        "r-off-4",
        &offline_id,
        json!({"lines": [{"line_no": 2}]}),
    );
    // while cut off, the hub still has the online state
    let (_, totals) = hub_day(&c, &day).unwrap();
    assert_eq!(totals[2], net_online);

    c.link("S001", LinkMode::Up).unwrap();
    c.wait_hub_has("S001", &day, &ids, CONVERGE).unwrap();
    let net = assert_hub_nets_like_the_store(&c, &day);
    assert!(net < net_online + offline["total_fen"].as_i64().unwrap());
    // fully refunded sales count nothing at the hub
    let (sales, _) = hub_day(&c, &day).unwrap();
    for id in [&ids[0], &ids[2], &ids[3]] {
        let (total, refunded) = sales[id];
        assert_eq!(total, refunded, "{id}");
    }

    // item 17: both databases are the owner's alone
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: std::path::PathBuf| {
            std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        let store_dir = c.store("S001").unwrap().data_dir.clone();
        let hub_dir = c.hub_dir();
        assert_eq!(mode(store_dir.clone()), 0o700);
        assert_eq!(mode(hub_dir.clone()), 0o700);
        for f in ["store.db", "store.db-wal", "store.db-shm"] {
            assert_eq!(mode(store_dir.join(f)), 0o600, "{f}");
        }
        for f in ["hub.db", "hub.db-wal", "hub.db-shm"] {
            assert_eq!(mode(hub_dir.join(f)), 0o600, "{f}");
        }
    }
}
