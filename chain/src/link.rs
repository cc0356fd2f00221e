//! An in-process UDP relay between one store and the hub, standing in for
//! the store's internet link: it forwards, cuts (drops everything), or
//! degrades the link (drops, duplicates and reorders packets with a seeded
//! RNG, so a failing run can be replayed).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How the link behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkMode {
    /// Every packet passes.
    Up,
    /// No packet passes (an outage).
    Cut,
    /// Each packet is dropped, duplicated or held back and sent after the
    /// next one, with these probabilities.
    Lossy {
        drop: f64,
        duplicate: f64,
        reorder: f64,
    },
}

#[derive(Debug)]
struct Shared {
    mode: Mutex<LinkMode>,
    target: Mutex<SocketAddr>,
    client: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
}

/// The relay; dropping it stops its threads.
#[derive(Debug)]
pub struct UdpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl UdpProxy {
    /// Listens on 127.0.0.1:0 and relays to `target`.
    pub fn start(target: SocketAddr, seed: u64) -> std::io::Result<UdpProxy> {
        let front = UdpSocket::bind("127.0.0.1:0")?;
        let back = UdpSocket::bind("127.0.0.1:0")?;
        front.set_read_timeout(Some(Duration::from_millis(50)))?;
        back.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = front.local_addr()?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(LinkMode::Up),
            target: Mutex::new(target),
            client: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let (f2, b2) = (front.try_clone()?, back.try_clone()?);
        let s = shared.clone();
        std::thread::spawn(move || relay(&front, &back, &s, true, seed));
        let s = shared.clone();
        std::thread::spawn(move || relay(&b2, &f2, &s, false, seed.wrapping_add(1)));
        Ok(UdpProxy { addr, shared })
    }

    /// The address the store should use as the hub.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_mode(&self, mode: LinkMode) {
        if let Ok(mut m) = self.shared.mode.lock() {
            *m = mode;
        }
    }

    /// Points the relay at a (restarted) hub.
    pub fn set_target(&self, target: SocketAddr) {
        if let Ok(mut t) = self.shared.target.lock() {
            *t = target;
        }
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

/// Moves packets from `from` to `to`: towards the hub when `upstream`, else
/// back to the store.
fn relay(from: &UdpSocket, to: &UdpSocket, s: &Shared, upstream: bool, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 65_536];
    let mut held: Option<Vec<u8>> = None;
    while !s.stop.load(Ordering::Relaxed) {
        let (n, src) = match from.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue, // timeout: check stop
        };
        let dest = if upstream {
            if let Ok(mut c) = s.client.lock() {
                *c = Some(src);
            }
            s.target.lock().map(|t| *t).ok()
        } else {
            s.client.lock().ok().and_then(|c| *c)
        };
        let Some(dest) = dest else { continue };
        let mode = s.mode.lock().map(|m| *m).unwrap_or(LinkMode::Up);
        let packet = &buf[..n];
        match mode {
            LinkMode::Up => {
                let _ = to.send_to(packet, dest);
            }
            LinkMode::Cut => {}
            LinkMode::Lossy {
                drop,
                duplicate,
                reorder,
            } => {
                if rng.gen_bool(drop.clamp(0.0, 1.0)) {
                    continue;
                }
                if held.is_none() && rng.gen_bool(reorder.clamp(0.0, 1.0)) {
                    held = Some(packet.to_vec());
                    continue;
                }
                let _ = to.send_to(packet, dest);
                if rng.gen_bool(duplicate.clamp(0.0, 1.0)) {
                    let _ = to.send_to(packet, dest);
                }
                if let Some(h) = held.take() {
                    let _ = to.send_to(&h, dest);
                }
            }
        }
    }
}
