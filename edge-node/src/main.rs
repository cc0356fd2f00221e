//! `linli-edge`: the store node's command line. Wiring only.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use linli_edge::app::Role;
use linli_edge::config::{Config, database_path, resolve_data_dir, resolve_log_dir};
use linli_edge::node::{Node, shutdown_signal};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(name = "linli-edge", version, about = "Linli store node")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the node: HTTP API on --listen, database in --data-dir.
    Serve(ServeArgs),
    /// Run a demo store: sample catalog, opening stock, staff cashier/1234 and manager/9999.
    Demo(ServeArgs),
    /// Manage staff.
    Staff {
        #[command(subcommand)]
        cmd: StaffCmd,
    },
    /// After restoring the database from a backup (node stopped): on its
    /// next start the node records nothing until it has recovered from the
    /// hub what the store wrote since the backup.
    Recover {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// TOML config file; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[arg(long)]
    store_id: Option<String>,
    /// The hub's QUIC address HOST:PORT.
    #[arg(long)]
    hub: Option<String>,
    /// The hub's HTTP base URL, for the console's live tab.
    #[arg(long)]
    hub_http: Option<String>,
    /// Directory with this store's certificate (from `linli-hub issue-cert`).
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Base URL of the courier for deliveries no rider is free for.
    #[arg(long)]
    courier_url: Option<String>,
    /// The courier's API key (or LINLI_COURIER_KEY).
    #[arg(long, env = "LINLI_COURIER_KEY")]
    courier_key: Option<String>,
}

#[derive(Subcommand, Debug)]
enum StaffCmd {
    /// Add a staff member with a PIN (4-8 digits).
    Add {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        pin: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "role must be cashier or manager".into())
}

fn load(args: &ServeArgs) -> anyhow::Result<(Config, PathBuf)> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config.data_dir = Some(d.clone());
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(s) = &args.store_id {
        config.store_id = s.clone();
    }
    if let Some(h) = &args.hub {
        config.hub = Some(h.clone());
    }
    if let Some(h) = &args.hub_http {
        config.hub_http = Some(h.clone());
    }
    if let Some(i) = &args.identity {
        config.identity = Some(i.clone());
    }
    if let Some(u) = &args.courier_url {
        config.courier_url = Some(u.clone());
    }
    if let Some(k) = &args.courier_key {
        config.courier_key = Some(k.clone());
    }
    config.validate()?;
    let data_dir = config.resolve_data_dir()?;
    Ok((config, data_dir))
}

/// Human-readable logs on stderr, structured JSON lines in the log file.
fn init_logging(config: &Config, data_dir: &std::path::Path) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let dir = resolve_log_dir(config.log_dir.as_deref(), data_dir);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("linli-edge.log"))?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::sync::Mutex::new(file)),
        )
        .init();
    Ok(())
}

async fn serve(args: ServeArgs, demo: bool) -> anyhow::Result<()> {
    let (config, data_dir) = load(&args)?;
    init_logging(&config, &data_dir)?;
    if demo {
        linli_sync::db::create_private_dir(&data_dir)?;
        linli_edge::demo::ensure_demo_staff(&database_path(&data_dir))?;
    }
    let cancel = CancellationToken::new();
    let node = Node::start(config, data_dir.clone(), cancel.clone()).await?;
    if demo {
        linli_edge::demo::seed(&node.app).await?;
        println!(
            "Linli demo store {} at http://{}  (data in {})\n  staff: cashier / PIN 1234, manager / PIN 9999\n  try:  curl -s http://{}/health",
            node.app.settings().store_id,
            node.addr,
            data_dir.display(),
            node.addr
        );
    }
    // machine-readable, for supervisors and tests that bind port 0; printed
    // once the node is ready (after the demo data is loaded)
    println!("linli-edge listening on http://{}", node.addr);
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("signal received, shutting down"),
        _ = cancel.cancelled() => {}
    }
    node.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Serve(args) => run(serve(args, false)),
        Cmd::Demo(mut args) => {
            if args.data_dir.is_none() && std::env::var_os("LINLI_DATA_DIR").is_none() {
                args.data_dir = Some(PathBuf::from("linli-demo-data"));
            }
            run(serve(args, true))
        }
        Cmd::Staff {
            cmd:
                StaffCmd::Add {
                    data_dir,
                    name,
                    role,
                    pin,
                },
        } => {
            let dir = resolve_data_dir(data_dir.as_deref())?;
            linli_sync::db::create_private_dir(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let conn = linli_edge::store::open_writer_conn(&database_path(&dir))?;
            linli_edge::app::staff::add_staff(&conn, &name, role, &pin)?;
            println!("added {} {name}", role.as_str());
            Ok(())
        }
        Cmd::Recover { data_dir } => {
            let dir = resolve_data_dir(data_dir.as_deref())?;
            let db = database_path(&dir);
            anyhow::ensure!(
                db.exists(),
                "no database at {} (a new PC recovers by itself on its first start)",
                db.display()
            );
            let conn = linli_edge::store::open_writer_conn(&db)?;
            linli_edge::app::recovery::mark_pending(&conn)?;
            println!(
                "{} will recover from the hub on its next start, before it records anything",
                db.display()
            );
            Ok(())
        }
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}
