//! Prometheus metrics: requests, latencies, sales and database commits,
//! served as text at `GET /metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// All of the node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
    pub sales: Counter,
    pub sales_fen: Counter,
    pub pickups: Counter,
    pub commit_seconds: Histogram,
    pub commit_batch: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("linli_edge");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        let sales = Counter::default();
        let sales_fen = Counter::default();
        let pickups = Counter::default();
        let commit_seconds = Histogram::new(exponential_buckets(0.00005, 2.0, 16));
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("sales", "Sales recorded", sales.clone());
        registry.register(
            "sales_fen",
            "Value of sales recorded, in fen",
            sales_fen.clone(),
        );
        registry.register("pickups", "Pickup orders handed over", pickups.clone());
        registry.register(
            "db_commit_duration_seconds",
            "Duration of durable SQLite commits",
            commit_seconds.clone(),
        );
        registry.register(
            "db_commit_batch_size",
            "Writes grouped into one commit",
            commit_batch.clone(),
        );
        Arc::new(Metrics {
            registry,
            requests,
            latency,
            sales,
            sales_fen,
            pickups,
            commit_seconds,
            commit_batch,
        })
    }

    pub fn observe_commit(&self, d: Duration, batch: usize) {
        self.commit_seconds.observe(d.as_secs_f64());
        self.commit_batch.observe(batch as f64);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
