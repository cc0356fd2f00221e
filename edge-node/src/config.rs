//! The node's configuration: a documented TOML file, overridden by flags.
//!
//! Paths resolve config value → `LINLI_DATA_DIR` / `LINLI_LOG_DIR`
//! environment → the platform's directories (`directories` crate), so a store
//! PC needs no configuration at all to start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything `linli-edge serve` reads from its config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This store's id as the chain knows it (e.g. `S001`); printed on every
    /// ticket number.
    pub store_id: String,
    /// Address the HTTP API and console listen on.
    pub listen: SocketAddr,
    /// Where the database lives. Default: the platform data directory.
    pub data_dir: Option<PathBuf>,
    /// Where the JSON log file goes (logs also go to stderr). Default:
    /// `LINLI_LOG_DIR`, else `logs/` inside the data directory.
    pub log_dir: Option<PathBuf>,
    /// Store local time offset from UTC in minutes (China: 480). Business
    /// days and ticket numbers follow it.
    pub utc_offset_minutes: i32,
    /// How long a pickup order is held for its customer, in hours.
    pub pickup_hold_hours: u32,
    /// How long a staff login lasts, in hours.
    pub session_hours: u32,
    /// Wrong PINs in a row that lock a staff name.
    pub login_max_failures: u32,
    /// How long a locked staff name stays locked, in minutes.
    pub login_lockout_minutes: u32,
    /// Login attempts one client address may make at once.
    pub login_per_addr_burst: u32,
    /// Login attempts one client address regains per minute.
    pub login_per_addr_per_minute: u32,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest catalog CSV upload, in bytes.
    pub max_csv_bytes: usize,
    /// The most change a sale may give back, in fen (default ¥1,000): cash
    /// tendered may be at most the total plus this.
    pub max_change_fen: i64,
    /// The hub's QUIC address `HOST:PORT`; without it the node runs alone.
    pub hub: Option<String>,
    /// Name the hub's certificate must carry (default `localhost`).
    pub hub_name: Option<String>,
    /// The hub's HTTP base URL (e.g. `https://hub.example.com`): the
    /// console's live tab signs the store manager in to the hub there and
    /// calls it from the browser (the hub lists this console's origin in
    /// `--console-origin`). Without it the live tab says the hub is not set.
    pub hub_http: Option<String>,
    /// Directory with the store's identity from `linli-hub issue-cert`
    /// (`store.pem`, `store.key`, `ca.pem`, and `pickup.pub`, the hub's key
    /// for pickup QR codes). Default: `identity/` in the data directory.
    pub identity: Option<PathBuf>,
    /// Base URL of the third-party courier that takes deliveries when no
    /// rider of the store is free (`linli-courier-sim` speaks its protocol).
    /// Without it, only the store's own riders deliver.
    pub courier_url: Option<String>,
    /// The courier account's API key (keep the config file 0600).
    pub courier_key: Option<String>,
    /// Name the courier is recorded under (default `courier`).
    pub courier_name: Option<String>,
    /// Changes per part of a day's ledger and stock documents before the
    /// next part (docs/DECISIONS.md, "Bounded documents"). Leave it at the
    /// default; tests lower it to see parts roll.
    pub part_changes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            store_id: "S001".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: None,
            log_dir: None,
            utc_offset_minutes: 480,
            pickup_hold_hours: 72,
            session_hours: 12,
            login_max_failures: 5,
            login_lockout_minutes: 15,
            login_per_addr_burst: 10,
            login_per_addr_per_minute: 10,
            max_body_bytes: 256 * 1024,
            max_csv_bytes: 8 * 1024 * 1024,
            max_change_fen: linli_shared::sale::DEFAULT_MAX_CHANGE_FEN,
            hub: None,
            hub_name: None,
            hub_http: None,
            identity: None,
            courier_url: None,
            courier_key: None,
            courier_name: None,
            part_changes: linli_shared::docs::PART_CHANGES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("store_id {0:?} is invalid: use 1-16 characters of A-Z, 0-9, '-' or '_'")]
    StoreId(String),
    #[error("utc_offset_minutes {0} is out of range (-720..=840)")]
    Offset(i32),
    #[error("no data directory: set data_dir, LINLI_DATA_DIR or a home directory")]
    NoDataDir,
    #[error("part_changes {0} is out of range (1..=100000)")]
    PartChanges(u64),
    #[error("max_change_fen {0} is out of range (0..=10000000, at most ¥100,000)")]
    MaxChange(i64),
    #[error("hub address {0:?} does not resolve; use HOST:PORT")]
    Hub(String),
}

