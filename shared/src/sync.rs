//! The sync protocol's wire frames and the decision of what to sync, with no
//! IO (DESIGN.md §4).
//!
//! A session between a store and the hub is a sequence of frames on one
//! reliable, ordered QUIC stream:
//!
//! 1. each side sends `Index`: the open documents of the store's scope with
//!    their heads;
//! 2. for every document whose heads differ (or that one side lacks), both
//!    sides run automerge's sync protocol, one `Sync` frame per message;
//! 3. afterwards, changes committed locally are pushed as `Sync` frames.
//!
//! automerge requires a reliable, in-order channel per (document, peer); one
//! stream per connection gives that for every document at once, and with
//! tens of open documents per store its head-of-line blocking costs nothing
//! measurable. Frames carry the document id; the receiver validates it and
//! the ownership rules before touching any state.
//!
//! Encoding: `u8 kind | u32 length | body`, big-endian, body at most
//! [`MAX_FRAME`] bytes. Decoding never panics on hostile input.
//!
//! An index ends with how long the sender's oldest fact not yet in a
//! document has waited, in milliseconds ([`Index::facts_waiting`]), then
//! the sender's time as it read the index, in milliseconds since the epoch
//! ([`Index::sent_at`]); an index without the first (from a sender before
//! it) reads as none waiting, one without the second as a time not said.
//!
//! A `Sync` message longer than [`DEFLATE_ABOVE`] goes DEFLATE-compressed
//! (kind 4) when that is shorter. automerge sends a peer's missing changes
//! as they are, uncompressed: the part of the ledger that was open when a
//! store was cut off went at ~450 B a sale against ~55 B in a whole saved
//! part (`sync_bench` 1e; DECISIONS "Large sync messages go compressed").
//! Inflating stops at [`MAX_FRAME`] bytes, so a small hostile frame cannot
//! expand without bound.

pub mod session;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::docs::{DocId, DocIdError};

/// Largest frame accepted (a whole compressed day document fits easily).
pub const MAX_FRAME: usize = 32 * 1024 * 1024;
/// Sync messages longer than this are sent compressed when that is shorter.
pub const DEFLATE_ABOVE: usize = 1024;
/// Largest number of documents in one index.
pub const MAX_INDEX: usize = 10_000;

/// One document's entry in an index: its id and current heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub doc: DocId,
    pub heads: Vec<[u8; 32]>,
}

/// What a replica holds of a store's scope: its open documents with their
/// heads, and what it has committed that is not in them yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Index {
    pub entries: Vec<IndexEntry>,
    /// How long the oldest fact the sender committed but has not yet
    /// written to a document had waited when the index was read (zero:
    /// every fact is in the listed heads). A store commits each fact to its
    /// outbox and writes it to its documents a moment later (DESIGN §3);
    /// after a restart its facts wait until its first session has shown
    /// its database is not behind. The hub takes an index as the store's
    /// report of everything it committed before the index arrived less
    /// this wait, not before (a group-buy's deadline: DESIGN §7).
    pub facts_waiting: Duration,
    /// The sender's time as it read the index, by a clock that never goes
    /// back (a store's `Timeline`). A store's says what its counter has
    /// judged by: the hub takes its index as a report for a deadline only
    /// if the store's own time had passed it, since from then on the store
    /// refuses what the deadline closed; the hub's tells a store whose
    /// clock is behind the chain's what time it is at least. `None`: not
    /// said (a sender before it).
    pub sent_at: Option<DateTime<Utc>>,
}

