//! `linli`: the whole chain on one machine (a hub, three stores, a courier
//! simulator and a simulated day). Wiring only; see `linli_chain`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use linli_chain::chain::{ADMIN, Chain, Ports, REGIONAL};
use linli_chain::day::{self, DayPlan};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "linli",
    version,
    about = "Linli 全链路演示：总部、三家门店、配送模拟和模拟的一天 (the whole chain on one machine)"
)]
struct Cli {
    /// Where the chain keeps its data; a second run reuses it.
    #[arg(long, env = "LINLI_CHAIN_DIR", default_value = "linli-chain-data")]
    data_dir: PathBuf,
    /// The hub on this port (HTTP and QUIC), the stores on the next three,
    /// the courier simulator on +10; 0 picks free ports.
    #[arg(long, default_value_t = 7080)]
    port_base: u16,
    /// Milliseconds between two events of the simulated day.
    #[arg(long, default_value_t = 3000)]
    tick_ms: u64,
    /// Start the chain without the simulated day.
    #[arg(long)]
    quiet: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(cli))
}

/// Logs go to `chain.log` in the data folder (warnings also to stderr), so
/// the terminal shows the URLs and the simulated day.
fn init_logging(dir: &std::path::Path) -> anyhow::Result<()> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    linli_sync::db::create_private_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("chain.log"))?;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .with_filter(tracing_subscriber::EnvFilter::new("info")),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    init_logging(&cli.data_dir)?;
    println!(
        "正在启动绿源生活全链路演示…… (starting the chain; data in {})",
        cli.data_dir.display()
    );
    let chain = Chain::start(
        &cli.data_dir,
        Ports {
            base: cli.port_base,
        },
    )
    .await?;
    println!();
    println!("总部 · 顾客商城 (hub, customer shop):  {}/", chain.hub_url);
    println!("  总部管理员 (hub admin):  {} / {}", ADMIN.0, ADMIN.1);
    println!(
        "区域经营看板 (regional dashboard):  {}/dashboard",
        chain.hub_url
    );
    println!(
        "  区域经理 (regional manager, {}):  {} / {}",
        REGIONAL.2, REGIONAL.0, REGIONAL.1
    );
    for s in &chain.stores {
        println!("门店 {} 收银台 (store console):  {}/", s.id, s.url);
    }
    println!("  门店登录 (store logins):  收银员 cashier / 1234 · 店长 manager / 9999");
    println!(
        "  直播（店长 → 直播，总部账号）(live tab, hub account):  S001-manager / {}",
        linli_chain::chain::MANAGER_PASSWORD
    );
    println!("配送模拟 (courier simulator):  {}", chain.courier_url);
    println!(
        "支付模拟 (payment simulator):  {}  (收银台 cashier: /pay/<prepay_id>)",
        chain.pay_url
    );
    println!("数据目录 (data, reused next run):  {}", chain.dir.display());
    println!("按 Ctrl-C 停止 (Ctrl-C stops everything)");
    println!();
    // machine-readable, for tests and supervisors
    let stores: Vec<String> = chain
        .stores
        .iter()
        .map(|s| format!("{}={}", s.id, s.url))
        .collect();
    println!(
        "linli chain listening on {} {}",
        chain.hub_url,
        stores.join(" ")
    );

    let cancel = CancellationToken::new();
    let plan = DayPlan {
        tick: Duration::from_millis(cli.tick_ms.max(50)),
        ..DayPlan::default()
    };
    let result = tokio::select! {
        r = day::run(&chain, plan, cancel.clone()), if !cli.quiet => r,
        _ = linli_edge::node::shutdown_signal() => Ok(()),
    };
    cancel.cancel();
    println!("正在停止…… (stopping)");
    chain.shutdown().await;
    println!("已停止 (stopped)");
    result
}
