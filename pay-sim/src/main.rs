//! `linli-pay-sim`: the local payment simulator's command line. Wiring
//! only; the simulator is `linli_pay::sim`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use linli_pay::sim::{Limits, SimPay, serve};
use linli_pay::wire::Faults;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "linli-pay-sim",
    version,
    about = "Local payment simulator shaped like WeChat Pay API v3"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (see the ready line).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Merchant key: API calls send it as `Authorization: Bearer <key>` and
    /// notifications are signed with it (HMAC-SHA256).
    #[arg(long, env = "LINLI_PAY_SIM_KEY", hide_env_values = true)]
    key: String,
    /// Least time between two refunds of one order, milliseconds
    /// (WeChat Pay: one minute).
    #[arg(long, default_value_t = 60_000)]
    refund_spacing_ms: u64,
    /// Most refunds of one order.
    #[arg(long, default_value_t = 50)]
    max_refunds: usize,
    /// Wait before sending an unacknowledged notification again, ms.
    #[arg(long, default_value_t = 1_000)]
    notify_retry_ms: u64,
    /// Share of refund requests (0-1) answered 500 SYSTEM_ERROR.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Send every notification this many times (duplicates).
    #[arg(long, default_value_t = 1)]
    notification_copies: u32,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // stdout carries only the ready line; logs go to stderr
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.listen))
        })?;
    let addr = listener.local_addr()?;
    let sim = SimPay::new(args.key)
        .with_limits(Limits {
            max_refunds: args.max_refunds,
            spacing: chrono::Duration::milliseconds(args.refund_spacing_ms as i64),
        })
        .with_notify_retry(Duration::from_millis(args.notify_retry_ms));
    sim.set_faults(
        Faults {
            refund_fail_rate: args.fail_rate,
            notification_copies: args.notification_copies,
        },
        11,
    );
    let cancel = CancellationToken::new();
    let serving = serve(listener, sim, cancel.clone());
    tokio::pin!(serving);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "linli-pay-sim listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        served = &mut serving => return served,
        () = shutdown_signal() => tracing::info!("signal received, shutting down"),
    }
    cancel.cancel();
    serving.await
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
