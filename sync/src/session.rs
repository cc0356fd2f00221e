//! One sync session over one QUIC stream: the driver of the sans-IO
//! [`Session`] (`linli_shared::sync::session`, which owns every rule of the
//! protocol) on the store and on the hub alike.
//!
//! The driver only moves things: frames between the stream and the state
//! machine, the machine's questions to the replica's [`SyncHost`] (its
//! writer thread and [`crate::doc_store::Docs`]) and the answers back, local
//! commits from a broadcast channel, and the batching window's timer.

use std::future::Future;
use std::sync::Arc;

use linli_shared::docs::DocId;
use linli_shared::sync::session::{Applied, Effect, Session};
use linli_shared::sync::{Frame, FrameError, Index};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::doc_store::{DocError, Received};

pub use linli_shared::sync::session::{PUSH_BATCH, REINDEX_EVERY};

/// What a session needs from its replica. Every method runs the work in the
/// replica's database writer.
pub trait SyncHost: Send + Sync + 'static {
    /// Open documents of this session's scope, with heads, and how long
    /// the oldest fact not yet in them has waited.
    fn index(&self) -> impl Future<Output = Result<Index, DocError>> + Send;
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
    /// The store whose documents the session carries (its scope).
    fn scope(&self) -> &str;
    /// The peer's index arrived (what it held as the session began).
    fn peer_index(&self, _index: Index) -> impl Future<Output = Result<(), DocError>> + Send {
        async { Ok(()) }
    }
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
    let mut core = Session::new(host.scope());
    let result = drive(
        &host,
        &mut core,
        &mut send,
        &mut frames,
        &mut local,
        &cancel,
    )
    .await;
    reader_cancel.cancel();
    let _ = reader.await;
    let _ = send.finish();
    result
}

async fn drive<H: SyncHost>(
    host: &Arc<H>,
    core: &mut Session,
    send: &mut quinn::SendStream,
    frames: &mut mpsc::Receiver<Result<Option<Frame>, SessionError>>,
    local: &mut broadcast::Receiver<DocId>,
    cancel: &CancellationToken,
) -> Result<(), SessionError> {
    loop {
        while let Some(effect) = core.poll_effect() {
            if let Some(frame) = carry_out(&**host, core, effect, now()).await? {
                write_frame(send, &frame).await?;
            }
        }
        let flush_at = core.poll_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            f = frames.recv() => {
                let frame = match f {
                    None | Some(Ok(None)) => return Err(SessionError::Closed),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Some(frame))) => frame,
                };
                host.on_activity();
                core.handle_frame(frame);
            }
            changed = local.recv() => match changed {
                Ok(doc) => core.local_commit(doc, now()),
                // missed notifications: compare indexes again
                Err(broadcast::error::RecvError::Lagged(_)) => core.local_lagged(),
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = sleep_until(flush_at), if flush_at.is_some() => core.handle_timeout(now()),
        }
    }
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Carries out one effect against the replica, feeding its answer back to
/// `core`; a frame to send is returned for the caller's transport (the QUIC
/// stream here, a virtual network in a simulation).
pub async fn carry_out<H: SyncHost>(
    host: &H,
    core: &mut Session,
    effect: Effect,
    now: std::time::Instant,
) -> Result<Option<Frame>, SessionError> {
    if tracing::enabled!(tracing::Level::TRACE) {
        tracing::trace!(scope = host.scope(), effect = %summary(&effect), "sync effect");
    }
    match effect {
        Effect::Send(frame) => return Ok(Some(frame)),
        Effect::ReadIndex => core.index_read(host.index().await?, now),
        Effect::Generate(doc) => {
            let msg = host.generate(doc.clone()).await?;
            core.generated(doc, msg);
        }
        Effect::Apply { doc, msg } => match host.receive(doc.clone(), msg).await {
            Ok(r) => {
                if r.new_changes > 0 {
                    host.on_applied(&doc, r.new_changes);
                }
                core.applied(
                    doc,
                    Applied::Done {
                        new_changes: r.new_changes,
                    },
                );
            }
            Err(DocError::Refused(reason) | DocError::Behind(reason)) => {
                tracing::warn!(%doc, %reason, "refused changes from peer");
                core.applied(doc, Applied::Refused(reason));
            }
            Err(DocError::Message(reason)) => {
                tracing::warn!(%doc, %reason, "undecodable sync message");
                core.applied(doc, Applied::Refused(reason));
            }
            Err(e) => return Err(e.into()),
        },
        Effect::PeerIndex(index) => host.peer_index(index).await?,
        Effect::PeerRefused { doc, reason } => {
            tracing::warn!(%doc, %reason, "peer refused our message");
        }
        Effect::OutOfScope(doc) => {
            tracing::warn!(%doc, "peer sent a document outside its scope; refused");
        }
    }
    Ok(None)
}

/// One line about an effect for the trace log (message bodies by size).
fn summary(effect: &Effect) -> String {
    match effect {
        Effect::Send(Frame::Index(i)) => format!("send index of {} documents", i.entries.len()),
        Effect::Send(Frame::Sync { doc, msg }) => format!("send {doc}: {} B", msg.len()),
        Effect::Send(Frame::Refused { doc, reason }) => format!("send refusal of {doc}: {reason}"),
        Effect::ReadIndex => "read the index".into(),
        Effect::Generate(doc) => format!("generate {doc}"),
        Effect::Apply { doc, msg } => format!("apply {doc}: {} B", msg.len()),
        Effect::PeerIndex(i) => format!("peer index of {} documents", i.entries.len()),
        Effect::PeerRefused { doc, reason } => format!("peer refused {doc}: {reason}"),
        Effect::OutOfScope(doc) => format!("out of scope: {doc}"),
    }
}
