//! Multi-process harness for Linli: spawns real `linli-edge` (and later
//! `linli-hub`) processes on port 0 with temp dirs. The suites of the
//! cross-node work (sync, routing) live beside it; the single-node suites
//! live in `edge-node/tests/`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a workspace binary built by `cargo test --workspace`.
pub fn workspace_bin(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop(); // deps
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A running child process that prints `... listening on http://ADDR`.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    pub base_url: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin args...` and waits (with a deadline) for its listening line.
pub fn spawn_listening(bin: &Path, args: &[&str], deadline: Duration) -> anyhow::Result<Spawned> {
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("listening on ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let start = Instant::now();
    let base_url = rx.recv_timeout(deadline).map_err(|_| {
        anyhow::anyhow!(
            "{} did not start within {:?}",
            bin.display(),
            start.elapsed()
        )
    })?;
    Ok(Spawned { child, base_url })
}
