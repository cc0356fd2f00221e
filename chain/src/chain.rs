//! Starting and stopping the chain: the payment simulator, the hub (with
//! its admin, the stores' certificates, the catalog and the store
//! directory; online orders are paid through the simulator), then the
//! courier simulator, then each store behind its own link relay; stopped in
//! the reverse order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use linli_courier::sim::SimCourier;
use linli_edge::config::{Config, database_path};
use linli_edge::node::Node;
use linli_hub::auth::Role;
use linli_hub::hub::{HubPaths, add_regional_manager, add_store_manager, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_hub::settings::OrderSettings;

use tokio_util::sync::CancellationToken;

use crate::link::{LinkMode, UdpProxy};

/// The stores the demo runs (ids of the reference data).
pub const STORES: [&str; 3] = ["S001", "S002", "S003"];

/// The hub's demo administrator.
pub const ADMIN: (&str, &str) = ("admin", "linli-admin");

/// The regional manager of 杭州西区 (S001's region): logs in to the hub's
/// `/dashboard` and sees that region's stores.
pub const REGIONAL: (&str, &str, &str) = ("west-manager", "linli-region", "杭州西区");

/// Each store manager's hub account (runs the store's live sessions from
/// the console's 直播 tab): name `<store>-manager`, this password.
pub const MANAGER_PASSWORD: &str = "linli-manager";

/// The courier simulator's API key.
const COURIER_KEY: &str = "linli-demo-courier";

/// The payment simulator's merchant key.
const PAY_KEY: &str = "linli-demo-pay";

/// The store directory (names, locations, service areas) of the reference data.
const STORES_CSV: &[u8] = include_bytes!("../../data/stores.csv");

/// Where each part listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// 0: every part on a free port. Otherwise the hub's HTTP on `base`, its
    /// QUIC on `base` (UDP), the stores on `base + 1..`, the courier on
    /// `base + 10`, the payment simulator on `base + 11`.
    pub base: u16,
}