impl Index {
    /// An index with every fact in its documents and no time said.
    pub fn of(entries: Vec<IndexEntry>) -> Index {
        Index {
            entries,
            facts_waiting: Duration::ZERO,
            sent_at: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The sender's open documents of this store's scope.
    Index(Index),
    /// An automerge sync message for one document.
    Sync { doc: DocId, msg: Vec<u8> },
    /// The sender refused a message for this document (not the owner, out of
    /// scope, or a change by a foreign actor); nothing of it was applied.
    Refused { doc: DocId, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is truncated")]
    Truncated,
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("frame text is not UTF-8")]
    Utf8,
    #[error("an index's time is out of range")]
    Time,
    #[error(transparent)]
    DocId(#[from] DocIdError),
    #[error("index lists more than {MAX_INDEX} documents")]
    IndexTooLarge,
    #[error("compressed message is corrupt or inflates past the limit")]
    Inflate,
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u32(&mut self) -> Result<usize, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u32()?;
        self.take(n)
    }

    fn doc(&mut self) -> Result<DocId, FrameError> {
        let s = std::str::from_utf8(self.bytes()?).map_err(|_| FrameError::Utf8)?;
        Ok(DocId::parse(s)?)
    }
}

impl Frame {
    /// Encodes the frame with its header.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let kind = match self {
            Frame::Index(index) => {
                body.extend_from_slice(&(index.entries.len() as u32).to_be_bytes());
                for e in &index.entries {
                    put_bytes(&mut body, e.doc.as_str().as_bytes());
                    body.extend_from_slice(&(e.heads.len() as u32).to_be_bytes());
                    for h in &e.heads {
                        body.extend_from_slice(h);
                    }
                }
                let waiting = u32::try_from(index.facts_waiting.as_millis()).unwrap_or(u32::MAX);
                body.extend_from_slice(&waiting.to_be_bytes());
                if let Some(at) = index.sent_at {
                    body.extend_from_slice(&at.timestamp_millis().to_be_bytes());
                }
                1
            }
            Frame::Sync { doc, msg } => {
                put_bytes(&mut body, doc.as_str().as_bytes());
                match deflate(msg) {
                    Some(packed) => {
                        put_bytes(&mut body, &packed);
                        4
                    }
                    None => {
                        put_bytes(&mut body, msg);
                        2
                    }
                }
            }
            Frame::Refused { doc, reason } => {
                put_bytes(&mut body, doc.as_str().as_bytes());
                put_bytes(&mut body, reason.as_bytes());
                3
            }
        };
        let mut out = Vec::with_capacity(body.len() + 5);
        out.push(kind);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Reads the header: the frame kind and body length, checked against the limit.
    pub fn header(h: [u8; 5]) -> Result<(u8, usize), FrameError> {
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        Ok((h[0], len))
    }

    /// Decodes a body of the given kind.
    pub fn decode(kind: u8, body: &[u8]) -> Result<Frame, FrameError> {
        let mut r = Reader(body);
        let frame = match kind {
            1 => {
                let n = r.u32()?;
                if n > MAX_INDEX {
                    return Err(FrameError::IndexTooLarge);
                }
                let mut entries = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let doc = r.doc()?;
                    let k = r.u32()?;
                    let mut heads = Vec::with_capacity(k.min(64));
                    for _ in 0..k {
                        let mut h = [0u8; 32];
                        h.copy_from_slice(r.take(32)?);
                        heads.push(h);
                    }
                    entries.push(IndexEntry { doc, heads });
                }
                // absent in an index from a sender before it: none waiting
                let waiting = if r.0.is_empty() { 0 } else { r.u32()? };
                // absent from a sender before it: not said
                let sent_at = match r.0.is_empty() {
                    true => None,
                    false => {
                        let b: [u8; 8] =
                            r.take(8)?.try_into().map_err(|_| FrameError::Truncated)?;
                        let ms = i64::from_be_bytes(b);
                        Some(DateTime::from_timestamp_millis(ms).ok_or(FrameError::Time)?)
                    }
                };
                Frame::Index(Index {
                    entries,
                    facts_waiting: Duration::from_millis(waiting as u64),
                    sent_at,
                })
            }
            2 => Frame::Sync {
                doc: r.doc()?,
                msg: r.bytes()?.to_vec(),
            },
            4 => Frame::Sync {
                doc: r.doc()?,
                msg: inflate(r.bytes()?)?,
            },
            3 => Frame::Refused {
                doc: r.doc()?,
                reason: String::from_utf8_lossy(r.bytes()?).into_owned(),
            },
            k => return Err(FrameError::Kind(k)),
        };
        Ok(frame)
    }
}

/// The message DEFLATE-compressed, if it is long enough to try and the
/// result is shorter.
fn deflate(msg: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    if msg.len() <= DEFLATE_ABOVE {
        return None;
    }
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(msg.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(msg).ok()?;
    let packed = enc.finish().ok()?;
    (packed.len() < msg.len()).then_some(packed)
}

/// Inflates a compressed message, refusing one that grows past [`MAX_FRAME`].
fn inflate(packed: &[u8]) -> Result<Vec<u8>, FrameError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(packed)
        .take(MAX_FRAME as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| FrameError::Inflate)?;
    if out.len() > MAX_FRAME {
        return Err(FrameError::Inflate);
    }
    Ok(out)
}

