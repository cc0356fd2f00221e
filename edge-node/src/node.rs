//! Assembles a running node from its config: database, use cases, HTTP
//! server and background tasks, each owned and shut down in order.
//!
//! Shutdown order: stop accepting connections and let in-flight requests
//! finish (axum graceful shutdown), stop background tasks, then close the
//! database (queued writes commit, WAL checkpointed).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::FixedOffset;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::app::replication::SyncCtx;
use crate::app::{App, AppSettings, Clock, system_clock};
use crate::config::{Config, database_path};
use crate::http::{AppState, router};
use crate::metrics::Metrics;
use crate::uplink::SyncStatus;

/// A node that is serving. Dropping it does not stop it: call
/// [`Node::shutdown`] (or cancel the token given to [`Node::start`]).
#[must_use = "a node runs until shut down; keep the handle and call shutdown"]
#[derive(Debug)]
pub struct Node {
    pub addr: SocketAddr,
    pub app: App,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Opens the store and builds the application core (no network).
pub async fn open_app(
    config: &Config,
    data_dir: PathBuf,
    clock: Clock,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<App> {
    config.validate()?;
    linli_sync::db::create_private_dir(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let m = metrics.clone();
    let sync = Arc::new(SyncCtx::new(&config.store_id, config.part_changes));
    let s = sync.clone();
    let store = crate::store::open(
        &database_path(&data_dir),
        Some(Arc::new(move |d, n, committed| {
            m.observe_commit(d, n);
            if committed {
                s.committed();
            } else {
                s.rolled_back();
            }
        })),
    )?;
    let offset = FixedOffset::east_opt(config.utc_offset_minutes * 60)
        .context("utc_offset_minutes out of range")?;
    // the chain's member key comes with the identity (`linli-hub issue-cert`)
    let identity = config
        .identity
        .clone()
        .unwrap_or_else(|| data_dir.join("identity"));
    let chain_member_key = match std::fs::read_to_string(identity.join("member.key")) {
        Ok(hex) => Some(linli_shared::member::parse_key(&hex).with_context(|| {
            format!(
                "{} is not a 32-byte hex key",
                identity.join("member.key").display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("cannot read the identity's member.key"),
    };
    let settings = AppSettings {
        chain_member_key,
        store_id: config.store_id.clone(),
        utc_offset: offset,
        pickup_hold: chrono::Duration::hours(i64::from(config.pickup_hold_hours)),
        session_ttl: chrono::Duration::hours(i64::from(config.session_hours)),
        max_change: linli_shared::Fen(config.max_change_fen),
        login_limits: linli_shared::login_guard::LoginLimits {
            max_failures: config.login_max_failures.max(1),
            lockout: chrono::Duration::minutes(i64::from(config.login_lockout_minutes)),
            per_addr_burst: config.login_per_addr_burst.max(1),
            per_addr_per_minute: config.login_per_addr_per_minute,
        },
    };
    Ok(App::new(store, settings, clock, sync).await?)
}

/// What a node with a hub does before its link starts (and what a
/// simulation of one does): it lends the hub its share of the stock from
/// now on, trusts the hub's key for pickup QR codes, starts a new database
/// in recovery, and finishes an erasure or a coupon return a stop cut short.
pub async fn prepare_for_hub(
    app: &App,
    pickup_key: Option<ed25519_dalek::VerifyingKey>,
) -> anyhow::Result<()> {
    app.sync_ctx().set_lending(true);
    // nothing reaches the documents before the first session shows this
    // database is not behind the hub
    app.sync_ctx().await_confirmation();
    if let Some(k) = pickup_key {
        app.set_pickup_key(k);
    }
    // a new database under this store's identity recovers first
    app.init_recovery().await?;
    // an erasure done but not confirmed before a stop is confirmed now
    if let Err(e) = app.confirm_erasures().await {
        tracing::warn!(error = %e, "erasures not yet confirmed; they will be with the next notice or start");
    }
    // a coupon recall received but not answered before a stop
    if !app.sync_ctx().recovering()
        && let Err(e) = app.return_recalled_coupons().await
    {
        tracing::warn!(error = %e, "recalled coupon allotments not yet given back; they will be with the next recall or start");
    }
    Ok(())
}

impl Node {
    /// Opens everything and starts serving. `cancel` stops the node.
    pub async fn start(
        config: Config,
        data_dir: PathBuf,
        cancel: CancellationToken,
    ) -> anyhow::Result<Node> {
        Self::start_with_clock(config, data_dir, cancel, system_clock()).await
    }

    pub async fn start_with_clock(
        config: Config,
        data_dir: PathBuf,
        cancel: CancellationToken,
        clock: Clock,
    ) -> anyhow::Result<Node> {
        let metrics = Metrics::new();
        let uplink = config.uplink(&data_dir)?;
        let app = open_app(&config, data_dir, clock, &metrics).await?;
        let sync_status = Arc::new(SyncStatus::new(uplink.as_ref().map(|u| u.hub)));
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            app: app.clone(),
            metrics,
            max_body_bytes: config.max_body_bytes,
            max_csv_bytes: config.max_csv_bytes,
            sync_status: sync_status.clone(),
            hub_http: config.hub_http.clone(),
        };
        let mut tasks = JoinSet::new();
        let c = cancel.clone();
        tasks.spawn(async move {
            let serve = axum::serve(
                listener,
                router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(c.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        let (a, c) = (app.clone(), cancel.clone());
        tasks.spawn(async move { expiry_sweeper(a, c).await });
        // what a stop left in the outbox goes at once (with a hub, once the
        // first session confirmed the database: `SyncCtx::confirm`)
        app.sync_ctx().outbox_written();
        let (a, c) = (app.clone(), cancel.clone());
        tasks.spawn(async move { outbox_drainer(a, c).await });
        if let Some(url) = &config.courier_url {
            let courier = linli_courier::http::HttpCourier::new(
                config
                    .courier_name
                    .clone()
                    .unwrap_or_else(|| "courier".into()),
                url.clone(),
                config.courier_key.clone().unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("courier_url {url}: {e}"))?;
            app.set_courier(Arc::new(courier));
            let (a, c) = (app.clone(), cancel.clone());
            tasks.spawn(async move { courier_poller(a, c).await });
        }
        if let Some(u) = uplink {
            let key_file = u.identity.join("pickup.pub");
            let pickup_key = match std::fs::read_to_string(&key_file) {
                Ok(hex) => match linli_shared::pickup::verifying_key_from_hex(&hex) {
                    Some(k) => Some(k),
                    None => {
                        tracing::error!(file = %key_file.display(), "the hub's pickup key is not a valid Ed25519 key; QR hand-overs are refused");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(file = %key_file.display(), error = %e, "no hub pickup key; QR hand-overs are refused (re-issue the identity)");
                    None
                }
            };
            prepare_for_hub(&app, pickup_key).await?;
            let (a, c) = (app.clone(), cancel.clone());
            tasks.spawn(async move { crate::uplink::run(a, u, sync_status, c).await });
        }
        tracing::info!(%addr, store_id = %config.store_id, "store node serving");
        Ok(Node {
            addr,
            app,
            cancel,
            tasks,
        })
    }

    /// The token that stops this node.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits until the node is cancelled, then shuts it down in order.
    pub async fn run_until_cancelled(self) {
        self.cancel.cancelled().await;
        self.shutdown().await;
    }

    /// Stops serving (in-flight requests finish), stops background tasks,
    /// and closes the database.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
        // the last facts reach the documents before the database closes
        // (they would at the next start otherwise)
        if let Err(e) = self.app.drain_outbox().await {
            tracing::warn!(error = %e, "outbox not drained at stop; it will be at the next start");
        }
        self.app.store().shutdown().await;
        tracing::info!("store node stopped");
    }
}

/// Releases the stock held by expired pickup orders, once a minute.
async fn expiry_sweeper(app: App, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                match app.release_expired_orders().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(released = n, "expired pickup orders released their stock"),
                    Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
                }
            }
        }
    }
}

/// Follows deliveries handed to the courier, every two seconds.
async fn courier_poller(app: App, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = app.poll_courier().await {
                    tracing::warn!(error = %e, "courier poll failed");
                }
            }
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
/// Writes the outbox to the documents a moment after facts were committed
/// to it ([`crate::app::replication::DRAIN_DELAY`]), so one document change
/// carries all the facts of that moment. Runs until `cancel`; a node runs
/// one, as does anything else that writes through an [`App`] for long.
pub async fn outbox_drainer(app: App, cancel: CancellationToken) {
    use crate::app::replication::DRAIN_DELAY;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = app.sync_ctx().outbox_wait() => {}
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(DRAIN_DELAY) => {}
        }
        if let Err(e) = app.drain_outbox().await {
            tracing::warn!(error = %e, "outbox not drained; retried with the next facts");
        }
    }
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
