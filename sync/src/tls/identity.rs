//! Who is at the other end: a store's own credentials, and the store id the
//! hub reads from a verified connection.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::files::{read_cert, read_certs, read_key};
use super::{Result, TlsError, validate_store_id};

/// File names inside a store's credentials directory, as written by
/// [`Ca::issue_store`](super::Ca::issue_store).
pub(super) const STORE_CERT: &str = "store.pem";
pub(super) const STORE_KEY: &str = "store.key";
pub(super) const CA_CERT: &str = "ca.pem";

/// A store's credentials: its certificate and key, and the CA certificate it
/// uses to check that it really talks to its hub.
#[derive(Debug)]
pub struct StoreIdentity {
    store_id: String,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

impl StoreIdentity {
    /// Loads `store.pem`, `store.key` and `ca.pem` from `dir`.
    ///
    /// The store id is taken from the certificate's subject CN, so it can never
    /// disagree with what the hub will see. `store.key` must not be readable by
    /// group or others (on unix).
    pub fn load(dir: &Path) -> Result<Self> {
        let certs = read_certs(&dir.join(STORE_CERT))?;
        let key = read_key(&dir.join(STORE_KEY))?;
        let ca = read_cert(&dir.join(CA_CERT))?;
        let leaf = certs.first().ok_or_else(|| TlsError::BadCertificate {
            reason: format!("{} holds no certificate", dir.join(STORE_CERT).display()),
        })?;
        let store_id = store_id_from_cert(leaf)?;
        Ok(Self {
            store_id,
            certs,
            key,
            ca,
        })
    }

    /// The store id, from the certificate's subject CN.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The store's certificate chain, leaf first.
    pub fn certs(&self) -> &[CertificateDer<'static>] {
        &self.certs
    }

    /// The store's private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The hub CA's certificate, the only root the store trusts.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }
}

/// The id of the store at the other end of `conn`, read from its verified
/// client certificate.
///
/// This is the only place the hub may learn a store's id: a store can write
/// anything in its messages, but it cannot present another store's
/// certificate without that store's key. Fails with
/// [`TlsError::NoPeerCertificate`] if the peer presented none (a hub
/// configured by [`server_config`](super::server_config) never completes such
/// a handshake), and with [`TlsError::InvalidStoreId`] if the CN is not a valid
/// store id.
pub fn peer_store_id(conn: &quinn::Connection) -> Result<String> {
    let identity = conn.peer_identity().ok_or(TlsError::NoPeerCertificate)?;
    let certs = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TlsError::NoPeerCertificate)?;
    let leaf = certs.first().ok_or(TlsError::NoPeerCertificate)?;
    store_id_from_cert(leaf)
}

/// Parses a certificate and returns its subject CN, validated as a store id.
pub(super) fn store_id_from_cert(cert: &CertificateDer<'_>) -> Result<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| bad_cert(&e))?;
    let mut names = parsed.subject().iter_common_name();
    let cn = names.next().ok_or_else(|| TlsError::BadCertificate {
        reason: "no subject common name".to_owned(),
    })?;
    if names.next().is_some() {
        // Two CNs would let a certificate mean different stores to
        // different readers.
        return Err(TlsError::BadCertificate {
            reason: "more than one subject common name".to_owned(),
        });
    }
    let id = cn.as_str().map_err(|e| bad_cert(&e))?;
    validate_store_id(id)?;
    Ok(id.to_owned())
}

/// Checks that `key_public` (the raw public key of a key pair) is the public
/// key in `cert`.
pub(super) fn check_key_matches(
    cert: &CertificateDer<'_>,
    key_public: &[u8],
    key_path: PathBuf,
) -> Result<()> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| bad_cert(&e))?;
    if parsed.public_key().subject_public_key.data.as_ref() == key_public {
        Ok(())
    } else {
        Err(TlsError::KeyMismatch { path: key_path })
    }
}

fn bad_cert(e: &dyn std::fmt::Display) -> TlsError {
    TlsError::BadCertificate {
        reason: e.to_string(),
    }
}
