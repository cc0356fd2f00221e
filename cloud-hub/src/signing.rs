//! The hub's Ed25519 key for pickup codes (DESIGN.md §6). The private key
//! lives in `pickup-signing.key` in the hub's data directory (0600, refused
//! if group- or world-readable); stores get the public half with their
//! identity (`pickup.pub`, written by `linli-hub issue-cert`). The chain's
//! member key (`member.key`) is kept and handed out the same way, secret
//! half included: stores hash member phones under it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use ed25519_dalek::SigningKey;

/// Loads the key, creating it on first use.
pub fn load_or_create(path: &Path) -> anyhow::Result<SigningKey> {
    Ok(SigningKey::from_bytes(&load_or_create_secret(path)?))
}

/// Loads 32 secret bytes kept as hex in a 0600 file, creating them on
/// first use (the pickup signing key, the chain's member key).
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(hex_key) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode();
                anyhow::ensure!(
                    mode & 0o077 == 0,
                    "{} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
            let raw = hex::decode(hex_key.trim())
                .with_context(|| format!("{} is not a hex key", path.display()))?;
            let raw: [u8; 32] = raw
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold 32 bytes", path.display()))?;
            Ok(raw)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = rand::random::<[u8; 32]>();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            f.write_all(hex::encode(key).as_bytes())?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the public half for a store's identity directory.
pub fn write_public(key: &SigningKey, out_dir: &Path) -> anyhow::Result<()> {
    let hex = linli_shared::pickup::verifying_key_hex(&key.verifying_key());
    std::fs::write(out_dir.join("pickup.pub"), hex)?;
    Ok(())
}

/// Writes the chain's member key into a store's identity directory (0600):
/// the store hashes member phones under it.
pub fn write_member_key(key: &[u8; 32], out_dir: &Path) -> anyhow::Result<()> {
    let path = out_dir.join("member.key");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(hex::encode(key).as_bytes())?;
    f.sync_all()?;
    Ok(())
}
