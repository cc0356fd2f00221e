//! QUIC endpoints for the hub and the stores, and the handshake limiter that
//! keeps a reconnect storm from swamping the hub.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::Semaphore;

use super::{Result, TlsError};

/// Receive buffer the hub asks for on its UDP socket. Every store's
/// packets share it; the Linux default (~208 KB) overflowed when 500-2,000
/// stores reconnected at once and handshakes backed off for seconds, where
/// 4 MB plus the [`HandshakeLimiter`] brought them to ~50 ms (NOTES-crates.md).
/// The kernel caps it at `net.core.rmem_max`.
pub const HUB_RECV_BUFFER: usize = 4 << 20;

/// Binds the hub's endpoint on `addr` (port 0 picks a free port; read it back
/// with `local_addr`), with a [`HUB_RECV_BUFFER`] receive buffer. Must be
/// called inside a tokio runtime.
pub fn server_endpoint(addr: SocketAddr, cfg: quinn::ServerConfig) -> Result<quinn::Endpoint> {
    let bind = |source| TlsError::Bind { addr, source };
    let socket = bind_udp(addr, HUB_RECV_BUFFER).map_err(bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| bind(io::Error::other("no async runtime for the endpoint")))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(cfg), socket, runtime).map_err(bind)
}

/// A UDP socket bound on `addr` that asked for a `recv_buffer` bytes receive
/// buffer before binding. A refused size is logged, not fatal: the hub still
/// serves with what the kernel gives.
pub fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    match socket.set_recv_buffer_size(recv_buffer) {
        // Linux reports twice what it reserves for the payload
        Ok(()) => tracing::info!(
            asked = recv_buffer,
            got = socket.recv_buffer_size().unwrap_or(0),
            "hub UDP receive buffer"
        ),
        Err(e) => {
            tracing::warn!(error = %e, asked = recv_buffer, "cannot raise the UDP receive buffer")
        }
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds a store's endpoint for connecting to the hub at `hub_addr`, with
/// `cfg` as its default client configuration. Must be called inside a tokio
/// runtime.
///
/// The local address is an ephemeral port of the hub address's family: the
/// loopback address for a loopback hub (tests), the unspecified address
/// otherwise.
pub fn client_endpoint(cfg: quinn::ClientConfig, hub_addr: SocketAddr) -> Result<quinn::Endpoint> {
    let local = match (hub_addr, hub_addr.ip().is_loopback()) {
        (SocketAddr::V4(_), true) => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        (SocketAddr::V4(_), false) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        (SocketAddr::V6(_), true) => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        (SocketAddr::V6(_), false) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let mut endpoint = quinn::Endpoint::client(local).map_err(|source| TlsError::Bind {
        addr: local,
        source,
    })?;
    endpoint.set_default_client_config(cfg);
    Ok(endpoint)
}

/// Connects to the hub at `addr`, checking its certificate against
/// `server_name` (`"localhost"` for a local hub), and waits for the
/// handshake.
///
/// A store whose own certificate the hub refuses still sees this succeed
/// (TLS 1.3 finishes the client side first); the refusal shows up as the
/// connection closing, on its first stream at the latest.
pub async fn connect(
    endpoint: &quinn::Endpoint,
    addr: SocketAddr,
    server_name: &str,
) -> Result<quinn::Connection> {
    Ok(endpoint.connect(addr, server_name)?.await?)
}

/// Caps how many handshakes the hub runs at once.
///
/// When hundreds of stores reconnect together (the hub restarted, a regional
/// link came back), unthrottled handshakes overflow the UDP receive buffer,
/// packets drop, and clients back off for seconds. Each incoming connection
/// goes through [`HandshakeLimiter::handshake`], in its own task:
///
/// - a free permit: the handshake runs, holding the permit until it ends;
/// - no free permit and the client's address not yet validated: the hub
///   answers with a QUIC Retry. That is stateless and cheap, sheds spoofed
///   floods, and spreads the storm by one round trip; the client comes back
///   with a validated address (as a new `Incoming`) without backing off;
/// - no free permit and the address already validated (the client is coming
///   back from a Retry): wait for a permit. The client's Initial
///   retransmissions are absorbed by quinn meanwhile; if the wait exceeds
///   the client's idle timeout, that handshake fails and the client
///   reconnects with backoff.
///
/// Refusing or ignoring instead would push clients into their exponential
/// backoff, which is what made handshakes take seconds in the first place.
/// Cloning shares the same permits.
#[derive(Debug, Clone)]
pub struct HandshakeLimiter {
    permits: Arc<Semaphore>,
    max_concurrent: usize,
}

impl HandshakeLimiter {
    /// Default cap: a handshake costs ~0.5 ms of hub CPU, so 64 in flight is
    /// a few tens of milliseconds of work, and leaves the rest of the hub
    /// responsive.
    pub const DEFAULT_MAX_CONCURRENT: usize = 64;

    /// A limiter allowing `max_concurrent` handshakes at once (at least 1).
    pub fn new(max_concurrent: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Self {
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }

    /// The cap given to [`HandshakeLimiter::new`].
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Handshakes that could start right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Runs the handshake of `incoming` within the cap (see the type's docs).
    ///
    /// Returns `Ok(None)` if the client was sent a Retry (it will come back as
    /// a new `Incoming`), the connection once the handshake succeeded, or the
    /// handshake's error. The caller still has to admit the store
    /// ([`Ca::admit_peer`](super::Ca::admit_peer)).
    pub async fn handshake(
        &self,
        mut incoming: quinn::Incoming,
    ) -> Result<Option<quinn::Connection>> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                if incoming.may_retry() {
                    match incoming.retry() {
                        Ok(()) => return Ok(None),
                        Err(refused) => incoming = refused.into_incoming(),
                    }
                }
                // The semaphore is never closed, so this cannot fail; if that
                // ever changes, going on without a permit is the safe side.
                Arc::clone(&self.permits).acquire_owned().await.ok()
            }
        };
        let connection = incoming.await;
        drop(permit);
        Ok(Some(connection?))
    }
}

impl Default for HandshakeLimiter {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_CONCURRENT)
    }
}
