//! Empty databases at the current schema, made once a process and copied
//! into each run: migrating a hub's and three stores' databases from
//! nothing was a third of a run's setup (parsing the migrations' SQL).
//! A copy is the file migrating would make: the same migrations, closed
//! (its WAL folded in) before any run writes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::Context;

struct Templates {
    _dir: tempfile::TempDir,
    store: PathBuf,
    hub: PathBuf,
}

static TEMPLATES: OnceLock<Result<Templates, String>> = OnceLock::new();

fn templates() -> anyhow::Result<&'static Templates> {
    TEMPLATES
        .get_or_init(|| make().map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("cannot make the template databases: {e}"))
}

fn make() -> anyhow::Result<Templates> {
    let shm = Path::new("/dev/shm");
    let dir = match shm.is_dir() {
        true => tempfile::tempdir_in(shm)?,
        false => tempfile::tempdir()?,
    };
    let store = dir.path().join("store.db");
    linli_edge::store::open_writer_conn(&store)?;
    let hub = dir.path().join("hub.db");
    linli_sync::db::open_writer_conn(&hub, linli_hub::store::schema::migrate)?;
    Ok(Templates {
        _dir: dir,
        store,
        hub,
    })
}

/// Puts an empty store database at `path`, unless one is there (a
/// restarted store keeps its own).
pub(crate) fn store(path: &Path) -> anyhow::Result<()> {
    place(&templates()?.store, path)
}

/// Puts an empty hub database at `path`, unless one is there.
pub(crate) fn hub(path: &Path) -> anyhow::Result<()> {
    place(&templates()?.hub, path)
}

fn place(template: &Path, path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        linli_sync::db::create_private_dir(dir)?;
    }
    std::fs::copy(template, path)
        .with_context(|| format!("cannot copy {} to {}", template.display(), path.display()))?;
    Ok(())
}
