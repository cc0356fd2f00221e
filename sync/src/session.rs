//! One sync session over one QUIC stream: the same loop runs on the store
//! and on the hub (the protocol is symmetric).
//!
//! The loop only moves frames; what to sync is decided by
//! `linli_shared::sync::docs_to_sync`, and what may be applied by the
//! replica's [`SyncHost`] (its writer thread and [`crate::doc_store::Docs`]).
//! Local commits arrive on a broadcast channel and are pushed after a short
//! batching window, so a burst of sales becomes one message per document.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use linli_shared::docs::DocId;
use linli_shared::sync::{Frame, FrameError, IndexEntry, docs_to_sync};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::doc_store::{DocError, Received};

/// How long local changes are gathered before they are pushed.
pub const PUSH_BATCH: Duration = Duration::from_millis(5);

/// What a session needs from its replica. Every method runs the work in the
/// replica's database writer.
pub trait SyncHost: Send + Sync + 'static {
    /// Open documents of this session's scope, with heads.
    fn index(&self) -> impl Future<Output = Result<Vec<IndexEntry>, DocError>> + Send;
    /// The next sync message for the peer about `doc`.
    fn generate(
        &self,
        doc: DocId,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, DocError>> + Send;
    /// Applies a sync message from the peer (and whatever follows from it,
    /// such as query tables), or refuses it whole.
    fn receive(
        &self,
        doc: DocId,
        msg: Vec<u8>,
    ) -> impl Future<Output = Result<Received, DocError>> + Send;
    /// Whether `doc` belongs to this session's scope at all.
    fn in_scope(&self, doc: &DocId) -> bool;
    /// Called when a frame arrived (for liveness and health).
    fn on_activity(&self) {}
    /// Called with the number of new changes applied from the peer.
    fn on_applied(&self, _doc: &DocId, _n: usize) {}
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("stream write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream read: {0}")]
    Read(#[from] quinn::ReadExactError),
    #[error("protocol: {0}")]
    Frame(#[from] FrameError),
    #[error("replica: {0}")]
    Doc(#[from] DocError),
    #[error("peer closed the session")]
    Closed,
}

/// Writes one frame.
pub async fn write_frame(send: &mut quinn::SendStream, frame: &Frame) -> Result<(), SessionError> {
    send.write_all(&frame.encode()).await?;
    Ok(())
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Option<Frame>, SessionError> {
    let mut header = [0u8; 5];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let (kind, len) = Frame::header(header)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(Some(Frame::decode(kind, &body)?))
}

/// Runs a session until the peer goes away, the stream fails, or `cancel`.
pub async fn run<H: SyncHost>(
    host: Arc<H>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    mut local: broadcast::Receiver<DocId>,
    cancel: CancellationToken,
) -> Result<(), SessionError> {
    // reading runs on its own task so a slow apply never blocks the socket
    let (frames_tx, mut frames) = mpsc::channel::<Result<Option<Frame>, SessionError>>(64);
    let reader_cancel = cancel.child_token();
    let rc = reader_cancel.clone();
    let reader = tokio::spawn(async move {
        loop {
            let f = tokio::select! {
                _ = rc.cancelled() => return,
                f = read_frame(&mut recv) => f,
            };
            let end = !matches!(f, Ok(Some(_)));
            if frames_tx.send(f).await.is_err() || end {
                return;
            }
        }
    });
    let result = session_loop(&host, &mut send, &mut frames, &mut local, &cancel).await;
    reader_cancel.cancel();
    let _ = reader.await;
    let _ = send.finish();
    result
}

async fn push(
    host: &Arc<impl SyncHost>,
    send: &mut quinn::SendStream,
    doc: DocId,
) -> Result<(), SessionError> {
    if let Some(msg) = host.generate(doc.clone()).await? {
        write_frame(send, &Frame::Sync { doc, msg }).await?;
    }
    Ok(())
}

async fn session_loop<H: SyncHost>(
    host: &Arc<H>,
    send: &mut quinn::SendStream,
    frames: &mut mpsc::Receiver<Result<Option<Frame>, SessionError>>,
    local: &mut broadcast::Receiver<DocId>,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    let mut our_index = host.index().await?;
    write_frame(send, &Frame::Index(our_index.clone())).await?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            f = frames.recv() => {
                let frame = match f {
                    None | Some(Ok(None)) => return Err(SessionError::Closed),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Some(frame))) => frame,
                };
                host.on_activity();
                match frame {
                    Frame::Index(remote) => {
                        let h = host.clone();
                        for doc in docs_to_sync(&our_index, &remote, |d| h.in_scope(d)) {
                            push(host, send, doc).await?;
                        }
                    }
                    Frame::Sync { doc, msg } => {
                        if !host.in_scope(&doc) {
                            tracing::warn!(%doc, "peer sent a document outside its scope; refused");
                            write_frame(send, &Frame::Refused { doc, reason: "outside your scope".into() }).await?;
                            continue;
                        }
                        match host.receive(doc.clone(), msg).await {
                            Ok(r) => {
                                if r.new_changes > 0 {
                                    host.on_applied(&doc, r.new_changes);
                                }
                                push(host, send, doc).await?;
                            }
                            Err(DocError::Refused(reason) | DocError::Behind(reason)) => {
                                tracing::warn!(%doc, %reason, "refused changes from peer");
                                write_frame(send, &Frame::Refused { doc, reason }).await?;
                            }
                            Err(DocError::Message(reason)) => {
                                tracing::warn!(%doc, %reason, "undecodable sync message");
                                write_frame(send, &Frame::Refused { doc, reason }).await?;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Frame::Refused { doc, reason } => {
                        tracing::warn!(%doc, %reason, "peer refused our message");
                    }
                }
            }
            changed = local.recv() => {
                let mut docs = BTreeSet::new();
                match changed {
                    Ok(doc) => { docs.insert(doc); }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // missed notifications: compare indexes again
                        our_index = host.index().await?;
                        write_frame(send, &Frame::Index(our_index.clone())).await?;
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
                // gather what else commits in the next few milliseconds
                let deadline = tokio::time::Instant::now() + PUSH_BATCH;
                while let Ok(Ok(doc)) = tokio::time::timeout_at(deadline, local.recv()).await {
                    docs.insert(doc);
                }
                for doc in docs {
                    if host.in_scope(&doc) {
                        push(host, send, doc).await?;
                    }
                }
            }
        }
    }
}
