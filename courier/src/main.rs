//! `linli-courier-sim`: the local courier simulator's command line. Wiring
//! only; the simulator is `linli_courier::sim`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use linli_courier::sim::{SimCourier, serve};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "linli-courier-sim",
    version,
    about = "Local courier simulator speaking Linli's courier protocol"
)]
struct Args {
    /// Address to listen on; port 0 picks a free one (see the ready line).
    #[arg(long, default_value = "127.0.0.1:7300")]
    listen: SocketAddr,
    /// API key clients must send as `Authorization: Bearer <key>`.
    #[arg(long, env = "LINLI_COURIER_SIM_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Advance every open delivery one step every N milliseconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    auto_advance_ms: Option<u64>,
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
    let mut sim = SimCourier::new(args.api_key);
    if let Some(ms) = args.auto_advance_ms {
        sim = sim.with_auto_advance(Duration::from_millis(ms));
    }
    let mut signals = ShutdownSignals::install()?;
    let cancel = CancellationToken::new();
    let serving = serve(listener, sim, cancel.clone());
    tokio::pin!(serving);
    // machine-readable, for supervisors and tests that bind port 0: the
    // socket is bound, so connections from here on are accepted
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "linli-courier-sim listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        served = &mut serving => return served,
        () = signals.recv() => tracing::info!("signal received, shutting down"),
    }
    cancel.cancel();
    serving.await
}

/// SIGINT and SIGTERM, listened to from creation on: installed before the
/// ready line, so a supervisor that signals right after reading it still gets
/// a clean shutdown.
struct ShutdownSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
