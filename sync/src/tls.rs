//! Mutual TLS between stores and the hub (DESIGN.md §4 and §9).
//!
//! The hub runs its own certificate authority ([`Ca`]). At enrolment it issues
//! each store a client certificate whose subject CN is the store id, and it
//! issues itself a server certificate. Both sides then speak QUIC with mutual
//! TLS: the store checks the hub against the CA, and the hub refuses any
//! client that does not present a certificate from the same CA.
//!
//! The invariant this module keeps: **the hub learns which store it talks to
//! only from the verified peer certificate** ([`peer_store_id`]), never from
//! anything the store says in its messages.
//!
//! Revocation is a list of store ids next to the CA (`revoked.txt`), checked by
//! the hub right after the handshake ([`Ca::admit_peer`]). Refusing revoked
//! certificates inside the TLS verifier, from a CRL
//! (`WebPkiClientVerifier::builder(..).with_crls(..)`), is the later
//! improvement: it would refuse by serial number rather than by id, and before
//! the store has a connection at all.
//!
//! Reconnect storms are throttled by a [`HandshakeLimiter`] in the hub's accept
//! loop and absorbed by a 4 MB UDP receive buffer on the hub's socket
//! ([`HUB_RECV_BUFFER`], see NOTES-crates.md).

mod ca;
mod config;
mod endpoint;
mod files;
mod identity;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use ca::Ca;
pub use config::{TransportSettings, client_config, server_config};
pub use endpoint::{
    HUB_RECV_BUFFER, HandshakeLimiter, bind_udp, client_endpoint, connect, server_endpoint,
};
pub use identity::{StoreIdentity, peer_store_id};

/// The ALPN protocol both sides must offer; a peer speaking anything else is
/// refused during the handshake.
pub const ALPN: &[u8] = b"linli-sync/2";

/// QUIC application close code the hub uses when it refuses a store whose
/// certificate is valid but whose id has been revoked.
pub const CLOSE_REVOKED: u32 = 0x4c01;

/// Longest store id accepted, in bytes (ids are ASCII).
pub const MAX_STORE_ID_LEN: usize = 16;

/// Everything that can go wrong while managing certificates or setting up
/// mutually authenticated QUIC endpoints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A store id is empty, too long, or contains characters other than
    /// `A-Z`, `0-9`, `-` and `_`.
    #[error(
        "invalid store id {id:?}: expected 1 to {MAX_STORE_ID_LEN} characters of A-Z, 0-9, '-' or '_'"
    )]
    InvalidStoreId {
        /// The rejected id, as given.
        id: String,
    },

    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A PEM file could not be decoded, or held no item of the expected kind.
    #[error("bad PEM in {}: {reason}", path.display())]
    Pem {
        /// The file involved.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },

    /// A private key file can be read by group or others; it must be 0600.
    #[error("{} has mode {mode:o}; a private key must be readable by its owner only (0600)", path.display())]
    InsecureKeyFile {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// `Ca::create` was asked to create a CA where one (or part of one)
    /// already exists; the existing key is never overwritten.
    #[error("a CA already exists in {}", dir.display())]
    CaExists {
        /// The CA directory.
        dir: PathBuf,
    },

    /// Only one of `ca.pem` and `ca.key` exists, so the CA can be neither
    /// loaded nor safely recreated.
    #[error("incomplete CA in {}: ca.pem and ca.key must both exist", dir.display())]
    CaIncomplete {
        /// The CA directory.
        dir: PathBuf,
    },

    /// A private key does not belong to the certificate next to it.
    #[error("the key in {} does not match its certificate", path.display())]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
    },

    /// Generating a key or certificate failed.
    #[error("certificate generation failed: {0}")]
    CertGen(#[from] rcgen::Error),

    /// A certificate could not be parsed, or lacks the subject common name
    /// that carries the store id.
    #[error("bad certificate: {reason}")]
    BadCertificate {
        /// What was wrong with it.
        reason: String,
    },

    /// rustls refused the certificates, keys or settings.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),

    /// The client certificate verifier could not be built (e.g. no roots).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),

    /// The crypto provider lacks the cipher suite QUIC needs for its initial
    /// packets.
    #[error("QUIC crypto: {0}")]
    QuicCrypto(#[from] quinn::crypto::rustls::NoInitialCipherSuite),

    /// The transport settings are unusable (e.g. keep-alive not below the
    /// idle timeout, so every quiet link would time out).
    #[error("invalid transport settings: {reason}")]
    InvalidTransport {
        /// What is wrong with them.
        reason: String,
    },

    /// Binding the UDP socket of an endpoint failed.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A connection could not be started (bad server name, endpoint closed,
    /// no client configuration).
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),

    /// The QUIC handshake or connection failed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),

    /// The peer presented no certificate, so it has no store id.
    #[error("the peer presented no certificate")]
    NoPeerCertificate,

    /// The store's certificate is valid but its id is on the revocation list.
    #[error("store {store_id} is revoked")]
    Revoked {
        /// The revoked store.
        store_id: String,
    },
}

/// Result type of this module.
pub type Result<T, E = TlsError> = std::result::Result<T, E>;

/// Installs rustls's *ring* crypto provider as the process default.
///
/// quinn and rustls are built with *ring* only; code that builds rustls
/// configurations with the plain `builder()` functions (this module does not:
/// it names its provider explicitly) needs a process default, and two
/// different providers in one process make handshakes fail confusingly.
/// Idempotent and cheap: call it as often as you like, from any thread.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another thread installing a provider is fine: a
        // default is then installed, which is all this function promises.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Checks that `id` is a valid store id: 1 to 16 characters of `A-Z`, `0-9`,
/// `-` and `_`.
///
/// The id ends up in certificate subjects, file names and logs, so the
/// alphabet is deliberately small.
pub fn validate_store_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_STORE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TlsError::InvalidStoreId { id: id.to_owned() })
    }
}
