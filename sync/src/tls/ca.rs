//! The hub's certificate authority: creates itself once, issues store and hub
//! certificates, and keeps the list of revoked store ids.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::files::{
    Secrecy, create_dir, exists, read_key_pem, read_optional_text, read_text, write_file,
};
use super::identity::{CA_CERT, STORE_CERT, STORE_KEY, check_key_matches};
use super::{CLOSE_REVOKED, Result, TlsError, peer_store_id, validate_store_id};

const CA_KEY: &str = "ca.key";
const REVOKED: &str = "revoked.txt";
const CA_COMMON_NAME: &str = "Linli Hub CA";
const HUB_COMMON_NAME: &str = "Linli Hub";

/// How long the CA certificate is valid, in years from the start of this one.
const CA_VALID_YEARS: i32 = 30;
/// How long store and hub certificates are valid, in years. Renewal is not
/// automatic yet, so this is long; revocation covers compromise.
const LEAF_VALID_YEARS: i32 = 10;

/// The hub's certificate authority.
///
/// Lives in a directory holding `ca.pem` (the CA certificate, given to every
/// store), `ca.key` (its private key, mode 0600, never leaves the hub) and
/// `revoked.txt` (one revoked store id per line).
#[derive(Debug)]
pub struct Ca {
    dir: PathBuf,
    cert: CertificateDer<'static>,
    /// `cert` as PEM, copied verbatim into every store's credentials.
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Generates a new CA in `dir` (created if missing) and writes `ca.pem`
    /// and `ca.key`.
    ///
    /// Refuses with [`TlsError::CaExists`] if either file is already there:
    /// replacing a CA key would orphan every store certificate it issued.
    pub fn create(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if exists(&cert_path)? || exists(&key_path)? {
            return Err(TlsError::CaExists {
                dir: dir.to_path_buf(),
            });
        }
        create_dir(dir)?;

        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(CA_COMMON_NAME);
        // Path length 0: the CA signs leaf certificates only, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, CA_VALID_YEARS);

        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        // Key first: a crash in between leaves a lone key, which `load`
        // reports as an incomplete CA instead of a certificate without a key.
        write_file(&key_path, key.serialize_pem().as_bytes(), Secrecy::Secret)?;
        write_file(&cert_path, cert.pem().as_bytes(), Secrecy::Public)?;

        Ok(Self {
            dir: dir.to_path_buf(),
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the CA from `dir`, checking that the key is private (0600 on
    /// unix) and belongs to the certificate.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_text(&cert_path)?;
        let cert =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| TlsError::Pem {
                path: cert_path.clone(),
                reason: e.to_string(),
            })?;
        let key = KeyPair::from_pem(&read_key_pem(&key_path)?)?;
        check_key_matches(&cert, key.public_key_raw(), key_path)?;
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cert,
            cert_pem,
            issuer,
        })
    }