impl Config {
    /// Reads a config file. Without `path`, reads `edge.toml` in the
    /// platform config directory if there is one, else uses all defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let default_file = directories::ProjectDirs::from("com", "linli", "linli-edge")
            .map(|p| p.config_dir().join("edge.toml"))
            .filter(|p| p.is_file());
        let Some(path) = path.map(Path::to_owned).or(default_file) else {
            return Ok(Config::default());
        };
        let path = path.as_path();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !linli_shared::ticket::valid_store_id(&self.store_id) {
            return Err(ConfigError::StoreId(self.store_id.clone()));
        }
        if !(-720..=840).contains(&self.utc_offset_minutes) {
            return Err(ConfigError::Offset(self.utc_offset_minutes));
        }
        if !(1..=100_000).contains(&self.part_changes) {
            return Err(ConfigError::PartChanges(self.part_changes));
        }
        if !(0..=10_000_000).contains(&self.max_change_fen) {
            return Err(ConfigError::MaxChange(self.max_change_fen));
        }
        Ok(())
    }

    /// The hub link settings, if a hub is configured.
    pub fn uplink(
        &self,
        data_dir: &Path,
    ) -> Result<Option<crate::uplink::UplinkConfig>, ConfigError> {
        let Some(hub) = &self.hub else {
            return Ok(None);
        };
        use std::net::ToSocketAddrs;
        let addr = hub
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ConfigError::Hub(hub.clone()))?;
        Ok(Some(crate::uplink::UplinkConfig {
            hub: addr,
            server_name: self.hub_name.clone().unwrap_or_else(|| "localhost".into()),
            identity: self
                .identity
                .clone()
                .unwrap_or_else(|| data_dir.join("identity")),
        }))
    }

    /// The data directory: config, then `LINLI_DATA_DIR`, then the platform default.
    pub fn resolve_data_dir(&self) -> Result<PathBuf, ConfigError> {
        resolve_data_dir(self.data_dir.as_deref())
    }
}

/// Resolves a data directory the same way `serve` does (shared with the CLI).
pub fn resolve_data_dir(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    if let Some(d) = explicit {
        return Ok(d.to_owned());
    }
    if let Some(d) = std::env::var_os("LINLI_DATA_DIR") {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("com", "linli", "linli-edge")
        .map(|p| p.data_dir().to_owned())
        .ok_or(ConfigError::NoDataDir)
}

/// The log directory: config, then `LINLI_LOG_DIR`, then `<data_dir>/logs`
/// (so one folder holds everything of a store, for backup and support).
pub fn resolve_log_dir(explicit: Option<&Path>, data_dir: &Path) -> PathBuf {
    explicit
        .map(Path::to_owned)
        .or_else(|| std::env::var_os("LINLI_LOG_DIR").map(PathBuf::from))
        .unwrap_or_else(|| data_dir.join("logs"))
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_file_and_rejects_unknown_keys() {
        let c: Config = toml::from_str("store_id = \"S007\"\nlisten = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.store_id, "S007");
        assert_eq!(c.pickup_hold_hours, 72);
        assert!(toml::from_str::<Config>("stor_id = \"S007\"").is_err());
        let bad = Config {
            store_id: "s 1".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
