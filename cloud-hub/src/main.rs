//! `linli-hub`: the hub's command line. Wiring only.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use linli_hub::auth::Role;
use linli_hub::hub::{HubPaths, add_regional_manager, add_store_manager, add_user, open_conn};
use linli_hub::server::HubServer;
use linli_hub::settings::OrderSettings;

#[derive(Parser, Debug)]
#[command(name = "linli-hub", version, about = "Linli cloud hub")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the HTTP API and the QUIC sync endpoint.
    Serve {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "0.0.0.0:4433")]
        quic: SocketAddr,
        /// Extra DNS names or IPs for the hub's certificate.
        #[arg(long)]
        name: Vec<String>,
        /// Discount for picking up an online order, percent of the goods.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i64).range(0..=50))]
        pickup_discount_pct: i64,
        /// Delivery fee, fen.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(i64).range(0..=100_000))]
        delivery_fee_fen: i64,
        /// How long a pickup order waits for its customer (and its code stays valid), hours.
        #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(i64).range(1..=720))]
        pickup_hold_hours: i64,
        /// Most units of one SKU (kg for weighed products) a customer may hold in open orders.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        max_open_units_per_sku: i64,
        /// Wrong passwords in a row that lock a hub user name.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        login_max_failures: u32,
        /// How long a locked hub user name stays locked, minutes.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i64).range(0..=1440))]
        login_lockout_minutes: i64,
        /// Login attempts one client address regains per minute (10 at once).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        login_per_addr_per_minute: u32,
        /// Customer sessions one client address may open per minute (as many at once).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        sessions_per_addr_per_minute: u32,
        #[command(flatten)]
        pay: PayArgs,
        /// Origin of a store console allowed to call the hub from the
        /// browser (its live tab), e.g. `http://192.168.1.20:7070`; repeat
        /// for each store.
        #[arg(long)]
        console_origin: Vec<String>,
    },
    /// Issue a store's certificate (store.pem, store.key, ca.pem) into --out.
    /// A revoked store id is refused unless --reinstate is given.
    IssueCert {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        store: String,
        #[arg(long)]
        out: PathBuf,
        /// Lift the store's revocation and admit it again (every certificate
        /// of this store id, old ones included).
        #[arg(long)]
        reinstate: bool,
    },
    /// Revoke a store's certificate; a running hub cuts its live connection
    /// within a second and refuses it from then on.
    Revoke {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        store: String,
    },
    /// Manage hub users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
}

/// Online payment. Without `--pay-url` orders go to their store unpaid.
#[derive(clap::Args, Debug)]
struct PayArgs {
    /// The payment provider's API (e.g. `linli-pay-sim`'s http://127.0.0.1:7400).
    #[arg(long, requires = "pay_key")]
    pay_url: Option<String>,
    /// The merchant key: API auth and the notifications' signature.
    #[arg(long, env = "LINLI_HUB_PAY_KEY", hide_env_values = true)]
    pay_key: Option<String>,
    /// Where the provider sends notifications; default this hub's
    /// `/api/v1/pay/notify` on its listening address.
    #[arg(long)]
    pay_notify_url: Option<String>,
    /// An order unpaid this long is cancelled and its rights released, seconds.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(i64).range(1..=86_400))]
    unpaid_timeout_secs: i64,
    /// How often unpaid orders are looked at, milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=600_000))]
    unpaid_sweep_ms: u64,
    /// Least time between two refunds of one payment, milliseconds (WeChat Pay: 60000).
    #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(i64).range(0..=3_600_000))]
    refund_spacing_ms: i64,
    /// Wait after a failed refund attempt, doubling per failure, milliseconds.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(i64).range(1..=600_000))]
    refund_backoff_ms: i64,
    /// The refund worker looks at its queue at least this often, milliseconds.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(5..=600_000))]
    refund_tick_ms: u64,
}

impl PayArgs {
    fn settings(self) -> anyhow::Result<Option<linli_hub::settings::PaySettings>> {
        let (Some(url), Some(key)) = (self.pay_url, self.pay_key) else {
            return Ok(None);
        };
        let provider = linli_pay::HttpPay::new(&url, &key)?;
        let mut s = linli_hub::settings::PaySettings::new(provider, key);
        s.notify_url = self.pay_notify_url;
        s.unpaid_timeout = chrono::Duration::seconds(self.unpaid_timeout_secs);
        s.sweep_every = std::time::Duration::from_millis(self.unpaid_sweep_ms);
        s.refund_limits.spacing = chrono::Duration::milliseconds(self.refund_spacing_ms);
        s.backoff.base = chrono::Duration::milliseconds(self.refund_backoff_ms);
        s.refund_tick = std::time::Duration::from_millis(self.refund_tick_ms);
        Ok(Some(s))
    }
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    Add {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = |s: &str| Role::parse(s).ok_or("role must be admin, regional or manager"))]
        role: Role,
        /// The store of a `manager` (runs that store's live sessions).
        #[arg(long)]
        store: Option<String>,
        /// The region of a `regional` manager (the `region` column of the
        /// store directory, e.g. 杭州西区).
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        password: String,
    },
}

