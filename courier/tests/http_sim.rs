//! The HTTP courier adapter against the simulator, over real sockets.
//!
//! Each test starts its own simulator on port 0 and drives it through
//! `Arc<dyn Courier>` the way a store does; the simulator's control endpoints
//! (advance, fail) stand in for the rider. The last test runs the built
//! `linli-courier-sim` binary.
#![allow(clippy::unwrap_used)] // test helpers panic on setup failure by design

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use linli_courier::http::HttpCourier;
use linli_courier::sim::{SimCourier, serve};
use linli_courier::{Courier, CourierError, CourierState, CourierStatus, DeliveryRequest};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const KEY: &str = "test-key";

/// A simulator serving on a free port, stopped on drop.
struct Sim {
    state: SimCourier,
    addr: SocketAddr,
    cancel: CancellationToken,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Sim {
    async fn start(state: SimCourier) -> Sim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(serve(listener, state.clone(), cancel.clone()));
        Sim {
            state,
            addr,
            cancel,
            handle: Some(handle),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn courier(&self) -> Arc<dyn Courier> {
        courier_at(&self.url(), KEY)
    }

    /// The simulator's control endpoint, the way a demo drives it with curl.
    async fn control(&self, courier_ref: &str, action: &str, body: serde_json::Value) -> u16 {
        reqwest::Client::new()
            .post(format!(
                "{}/v1/deliveries/{courier_ref}/{action}",
                self.url()
            ))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn advance(&self, courier_ref: &str) -> u16 {
        self.control(courier_ref, "advance", serde_json::json!({}))
            .await
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn courier_at(url: &str, key: &str) -> Arc<dyn Courier> {
    Arc::new(HttpCourier::new("sim", url, key).unwrap())
}

fn request(order: &str) -> DeliveryRequest {
    DeliveryRequest {
        order_id: order.into(),
        store_id: "store-7".into(),
        pickup_lat: 31.2304,
        pickup_lon: 121.4737,
        dropoff_lat: 31.2351,
        dropoff_lon: 121.4802,
        window_start: Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
        window_end: Utc.with_ymd_and_hms(2025, 3, 1, 10, 30, 0).unwrap(),
        contact: "138****1234".into(),
        items: 3,
    }
}

fn assert_rejected<T: std::fmt::Debug>(result: Result<T, CourierError>, expected: &str) {
    match result {
        Err(CourierError::Rejected { code, .. }) => assert_eq!(code, expected),
        other => panic!("expected Rejected {expected}, got {other:?}"),
    }
}

/// Polls `status` until `done` holds or the deadline passes.
async fn wait_for_status(
    courier: &dyn Courier,
    courier_ref: &str,
    deadline: Duration,
    done: impl Fn(&CourierStatus) -> bool,
) -> CourierStatus {
    let until = Instant::now() + deadline;
    loop {
        let status = courier.status(courier_ref).await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < until,
            "condition not reached within {deadline:?}; last status {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dispatch_then_status_is_requested() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    let dispatched = courier.dispatch(&request("o-1")).await.unwrap();
    assert_eq!(dispatched.courier, "sim");
    let status = courier.status(&dispatched.courier_ref).await.unwrap();
    assert_eq!(status.courier_ref, dispatched.courier_ref);
    assert_eq!(status.state, CourierState::Requested);
    assert_eq!(
        (status.picked_up_at, status.delivered_at, status.failure),
        (None, None, None)
    );
}

#[tokio::test]
async fn dispatching_the_same_order_twice_yields_the_same_delivery() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    let first = courier.dispatch(&request("o-1")).await.unwrap();
    let again = courier.dispatch(&request("o-1")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(sim.state.delivery_count(), 1);

    let other = courier.dispatch(&request("o-2")).await.unwrap();
    assert_ne!(other.courier_ref, first.courier_ref);
    assert_eq!(sim.state.delivery_count(), 2);
}

#[tokio::test]
async fn the_same_order_with_another_body_is_rejected() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    courier.dispatch(&request("o-1")).await.unwrap();
    let mut changed = request("o-1");
    changed.items = 4;
    assert_rejected(courier.dispatch(&changed).await, "idempotency_key_reused");
    assert_eq!(sim.state.delivery_count(), 1);
}

#[tokio::test]
async fn advance_goes_to_picked_up_then_delivered() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    let r = courier.dispatch(&request("o-1")).await.unwrap().courier_ref;

    assert_eq!(sim.advance(&r).await, 200);
    let picked = courier.status(&r).await.unwrap();
    assert_eq!(picked.state, CourierState::PickedUp);
    assert!(picked.picked_up_at.is_some());
    assert_eq!(picked.delivered_at, None);

    assert_eq!(sim.advance(&r).await, 200);
    let delivered = courier.status(&r).await.unwrap();
    assert_eq!(delivered.state, CourierState::Delivered);
    assert_eq!(delivered.picked_up_at, picked.picked_up_at);
    assert!(delivered.delivered_at >= delivered.picked_up_at);

    assert_eq!(sim.advance(&r).await, 409, "already delivered");
}

#[tokio::test]
async fn cancel_before_pickup_only() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();

    let early = courier.dispatch(&request("o-1")).await.unwrap().courier_ref;
    let cancelled = courier.cancel(&early).await.unwrap();
    assert_eq!(cancelled.state, CourierState::Cancelled);
    // a retried cancel is harmless
    assert_eq!(courier.cancel(&early).await.unwrap(), cancelled);
    assert_eq!(sim.advance(&early).await, 409);

    let late = courier.dispatch(&request("o-2")).await.unwrap().courier_ref;
    assert_eq!(sim.advance(&late).await, 200);
    assert_rejected(courier.cancel(&late).await, "not_cancellable");
    assert_eq!(
        courier.status(&late).await.unwrap().state,
        CourierState::PickedUp
    );
}

#[tokio::test]
async fn fail_reports_the_reason() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    let r = courier.dispatch(&request("o-1")).await.unwrap().courier_ref;
    let code = sim
        .control(&r, "fail", serde_json::json!({"reason": "no rider nearby"}))
        .await;
    assert_eq!(code, 200);
    let status = courier.status(&r).await.unwrap();
    assert_eq!(status.state, CourierState::Failed);
    assert_eq!(status.failure.as_deref(), Some("no rider nearby"));
    assert_rejected(courier.cancel(&r).await, "not_cancellable");
}

#[tokio::test]
async fn invalid_requests_are_rejected_as_invalid_field() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    type Spoiler = (&'static str, fn(&mut DeliveryRequest));
    let spoilers: [Spoiler; 4] = [
        ("empty window", |r| r.window_end = r.window_start),
        ("latitude", |r| r.dropoff_lat = 91.0),
        ("longitude", |r| r.pickup_lon = -180.5),
        ("no items", |r| r.items = 0),
    ];
    for (what, spoil) in spoilers {
        let mut r = request(&format!("bad-{what}"));
        spoil(&mut r);
        match courier.dispatch(&r).await {
            Err(CourierError::Rejected { code, .. }) => assert_eq!(code, "invalid_field", "{what}"),
            other => panic!("{what}: expected Rejected invalid_field, got {other:?}"),
        }
    }
    assert_eq!(sim.state.delivery_count(), 0);
}

#[tokio::test]
async fn a_wrong_key_is_rejected() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = courier_at(&sim.url(), "not-the-key");
    assert_rejected(courier.dispatch(&request("o-1")).await, "unauthorized");
    assert_rejected(courier.status("sim-anything").await, "unauthorized");
    assert_eq!(sim.state.delivery_count(), 0);
}

#[tokio::test]
async fn an_unknown_ref_is_unknown_delivery() {
    let sim = Sim::start(SimCourier::new(KEY)).await;
    let courier = sim.courier();
    for ref_ in ["sim-nope", "a/b?c#d"] {
        assert!(
            matches!(
                courier.status(ref_).await,
                Err(CourierError::UnknownDelivery(_))
            ),
            "{ref_}"
        );
        assert!(
            matches!(
                courier.cancel(ref_).await,
                Err(CourierError::UnknownDelivery(_))
            ),
            "{ref_}"
        );
    }
}

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    // a port that was just free and has nobody listening
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let courier: Arc<dyn Courier> = Arc::new(
        HttpCourier::new("down", format!("http://{addr}"), KEY)
            .unwrap()
            .with_timeouts(Duration::from_millis(300), Duration::from_secs(1))
            .unwrap(),
    );
    let started = Instant::now();
    let result = courier.dispatch(&request("o-1")).await;
    assert!(
        matches!(result, Err(CourierError::Unavailable(_))),
        "{result:?}"
    );
    // the timeouts end the call (without them it would hang); how fast is
    // not a test's business on a shared machine, only that it ends
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test]
async fn server_errors_are_unavailable_and_garbage_is_protocol() {
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    // a misbehaving courier: 503 on dispatch, non-JSON 200 on status
    let app = axum::Router::new()
        .route(
            "/v1/deliveries",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded") }),
        )
        .route("/v1/deliveries/{r}", get(|| async { "<html>ok</html>" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .into_future(),
    );
    let courier = courier_at(&format!("http://{addr}"), KEY);
    let dispatched = courier.dispatch(&request("o-1")).await;
    assert!(
        matches!(dispatched, Err(CourierError::Unavailable(_))),
        "{dispatched:?}"
    );
    let status = courier.status("x").await;
    assert!(
        matches!(status, Err(CourierError::Protocol(_))),
        "{status:?}"
    );
    cancel.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn auto_advance_reaches_delivered() {
    let sim = Sim::start(SimCourier::new(KEY).with_auto_advance(Duration::from_millis(20))).await;
    let courier = sim.courier();
    let r = courier.dispatch(&request("o-1")).await.unwrap().courier_ref;
    let status = wait_for_status(&*courier, &r, Duration::from_secs(10), |s| {
        s.state == CourierState::Delivered
    })
    .await;
    assert!(status.picked_up_at.is_some());
    assert!(status.delivered_at >= status.picked_up_at);
}

#[tokio::test]
async fn serve_stops_with_its_auto_advance_task_on_cancel() {
    let mut sim =
        Sim::start(SimCourier::new(KEY).with_auto_advance(Duration::from_millis(5))).await;
    sim.courier().dispatch(&request("o-1")).await.unwrap();
    sim.cancel.cancel();
    let handle = sim.handle.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("serve returns after cancel")
        .unwrap()
        .unwrap();
    assert!(matches!(
        sim.courier().status("sim-x").await,
        Err(CourierError::Unavailable(_))
    ));
}

/// The simulator binary, killed on drop if a test fails before it exits.
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves() {
    let mut child = SimProcess(
        Command::new(env!("CARGO_BIN_EXE_linli-courier-sim"))
            .args(["--listen", "127.0.0.1:0", "--api-key", KEY])
            .env_remove("LINLI_COURIER_SIM_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // read the ready line on a thread so a silent binary fails the test at
    // the deadline instead of hanging it
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let url = line
        .trim()
        .split_once("listening on ")
        .map(|(_, url)| url.to_owned())
        .unwrap_or_else(|| panic!("no ready line: {line:?}"));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let courier = courier_at(&url, KEY);
    let dispatched = courier.dispatch(&request("o-1")).await.unwrap();
    assert_eq!(
        courier.status(&dispatched.courier_ref).await.unwrap().state,
        CourierState::Requested
    );

    // SIGTERM stops it cleanly
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let until = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < until, "still running after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit:?}");
}
