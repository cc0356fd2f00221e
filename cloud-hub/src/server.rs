//! A running hub: HTTP API and QUIC ingest, each task owned and shut down in
//! order (stop accepting, end sessions, close the database).

use std::net::SocketAddr;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, HubPaths};
use crate::ingest::Ingest;
use crate::settings::OrderSettings;

/// A serving hub. Call [`HubServer::shutdown`] to stop it.
#[must_use = "a hub runs until shut down; keep the handle and call shutdown"]
#[derive(Debug)]
pub struct HubServer {
    pub hub: Hub,
    pub http_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl HubServer {
    /// Opens the hub's database and CA and starts serving.
    pub async fn start(
        paths: &HubPaths,
        listen: SocketAddr,
        quic: SocketAddr,
        names: &[String],
    ) -> anyhow::Result<HubServer> {
        Self::start_with(paths, listen, quic, names, OrderSettings::default()).await
    }

    /// [`Self::start`] with the chain's order settings.
    pub async fn start_with(
        paths: &HubPaths,
        listen: SocketAddr,
        quic: SocketAddr,
        names: &[String],
        mut orders: OrderSettings,
    ) -> anyhow::Result<HubServer> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let http_addr = listener.local_addr()?;
        if let Some(pay) = orders.payment.as_mut()
            && pay.notify_url.is_none()
        {
            pay.notify_url = Some(format!("http://{http_addr}/api/v1/pay/notify"));
        }
        let hub = Hub::open_with(paths, orders)?;
        hub.reload_directory().await?;
        let ingest = Ingest::bind(&paths.ca_dir(), quic, names)?;
        let quic_addr = ingest.local_addr()?;
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let (h, c) = (hub.clone(), cancel.clone());
        tasks.spawn(async move { ingest.run(h, c).await });
        let (h, c) = (hub.clone(), cancel.clone());
        tasks.spawn(async move { expiry_sweeper(h, c).await });
        if hub.takes_payment() {
            let (h, c) = (hub.clone(), cancel.clone());
            tasks.spawn(crate::app::payment::unpaid_sweeper(h, c));
            let (h, c) = (hub.clone(), cancel.clone());
            tasks.spawn(crate::app::payment::refund_worker(h, c));
        }
        let (h, c) = (hub.clone(), cancel.clone());
        tasks.spawn(async move { group_buy_settler(h, c).await });
        let (h, c) = (hub.clone(), cancel.clone());
        tasks.spawn(async move {
            let serve = axum::serve(
                listener,
                crate::http::router(h)
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(c.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        Ok(HubServer {
            hub,
            http_addr,
            quic_addr,
            cancel,
            tasks,
        })
    }

    /// Stops serving and closes the database.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.hub.store.shutdown().await;
    }
}

/// Expires pickup orders nobody collected, once a minute.
async fn expiry_sweeper(hub: Hub, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => match hub.expire_orders(hub.now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "uncollected pickup orders expired; their rights are released"),
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
            },
        }
    }
}

/// Decides group-buys past their deadline (and reached ones nobody has
/// committed to since they became so), every 5 s.
async fn group_buy_settler(hub: Hub, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => if let Err(e) = hub.settle_group_buys(hub.now()).await {
                tracing::warn!(error = %e, "group-buy settling failed");
            },
        }
    }
}