/// Which documents this side opens a sync round for, given both indexes:
/// every document either side lists whose heads differ or that the other
/// side lacks, filtered by `wanted` (scope and ownership rules of the
/// caller) — except one this side holds nothing of while the other holds
/// some. That side opens it, and this one answers its first message.
///
/// Why: automerge treats a message with no heads as "the peer lost
/// everything" and answers it with the whole document. When both sides
/// opened a document only one of them held (every part a store wrote while
/// cut off), the empty side's opening message and its answer to the
/// holder's opening message both carried no heads, so the holder sent the
/// whole document twice: `sync_bench` 1e, 194 B per offline sale, half of
/// it the second copy. Where neither side holds anything (a recovering
/// store asking for a document the hub never listed) the lister still
/// opens, so every differing document gets a round.
pub fn docs_to_sync(
    local: &[IndexEntry],
    remote: &[IndexEntry],
    wanted: impl Fn(&DocId) -> bool,
) -> Vec<DocId> {
    use std::collections::BTreeMap;
    type Heads = Option<Vec<[u8; 32]>>;
    let mut heads: BTreeMap<&DocId, (Heads, Heads)> = BTreeMap::new();
    for e in local {
        let mut h = e.heads.clone();
        h.sort();
        heads.entry(&e.doc).or_default().0 = Some(h);
    }
    for e in remote {
        let mut h = e.heads.clone();
        h.sort();
        heads.entry(&e.doc).or_default().1 = Some(h);
    }
    let holds = |h: &Heads| h.as_ref().is_some_and(|h| !h.is_empty());
    heads
        .into_iter()
        .filter(|(doc, (l, r))| l != r && (holds(l) || !holds(r)) && wanted(doc))
        .map(|(doc, _)| doc.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc(s: &str) -> DocId {
        DocId::parse(s).unwrap()
    }

    /// An index from a sender before the wait was added ends after its
    /// entries: it reads as every fact in its documents.
    #[test]
    fn an_index_without_its_wait_reads_as_none_waiting() {
        let index = Index::of(vec![IndexEntry {
            doc: doc("store/S001/ledger/2026-11-25"),
            heads: vec![[3; 32]],
        }]);
        let bytes = Frame::Index(index.clone()).encode();
        let body = &bytes[5..bytes.len() - 4];
        assert_eq!(Frame::decode(1, body).unwrap(), Frame::Index(index));
        // a wait cut short is refused, not guessed
        assert_eq!(
            Frame::decode(1, &bytes[5..bytes.len() - 2]),
            Err(FrameError::Truncated)
        );
    }

    /// An index with its wait and no time (a sender before the time was
    /// added) reads as a time not said; a time cut short or out of range
    /// is refused.
    #[test]
    fn an_index_without_its_time_reads_as_not_said() {
        let index = Index {
            facts_waiting: Duration::from_millis(20),
            sent_at: DateTime::from_timestamp_millis(1_796_000_000_000),
            ..Index::default()
        };
        let bytes = Frame::Index(index.clone()).encode();
        let without = Index {
            sent_at: None,
            ..index.clone()
        };
        assert_eq!(
            Frame::decode(1, &bytes[5..bytes.len() - 8]).unwrap(),
            Frame::Index(without)
        );
        assert_eq!(
            Frame::decode(1, &bytes[5..bytes.len() - 3]),
            Err(FrameError::Truncated)
        );
        let mut far = bytes[5..bytes.len() - 8].to_vec();
        far.extend_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(Frame::decode(1, &far), Err(FrameError::Time));
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            Frame::Index(Index {
                entries: vec![IndexEntry {
                    doc: doc("catalog/1"),
                    heads: vec![[7; 32], [9; 32]],
                }],
                facts_waiting: Duration::from_millis(1_234),
                sent_at: DateTime::from_timestamp_millis(1_796_000_000_123),
            }),
            Frame::Index(Index::default()),
            Frame::Sync {
                doc: doc("store/S001/ledger/2026-11-25"),
                msg: vec![1, 2, 3],
            },
            Frame::Refused {
                doc: doc("catalog/1"),
                reason: "not yours".into(),
            },
        ];
        for f in frames {
            let bytes = f.encode();
            let (kind, len) = Frame::header(bytes[..5].try_into().unwrap()).unwrap();
            assert_eq!(len, bytes.len() - 5);
            assert_eq!(Frame::decode(kind, &bytes[5..]).unwrap(), f);
        }
    }

    #[test]
    fn long_messages_go_compressed_when_that_is_shorter() {
        let d = doc("store/S001/ledger/2026-11-25");
        // a change's repetitive columns: compresses
        let msg: Vec<u8> = (0..8_000u32).map(|i| (i % 7) as u8).collect();
        let f = Frame::Sync {
            doc: d.clone(),
            msg,
        };
        let bytes = f.encode();
        assert_eq!(bytes[0], 4);
        assert!(bytes.len() < 1_000, "{} bytes", bytes.len());
        let (kind, _) = Frame::header(bytes[..5].try_into().unwrap()).unwrap();
        assert_eq!(Frame::decode(kind, &bytes[5..]).unwrap(), f);

        // random bytes do not compress: sent as they are
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..4_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let f = Frame::Sync {
            doc: d.clone(),
            msg: noise,
        };
        let bytes = f.encode();
        assert_eq!(bytes[0], 2);
        assert_eq!(Frame::decode(2, &bytes[5..]).unwrap(), f);

        // short messages are not worth it
        let f = Frame::Sync {
            doc: d,
            msg: vec![0; DEFLATE_ABOVE],
        };
        assert_eq!(f.encode()[0], 2);
    }

    #[test]
    fn a_compressed_message_that_inflates_past_the_limit_is_refused() {
        use std::io::Write;
        let d = doc("catalog/1");
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=MAX_FRAME / zeros.len() {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let mut body = Vec::new();
        put_bytes(&mut body, d.as_str().as_bytes());
        put_bytes(&mut body, &bomb);
        assert_eq!(Frame::decode(4, &body), Err(FrameError::Inflate));

        let mut body = Vec::new();
        put_bytes(&mut body, d.as_str().as_bytes());
        put_bytes(&mut body, &[0xff, 0x00, 0x13, 0x37]);
        assert_eq!(Frame::decode(4, &body), Err(FrameError::Inflate));
    }

    #[test]
    #[allow(clippy::cloned_ref_to_slice_refs)] // reads better as literals
    fn differing_or_missing_docs_are_synced() {
        let a = IndexEntry {
            doc: doc("catalog/1"),
            heads: vec![[1; 32]],
        };
        let b = IndexEntry {
            doc: doc("store/S001/ledger/2026-11-25"),
            heads: vec![[2; 32]],
        };
        let b2 = IndexEntry {
            doc: b.doc.clone(),
            heads: vec![[3; 32]],
        };
        assert_eq!(
            docs_to_sync(&[a.clone(), b.clone()], &[a.clone(), b.clone()], |_| true),
            vec![]
        );
        assert_eq!(
            docs_to_sync(&[a.clone(), b.clone()], &[a.clone(), b2.clone()], |_| true),
            vec![b.doc.clone()]
        );
        assert_eq!(
            docs_to_sync(&[a.clone(), b2.clone()], &[b.clone()], |_| true),
            vec![a.doc.clone(), b.doc.clone()]
        );
        assert_eq!(
            docs_to_sync(&[a.clone(), b2], &[b.clone()], |d| d.as_str()
                != "catalog/1"),
            vec![b.doc.clone()]
        );
    }

    #[test]
    fn the_side_holding_nothing_of_a_document_waits_for_the_holder() {
        let id = doc("store/S001/ledger/2026-11-25/p3");
        let held = [IndexEntry {
            doc: id.clone(),
            heads: vec![[2; 32]],
        }];
        let empty = [IndexEntry {
            doc: id.clone(),
            heads: vec![],
        }];
        // the holder opens, whether the other side lists it empty or not at all
        assert_eq!(docs_to_sync(&held, &[], |_| true), vec![id.clone()]);
        assert_eq!(docs_to_sync(&held, &empty, |_| true), vec![id.clone()]);
        // the other side waits for its message
        assert_eq!(docs_to_sync(&[], &held, |_| true), vec![]);
        assert_eq!(docs_to_sync(&empty, &held, |_| true), vec![]);
        // nobody holds anything: whoever lists it still asks (a recovering
        // store's request for a document the hub does not list)
        assert_eq!(docs_to_sync(&empty, &[], |_| true), vec![id]);
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(kind in 0u8..5, body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Frame::decode(kind, &body);
        }
    }
}
