//! quinn configurations for both ends: mutual TLS 1.3 with the hub's CA as
//! the only root, one ALPN, and transport settings tuned to notice a dead
//! link in seconds.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::{ALPN, Result, StoreIdentity, TlsError};

/// QUIC transport settings shared by the hub and the stores.
///
/// quinn's defaults (30 s idle timeout, no keep-alive) would let a store
/// believe for half a minute that a dead link is up; DESIGN.md §4 wants
/// outages noticed in seconds. Both sides should use the same values: the
/// effective idle timeout is the smaller of the two, and keep-alive must stay
/// below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportSettings {
    /// Interval of keep-alive packets on a quiet connection. Must be
    /// shorter than `idle_timeout`. Default 1 s.
    pub keep_alive: Duration,
    /// A connection that receives nothing for this long is considered dead
    /// and closed. Default 3 s (measured: a dead link is noticed in 3.0 s).
    pub idle_timeout: Duration,
    /// How many bidirectional streams the peer may have open at once; the
    /// sync opens one per document being synced. Default 256 (quinn's
    /// default is 100).
    pub max_bidi_streams: u32,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(3),
            max_bidi_streams: 256,
        }
    }
}

impl TransportSettings {
    /// Checks the settings and turns them into a quinn transport config.
    pub fn transport_config(&self) -> Result<TransportConfig> {
        let invalid = |reason: String| TlsError::InvalidTransport { reason };
        if self.keep_alive.is_zero() || self.keep_alive >= self.idle_timeout {
            return Err(invalid(format!(
                "keep_alive ({:?}) must be non-zero and below idle_timeout ({:?})",
                self.keep_alive, self.idle_timeout
            )));
        }
        let idle = IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| invalid(format!("idle_timeout {:?} too large", self.idle_timeout)))?;
        let mut config = TransportConfig::default();
        config
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(idle))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_bidi_streams));
        Ok(config)
    }
}

/// The hub's configuration: presents `hub_cert`, and requires every client to
/// present a certificate issued by `ca_cert` (a client without one, or with
/// one from another CA, never gets a usable connection).
///
/// Revocation is not checked here but after the handshake, by
/// [`Ca::admit_peer`](super::Ca::admit_peer); adding a CRL to the verifier
/// (`with_crls`) is the later improvement.
pub fn server_config(
    ca_cert: &CertificateDer<'_>,
    hub_cert: CertificateDer<'static>,
    hub_key: PrivateKeyDer<'static>,
    transport: TransportSettings,
) -> Result<quinn::ServerConfig> {
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots(ca_cert)?, Arc::clone(&provider))
            .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![hub_cert], hub_key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicServerConfig::try_from(tls)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport.transport_config()?));
    Ok(config)
}

/// A store's configuration: trusts only the hub's CA, and authenticates with
/// the store's certificate.
///
/// The server name to check the hub's certificate against is given per
/// connection ([`connect`](super::connect)); the hub certificate from
/// [`Ca::issue_hub`](super::Ca::issue_hub) is valid for `localhost`,
/// `127.0.0.1` and the names the hub was given.
pub fn client_config(
    identity: &StoreIdentity,
    transport: TransportSettings,
) -> Result<quinn::ClientConfig> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(identity.ca())?)
        .with_client_auth_cert(identity.certs().to_vec(), identity.key().clone_key())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport.transport_config()?));
    Ok(config)
}

/// Named explicitly rather than taken from the process default, so these
/// configurations work whether or not [`install_crypto_provider`](super::install_crypto_provider)
/// was called.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_cert: &CertificateDer<'_>) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.clone().into_owned())?;
    Ok(Arc::new(roots))
}