fn paths(data_dir: Option<PathBuf>) -> anyhow::Result<HubPaths> {
    let data_dir =
        match data_dir.or_else(|| std::env::var_os("LINLI_HUB_DATA_DIR").map(PathBuf::from)) {
            Some(d) => d,
            None => directories::ProjectDirs::from("com", "linli", "linli-hub")
                .context("no home directory; pass --data-dir")?
                .data_dir()
                .to_owned(),
        };
    linli_sync::db::create_private_dir(&data_dir)?;
    Ok(HubPaths { data_dir })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve {
            data_dir,
            listen,
            quic,
            name,
            pickup_discount_pct,
            delivery_fee_fen,
            pickup_hold_hours,
            max_open_units_per_sku,
            login_max_failures,
            login_lockout_minutes,
            login_per_addr_per_minute,
            sessions_per_addr_per_minute,
            pay,
            console_origin,
        } => {
            let orders = OrderSettings {
                payment: pay.settings()?,
                pickup_discount_pct,
                delivery_fee_fen,
                pickup_hold: chrono::Duration::hours(pickup_hold_hours),
                max_open_units_per_sku,
                login: linli_shared::login_guard::LoginLimits {
                    max_failures: login_max_failures,
                    lockout: chrono::Duration::minutes(login_lockout_minutes),
                    per_addr_burst: 10,
                    per_addr_per_minute: login_per_addr_per_minute,
                },
                sessions_per_addr_burst: sessions_per_addr_per_minute,
                sessions_per_addr_per_minute,
                console_origins: console_origin,
                ..OrderSettings::default()
            };
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            let paths = paths(data_dir)?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(serve(paths, listen, quic, name, orders))
        }
        Cmd::IssueCert {
            data_dir,
            store,
            out,
            reinstate,
        } => {
            let paths = paths(data_dir)?;
            let ca = linli_sync::tls::Ca::load_or_create(&paths.ca_dir())?;
            if ca.is_revoked(&store)? {
                if !reinstate {
                    anyhow::bail!(
                        "门店 {store} 已被吊销，不签发证书；确需恢复请加 --reinstate \
                         (store {store} is revoked; pass --reinstate to admit it again)"
                    );
                }
                ca.issue_store(&store, &out)?;
                ca.reinstate(&store)?;
                println!("reinstated store {store}");
            } else {
                ca.issue_store(&store, &out)?;
            }
            // the store verifies pickup QR codes with the hub's public key
            let key = linli_hub::signing::load_or_create(&paths.signing_key())?;
            linli_hub::signing::write_public(&key, &out)?;
            // stores hash member phones under the chain's key (DESIGN.md §8)
            let member = linli_hub::signing::load_or_create_secret(&paths.member_key())?;
            linli_hub::signing::write_member_key(&member, &out)?;
            println!(
                "issued certificate for store {store} into {}",
                out.display()
            );
            Ok(())
        }
        Cmd::Revoke { data_dir, store } => {
            let paths = paths(data_dir)?;
            linli_sync::tls::Ca::load(&paths.ca_dir())?.revoke(&store)?;
            println!("revoked store {store}");
            Ok(())
        }
        Cmd::User {
            cmd:
                UserCmd::Add {
                    data_dir,
                    name,
                    role,
                    store,
                    region,
                    password,
                },
        } => {
            let paths = paths(data_dir)?;
            let conn = open_conn(&paths.db())?;
            match (role, store, region) {
                (Role::Manager, Some(store), None) => {
                    add_store_manager(&conn, &name, &store, &password)?
                }
                (Role::Manager, None, _) => anyhow::bail!("a manager needs --store <store id>"),
                (Role::Regional, None, Some(region)) => {
                    add_regional_manager(&conn, &name, &region, &password)?
                }
                (Role::Regional, _, None) => {
                    anyhow::bail!("a regional manager needs --region <region, e.g. 杭州西区>")
                }
                (_, Some(_), _) => anyhow::bail!("--store is only for --role manager"),
                (_, _, Some(_)) => anyhow::bail!("--region is only for --role regional"),
                (Role::Admin, None, None) => add_user(&conn, &name, role, &password)?,
            }
            println!("added {} {name}", role.as_str());
            Ok(())
        }
    }
}

async fn serve(
    paths: HubPaths,
    listen: SocketAddr,
    quic: SocketAddr,
    names: Vec<String>,
    orders: OrderSettings,
) -> anyhow::Result<()> {
    let server = HubServer::start_with(&paths, listen, quic, &names, orders).await?;
    // machine-readable, for supervisors and tests that bind port 0
    println!(
        "linli-hub listening on http://{} quic {}",
        server.http_addr, server.quic_addr
    );
    shutdown_signal().await;
    tracing::info!("signal received, shutting down");
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