impl Ports {
    fn at(self, offset: u16) -> SocketAddr {
        let port = if self.base == 0 {
            0
        } else {
            self.base + offset
        };
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

/// One running store.
#[derive(Debug)]
pub struct StoreRun {
    pub id: String,
    pub url: String,
    link: UdpProxy,
    node: Node,
}

/// The running chain. Call [`Chain::shutdown`] to stop it.
#[derive(Debug)]
pub struct Chain {
    pub dir: PathBuf,
    pub hub_url: String,
    pub courier_url: String,
    /// The payment simulator (its cashier pages are at `/pay/{prepay_id}`).
    pub pay_url: String,
    pub stores: Vec<StoreRun>,
    hub: HubServer,
    courier: tokio::task::JoinHandle<()>,
    pay: tokio::task::JoinHandle<()>,
    pay_cancel: CancellationToken,
    cancel: CancellationToken,
}

impl Chain {
    /// Starts every part on the data in `dir` (created on the first run).
    pub async fn start(dir: &Path, ports: Ports) -> anyhow::Result<Chain> {
        linli_sync::db::create_private_dir(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let cancel = CancellationToken::new();
        let paths = HubPaths {
            data_dir: dir.join("hub"),
        };
        linli_sync::db::create_private_dir(&paths.data_dir)?;
        {
            let conn = open_conn(&paths.db())?;
            let exists: bool = conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
                [ADMIN.0],
                |r| r.get(0),
            )?;
            if !exists {
                add_user(&conn, ADMIN.0, Role::Admin, ADMIN.1)?;
            }
            let exists: bool = conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
                [REGIONAL.0],
                |r| r.get(0),
            )?;
            if !exists {
                add_regional_manager(&conn, REGIONAL.0, REGIONAL.2, REGIONAL.1)?;
            }
            for id in STORES {
                let name = format!("{id}-manager");
                let exists: bool = conn.query_row(
                    "SELECT EXISTS(SELECT 1 FROM users WHERE name = ?1)",
                    [&name],
                    |r| r.get(0),
                )?;
                if !exists {
                    add_store_manager(&conn, &name, id, MANAGER_PASSWORD)?;
                }
            }
        }
        let pay_listener = tokio::net::TcpListener::bind(ports.at(11)).await?;
        let pay_url = format!("http://{}", pay_listener.local_addr()?);
        let pay_cancel = CancellationToken::new();
        let c = pay_cancel.clone();
        let pay = tokio::spawn(async move {
            let sim = linli_pay::sim::SimPay::new(PAY_KEY);
            if let Err(e) = linli_pay::sim::serve(pay_listener, sim, c).await {
                tracing::error!(error = %e, "payment simulator failed");
            }
        });
        // the consoles call the hub for live sessions (their origins are
        // known only with fixed ports; with --port-base 0 the live tab says
        // the hub cannot be reached)
        let console_origins = (1..=STORES.len() as u16)
            .filter(|_| ports.base != 0)
            .flat_map(|i| {
                let port = ports.at(i).port();
                [
                    format!("http://localhost:{port}"),
                    format!("http://127.0.0.1:{port}"),
                ]
            })
            .collect();
        let hub = HubServer::start_with(
            &paths,
            ports.at(0),
            ports.at(0),
            &[],
            OrderSettings {
                console_origins,
                payment: Some(linli_hub::settings::PaySettings::new(
                    linli_pay::HttpPay::new(&pay_url, PAY_KEY)?,
                    PAY_KEY,
                )),
                ..OrderSettings::default()
            },
        )
        .await?;
        let hub_url = format!("http://{}", hub.http_addr);
        let http = reqwest::Client::new();
        let token = crate::calls::admin_token(&http, &hub_url).await?;
        upload(
            &http,
            &hub_url,
            &token,
            "/api/v1/catalog/import",
            linli_edge::demo::SAMPLE_CATALOG,
        )
        .await?;
        upload(&http, &hub_url, &token, "/api/v1/stores/import", STORES_CSV).await?;

        let listener = tokio::net::TcpListener::bind(ports.at(10)).await?;
        let courier_url = format!("http://{}", listener.local_addr()?);
        let sim = SimCourier::new(COURIER_KEY).with_auto_advance(Duration::from_secs(20));
        let c = cancel.clone();
        let courier = tokio::spawn(async move {
            if let Err(e) = linli_courier::sim::serve(listener, sim, c).await {
                tracing::error!(error = %e, "courier simulator failed");
            }
        });

        let mut stores = Vec::new();
        for (i, id) in STORES.iter().enumerate() {
            let store_dir = dir.join(id);
            let identity = store_dir.join("identity");
            if !identity.join("store.pem").exists() {
                linli_sync::db::create_private_dir(&store_dir)?;
                linli_sync::tls::Ca::load_or_create(&paths.ca_dir())?.issue_store(id, &identity)?;
                let key = linli_hub::signing::load_or_create(&paths.signing_key())?;
                linli_hub::signing::write_public(&key, &identity)?;
                // the chain's member key, as `linli-hub issue-cert` writes
                // it: the hub can then tie a counter member to a customer
                let member = linli_hub::signing::load_or_create_secret(&paths.member_key())?;
                linli_hub::signing::write_member_key(&member, &identity)?;
            }
            linli_sync::db::create_private_dir(&store_dir)?;
            linli_edge::demo::ensure_demo_staff(&database_path(&store_dir))?;
            let link = UdpProxy::start(hub.quic_addr, i as u64 + 1)?;
            let config = Config {
                store_id: (*id).to_owned(),
                listen: ports.at(1 + i as u16),
                data_dir: Some(store_dir.clone()),
                hub: Some(link.addr().to_string()),
                identity: Some(identity),
                courier_url: Some(courier_url.clone()),
                courier_key: Some(COURIER_KEY.to_owned()),
                hub_http: Some(hub_url.clone()),
                ..Config::default()
            };
            let node = Node::start(config, store_dir, cancel.child_token()).await?;
            linli_edge::demo::seed(&node.app).await?;
            stores.push(StoreRun {
                id: (*id).to_owned(),
                url: format!("http://{}", node.addr),
                link,
                node,
            });
        }
        Ok(Chain {
            dir: dir.to_owned(),
            hub_url,
            courier_url,
            pay_url,
            stores,
            hub,
            courier,
            pay,
            pay_cancel,
            cancel,
        })
    }

    /// Cuts or heals a store's link to the hub.
    pub fn set_link(&self, store: &str, up: bool) {
        if let Some(s) = self.stores.iter().find(|s| s.id == store) {
            s.link
                .set_mode(if up { LinkMode::Up } else { LinkMode::Cut });
        }
    }

    /// The courier simulator's key (for stores and the simulated day).
    pub fn courier_key(&self) -> &'static str {
        COURIER_KEY
    }

    /// Stops the stores, the courier, the hub and the payment simulator, in
    /// that order.
    pub async fn shutdown(self) {
        for s in self.stores {
            s.node.shutdown().await;
            drop(s.link);
        }
        self.cancel.cancel();
        let _ = self.courier.await;
        self.hub.shutdown().await;
        self.pay_cancel.cancel();
        let _ = self.pay.await;
    }
}

async fn upload(
    http: &reqwest::Client,
    hub: &str,
    token: &str,
    path: &str,
    csv: &'static [u8],
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{hub}{path}"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "{path}: {} {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
    Ok(())
}