    /// Loads the CA from `dir`, or creates it there if neither file exists.
    ///
    /// If only one of `ca.pem` and `ca.key` exists this fails with
    /// [`TlsError::CaIncomplete`] rather than guess.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let has_cert = exists(&dir.join(CA_CERT))?;
        let has_key = exists(&dir.join(CA_KEY))?;
        match (has_cert, has_key) {
            (true, true) => Self::load(dir),
            (false, false) => Self::create(dir),
            _ => Err(TlsError::CaIncomplete {
                dir: dir.to_path_buf(),
            }),
        }
    }

    /// The CA's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate: the root stores use to verify the hub, and the hub
    /// uses to verify stores.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Issues a client certificate for `store_id` and writes what the store
    /// needs into `out_dir` (created if missing): `store.pem` (its
    /// certificate, CN = store id, extended key usage ClientAuth), `store.key`
    /// (mode 0600) and `ca.pem` (to verify the hub).
    ///
    /// Existing files are replaced, so this also re-enrols a store. It does
    /// not clear a revocation: a revoked id stays refused by
    /// [`Ca::admit_peer`] whatever certificate it presents.
    pub fn issue_store(&self, store_id: &str, out_dir: &Path) -> Result<()> {
        validate_store_id(store_id)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(store_id);
        // A URI SAN names the store without pretending to be a DNS name; the
        // hub still reads the id from the CN.
        let uri = Ia5String::try_from(format!("urn:linli:store:{store_id}"))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALID_YEARS);

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        create_dir(out_dir)?;
        write_file(
            &out_dir.join(STORE_KEY),
            key.serialize_pem().as_bytes(),
            Secrecy::Secret,
        )?;
        write_file(
            &out_dir.join(STORE_CERT),
            cert.pem().as_bytes(),
            Secrecy::Public,
        )?;
        write_file(
            &out_dir.join(CA_CERT),
            self.cert_pem.as_bytes(),
            Secrecy::Public,
        )?;
        Ok(())
    }

    /// Issues the hub's server certificate (extended key usage ServerAuth),
    /// valid for `localhost`, the IP `127.0.0.1` and every name in
    /// `dns_names` (IP literals become IP SANs). Returns the certificate and
    /// its key; the hub keeps them in memory or stores them itself.
    pub fn issue_hub(
        &self,
        dns_names: &[String],
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        for name in dns_names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name = common_name(HUB_COMMON_NAME);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, LEAF_VALID_YEARS);

        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key))
    }

    /// Adds `store_id` to `revoked.txt`. The hub refuses the store at its
    /// next connection ([`Ca::admit_peer`]); closing a connection that is
    /// already open is up to the hub.
    ///
    /// The file is rewritten atomically. Two processes revoking at the same
    /// moment can lose one of the ids; revocation is a rare admin action.
    pub fn revoke(&self, store_id: &str) -> Result<()> {
        validate_store_id(store_id)?;
        let mut revoked = self.revoked()?;
        if revoked.insert(store_id.to_owned()) {
            let mut text = String::new();
            for id in &revoked {
                text.push_str(id);
                text.push('\n');
            }
            write_file(&self.dir.join(REVOKED), text.as_bytes(), Secrecy::Public)?;
        }
        Ok(())
    }

    /// Removes `store_id` from `revoked.txt` (an admin re-admitting a store
    /// deliberately, e.g. `issue-cert --reinstate`). Returns whether it was
    /// revoked. As revocation is by id, every certificate of the store is
    /// admitted again, not only a new one.
    pub fn reinstate(&self, store_id: &str) -> Result<bool> {
        validate_store_id(store_id)?;
        let mut revoked = self.revoked()?;
        if !revoked.remove(store_id) {
            return Ok(false);
        }
        let mut text = String::new();
        for id in &revoked {
            text.push_str(id);
            text.push('\n');
        }
        write_file(&self.dir.join(REVOKED), text.as_bytes(), Secrecy::Public)?;
        Ok(true)
    }

    /// Whether `store_id` is revoked.
    ///
    /// Reads `revoked.txt` on every call, so a revocation made by another
    /// process (an admin command) applies to the next connection without a
    /// hub restart. Invalid ids are never revoked (they cannot connect).
    pub fn is_revoked(&self, store_id: &str) -> Result<bool> {
        Ok(self.revoked()?.contains(store_id))
    }

    /// Every revoked store id. Blank lines and lines starting with `#` in
    /// `revoked.txt` are ignored.
    pub fn revoked(&self) -> Result<BTreeSet<String>> {
        let text = read_optional_text(&self.dir.join(REVOKED))?;
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_owned)
            .collect())
    }

    /// What the hub does with every new connection: reads the store id from
    /// the peer certificate and checks it against the revocation list.
    ///
    /// A revoked store's connection is closed with [`CLOSE_REVOKED`] and this
    /// returns [`TlsError::Revoked`]. Otherwise returns the store id — the
    /// only one the hub may use for this connection.
    pub fn admit_peer(&self, conn: &quinn::Connection) -> Result<String> {
        let store_id = peer_store_id(conn)?;
        if self.is_revoked(&store_id)? {
            conn.close(CLOSE_REVOKED.into(), b"certificate revoked");
            return Err(TlsError::Revoked { store_id });
        }
        Ok(store_id)
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name
}

/// Valid from the first of January of last year (a store whose clock is
/// behind still accepts it) for `years` years.
fn set_validity(params: &mut CertificateParams, years: i32) {
    let this_year = current_year();
    params.not_before = date_time_ymd(this_year - 1, 1, 1);
    params.not_after = date_time_ymd(this_year + years, 1, 1);
}

fn current_year() -> i32 {
    const SECS_PER_YEAR: u64 = 31_556_952; // 365.2425 days
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let year = 1970 + secs / SECS_PER_YEAR;
    // Clamped to a range `date_time_ymd` accepts whatever the clock says.
    i32::try_from(year).unwrap_or(2025).clamp(2025, 9000)
}
