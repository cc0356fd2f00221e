//! `linli-install`: prepares a store PC for the node. For now it shows where
//! a node keeps its files and writes a first config file; enrolment with the
//! hub by one-time token comes with the hub (DESIGN.md §9).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "linli-install",
    version,
    about = "Set a Linli store node up on this PC"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print where the node keeps its config, data and logs on this PC.
    Paths,
    /// Write the node's config file for a store (refuses to overwrite).
    Init {
        #[arg(long)]
        store_id: String,
        /// Where to write it; default: the platform config directory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn dirs() -> anyhow::Result<directories::ProjectDirs> {
    directories::ProjectDirs::from("com", "linli", "linli-edge")
        .context("this user has no home directory; pass --out")
}

fn valid_store_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Paths => {
            let d = dirs()?;
            println!("config: {}", d.config_dir().join("edge.toml").display());
            println!("data:   {}", d.data_dir().display());
            println!("logs:   {}", d.data_dir().join("logs").display());
        }
        Cmd::Init { store_id, out } => {
            anyhow::ensure!(
                valid_store_id(&store_id),
                "store id {store_id:?} is invalid: use 1-16 characters of A-Z, 0-9, '-' or '_'"
            );
            let path = match out {
                Some(p) => p,
                None => dirs()?.config_dir().join("edge.toml"),
            };
            anyhow::ensure!(
                !path.exists(),
                "{} exists; not overwriting it",
                path.display()
            );
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(
                &path,
                format!(
                    "# Linli store node\nstore_id = \"{store_id}\"\nlisten = \"127.0.0.1:7070\"\n"
                ),
            )?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
