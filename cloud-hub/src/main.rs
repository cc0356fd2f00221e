//! `linli-hub`: the chain's centre. For now it only serves its health: the
//! store node runs a whole day without it (issue 2). Sync, orders, routing
//! and stock rights arrive with the next issues (DESIGN.md §4–6).

use std::net::SocketAddr;

use axum::{Json, Router, routing::get};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "linli-hub", version, about = "Linli cloud hub")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the hub's HTTP API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn router() -> Router {
    Router::new().route(
        "/health",
        get(|| async {
            Json(serde_json::json!({
                "status": "ok",
                "version": env!("CARGO_PKG_VERSION"),
                "stores_connected": 0,
            }))
        }),
    )
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let Cli {
        cmd: Cmd::Serve { listen },
    } = Cli::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            tracing::info!(addr = %listener.local_addr()?, "hub serving");
            axum::serve(listener, router())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        })
}
