//! The virtual network: one link per store, each a connection carrying one
//! stream each way, as the QUIC connection does.
//!
//! What a network can do to a QUIC stream is what this one does: delay a
//! frame (and a lost datagram delays it by a retransmission), or lose the
//! connection, dropping whatever was in flight. A stream never reorders or
//! duplicates: frames leave a direction in the order they were sent. What
//! reorders is everything between streams: the stores' frames reach the
//! hub interleaved as their delays fall.

use std::collections::VecDeque;
use std::time::Duration;

use linli_shared::sync::Frame;
use rand::Rng;
use rand::rngs::StdRng;

/// The link's fault settings.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// One-way delay of a frame: uniform in this range (ms).
    pub delay_ms: (u64, u64),
    /// The chance a frame's datagram is lost and retransmitted.
    pub loss: f64,
    /// What a retransmission adds (ms).
    pub retransmit_ms: (u64, u64),
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            delay_ms: (1, 40),
            loss: 0.05,
            retransmit_ms: (200, 1_000),
        }
    }
}

/// One direction of a link: frames with the virtual time they arrive at.
#[derive(Debug, Default)]
pub struct Direction {
    queue: VecDeque<(Duration, Vec<u8>)>,
    /// Bytes and frames sent over this direction, for the report.
    pub bytes: u64,
    pub frames: u64,
}

impl Direction {
    /// Sends `frame` at `now`: it arrives after a seeded delay, never
    /// before a frame sent earlier (a stream is in order).
    pub fn send(&mut self, frame: &Frame, now: Duration, faults: &Faults, rng: &mut StdRng) {
        let bytes = frame.encode();
        let mut delay = rng.gen_range(faults.delay_ms.0..=faults.delay_ms.1);
        if rng.gen_bool(faults.loss) {
            delay += rng.gen_range(faults.retransmit_ms.0..=faults.retransmit_ms.1);
        }
        let mut at = now + Duration::from_millis(delay);
        if let Some((last, _)) = self.queue.back() {
            at = at.max(*last);
        }
        self.bytes += bytes.len() as u64;
        self.frames += 1;
        self.queue.push_back((at, bytes));
    }

    /// The next frame due at or before `now`, decoded as the receiver's
    /// stream reader would.
    pub fn take_due(&mut self, now: Duration) -> Option<anyhow::Result<Frame>> {
        if self.queue.front().is_none_or(|(at, _)| *at > now) {
            return None;
        }
        let (_, bytes) = self.queue.pop_front()?;
        Some(decode(&bytes))
    }

    /// When the next frame arrives.
    pub fn next_due(&self) -> Option<Duration> {
        self.queue.front().map(|(at, _)| *at)
    }

    /// The connection is gone: what was in flight is lost.
    pub fn drop_in_flight(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        n
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

fn decode(bytes: &[u8]) -> anyhow::Result<Frame> {
    let header: [u8; 5] = bytes
        .get(..5)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("frame shorter than its header"))?;
    let (kind, len) = Frame::header(header)?;
    anyhow::ensure!(bytes.len() == 5 + len, "frame length does not match");
    Ok(Frame::decode(kind, &bytes[5..])?)
}
