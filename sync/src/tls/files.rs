//! Reading and writing certificate and key files.
//!
//! Files are replaced atomically (write a temporary file, fsync, rename,
//! fsync the directory), so a crash during enrolment never leaves a half
//! written key behind. Private keys are created with mode 0600 and refused
//! on load if group or others can read them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Result, TlsError};

/// Whether a file holds a secret (a private key) and so must stay private.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Secrecy {
    Public,
    Secret,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Io {
        action,
        path,
        source,
    }
}

pub(super) fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))
}

/// Atomically replaces `path` with `contents`.
pub(super) fn write_file(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<()> {
    let tmp = tmp_path(path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secrecy == Secrecy::Secret {
        use std::os::unix::fs::OpenOptionsExt;
        // Created private, so the key is never readable by others, not even
        // for the moment before a chmod.
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io_err("create", &tmp))?;
    // A leftover temporary file from a crash keeps its old mode: tighten it.
    #[cfg(unix)]
    if secrecy == Secrecy::Secret {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
            .map_err(io_err("chmod", &tmp))?;
    }
    file.write_all(contents).map_err(io_err("write", &tmp))?;
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err("rename into", path))?;
    sync_parent(path)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Makes a rename durable. Only meaningful (and only possible) on unix.
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync", dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(super) fn read_file(path: &Path, secrecy: Secrecy) -> Result<Vec<u8>> {
    #[cfg(unix)]
    if secrecy == Secrecy::Secret {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(io_err("stat", path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(TlsError::InsecureKeyFile {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    fs::read(path).map_err(io_err("read", path))
}

/// Reads a text file, treating a missing file as empty.
pub(super) fn read_optional_text(path: &Path) -> Result<String> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

pub(super) fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(io_err("stat", path))
}

fn pem_err(path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError {
    let path = path.to_path_buf();
    move |e| TlsError::Pem {
        path,
        reason: e.to_string(),
    }
}

/// Reads every certificate in a PEM file (leaf first); at least one.
pub(super) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path, Secrecy::Public)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pem_err(path))?;
    if certs.is_empty() {
        return Err(pem_err(path)(rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// Reads the first certificate in a PEM file.
pub(super) fn read_cert(path: &Path) -> Result<CertificateDer<'static>> {
    let pem = read_file(path, Secrecy::Public)?;
    CertificateDer::from_pem_slice(&pem).map_err(pem_err(path))
}

/// Reads a private key (PKCS#8, PKCS#1 or SEC1) from a 0600 PEM file.
pub(super) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read_file(path, Secrecy::Secret)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(pem_err(path))
}

/// Reads a public PEM file as text.
pub(super) fn read_text(path: &Path) -> Result<String> {
    let bytes = read_file(path, Secrecy::Public)?;
    String::from_utf8(bytes).map_err(|_| not_utf8(path))
}

fn not_utf8(path: &Path) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: "not UTF-8".to_owned(),
    }
}

/// Reads a private key PEM file (0600) as text, for rcgen.
pub(super) fn read_key_pem(path: &Path) -> Result<String> {
    let pem = read_file(path, Secrecy::Secret)?;
    String::from_utf8(pem).map_err(|_| not_utf8(path))
}
