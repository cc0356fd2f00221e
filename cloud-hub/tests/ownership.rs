//! The hub's authorization rules, tested over a real QUIC connection with
//! real certificates: the store id comes from the certificate; a store may
//! write only its own documents, and only with its own actors; hub-owned
//! documents are read-only to stores; revoked stores are refused. Every
//! refusal leaves nothing applied.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, AutoCommit};
use chrono::NaiveDate;
use linli_hub::hub::HubPaths;
use linli_hub::server::HubServer;
use linli_shared::docs::ledger::{SaleFact, SaleLineFact, record_sale};
use linli_shared::docs::{DocId, Owner, new_doc};
use linli_shared::sync::Frame;
use linli_sync::session::{read_frame, write_frame};
use linli_sync::tls::{self, Ca, StoreIdentity, TransportSettings};

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

fn ledger_with_sale(id: &DocId, actor: ActorId, sale_id: &str) -> AutoCommit {
    let mut doc = new_doc(id, actor).unwrap();
    record_sale(
        &mut doc,
        &SaleFact {
            sale_id: sale_id.into(),
            ticket_no: "X-20261125-0001".into(),
            created_at: "2026-11-25T02:00:00.000Z".into(),
            cashier: "mallory".into(),
            total_fen: 100,
            lines: vec![SaleLineFact {
                sku: "P00001".into(),
                qty: 1,
                total_fen: 100,
                unit_price_fen: 0,
            }],
            payments: vec![],
            member: false,
            ..Default::default()
        },
    )
    .unwrap();
    doc.commit();
    doc
}

struct Peer {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    _endpoint: quinn::Endpoint,
}

async fn connect(server: &HubServer, identity: &std::path::Path) -> Peer {
    tls::install_crypto_provider();
    let id = StoreIdentity::load(identity).unwrap();
    let cfg = tls::client_config(&id, TransportSettings::default()).unwrap();
    let endpoint = tls::client_endpoint(cfg, server.quic_addr).unwrap();
    let conn = tls::connect(&endpoint, server.quic_addr, "localhost")
        .await
        .unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    write_frame(&mut send, &Frame::Index(Default::default()))
        .await
        .unwrap();
    Peer {
        conn,
        send,
        recv,
        _endpoint: endpoint,
    }
}

/// How a push of one document ended: the hub answered and both sides have
/// nothing more to send, or the hub refused it.
#[derive(Debug, PartialEq)]
enum Pushed {
    Converged,
    Refused(String),
}

/// The hub's next frame; a hub that stays silent or closes the stream fails
/// the test (silence is not an answer).
async fn next_frame(peer: &mut Peer) -> Frame {
    match tokio::time::timeout(Duration::from_secs(10), read_frame(&mut peer.recv)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => panic!("the hub closed the stream without answering"),
        Ok(Err(e)) => panic!("reading the hub's answer failed: {e}"),
        Err(_) => panic!("the hub did not answer within 10 s"),
    }
}

/// Runs the automerge sync protocol for one document against the hub until
/// it converges or the hub refuses.
async fn push_doc(peer: &mut Peer, id: &DocId, doc: &mut AutoCommit) -> Pushed {
    let mut state = sync::State::new();
    if let Some(m) = doc.sync().generate_sync_message(&mut state) {
        write_frame(
            &mut peer.send,
            &Frame::Sync {
                doc: id.clone(),
                msg: m.encode(),
            },
        )
        .await
        .unwrap();
    }
    for _ in 0..20 {
        match next_frame(peer).await {
            Frame::Refused { doc, reason } if &doc == id => return Pushed::Refused(reason),
            Frame::Sync { doc: d, msg } if &d == id => {
                doc.sync()
                    .receive_sync_message(&mut state, sync::Message::decode(&msg).unwrap())
                    .unwrap();
                match doc.sync().generate_sync_message(&mut state) {
                    Some(m) => write_frame(
                        &mut peer.send,
                        &Frame::Sync {
                            doc: id.clone(),
                            msg: m.encode(),
                        },
                    )
                    .await
                    .unwrap(),
                    None => return Pushed::Converged,
                }
            }
            _ => {}
        }
    }
    panic!("no end to the sync of {id} after 20 frames");
}

/// Sends one sync message for `id`, then a probe on the same stream (a
/// sale in S002's own ledger of another day, which the hub always answers),
/// and returns what the hub said about `id` before it answered the probe.
/// The hub handles a stream's frames in order, so the probe's answer proves
/// the hub processed the message: silence is then an answer, not a timeout.
async fn said_before_probe(peer: &mut Peer, id: &DocId, doc: &mut AutoCommit) -> Vec<Frame> {
    let mut state = sync::State::new();
    let msg = doc.sync().generate_sync_message(&mut state).unwrap();
    write_frame(
        &mut peer.send,
        &Frame::Sync {
            doc: id.clone(),
            msg: msg.encode(),
        },
    )
    .await
    .unwrap();
    let probe_id = DocId::store_ledger("S002", day().pred_opt().unwrap());
    let mut probe = ledger_with_sale(
        &probe_id,
        Owner::Store("S002".into()).actor([3; 8]),
        "PROBE1",
    );
    let m = probe
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .unwrap();
    write_frame(
        &mut peer.send,
        &Frame::Sync {
            doc: probe_id.clone(),
            msg: m.encode(),
        },
    )
    .await
    .unwrap();
    let mut said = Vec::new();
    for _ in 0..50 {
        let f = next_frame(peer).await;
        let about = match &f {
            Frame::Sync { doc, .. } | Frame::Refused { doc, .. } => Some(doc.clone()),
            _ => None,
        };
        match about {
            Some(d) if d == probe_id => return said,
            Some(d) if &d == id => said.push(f),
            _ => {}
        }
    }
    panic!("the hub never answered the probe");
}

/// What a malicious store would send: a sync message that carries every
/// change of the document whatever the hub said it wants (automerge itself
/// would hold the changes back from a read-only peer).
async fn force_push(peer: &mut Peer, id: &DocId, doc: &mut AutoCommit) -> Option<String> {
    let mut state = sync::State::new();
    let mut msg = doc.sync().generate_sync_message(&mut state).unwrap();
    let changes: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    msg.changes = changes.into();
    write_frame(
        &mut peer.send,
        &Frame::Sync {
            doc: id.clone(),
            msg: msg.encode(),
        },
    )
    .await
    .unwrap();
    for _ in 0..20 {
        if let Frame::Refused { doc, reason } = next_frame(peer).await
            && &doc == id
        {
            return Some(reason);
        }
    }
    None
}

/// Whether any change the hub holds in `id` was made by `owner`'s actors.
async fn hub_holds_changes_by(server: &HubServer, id: &DocId, owner: Owner) -> bool {
    let id = id.clone();
    server
        .hub
        .with_docs(move |c, docs| {
            Ok(docs
                .read(c, &id, |d| {
                    let mut d = d.clone();
                    d.get_changes(&[])
                        .iter()
                        .any(|ch| owner.owns_actor(ch.actor_id()))
                })?
                .unwrap_or(false))
        })
        .await
        .unwrap()
}

async fn hub_has_doc(server: &HubServer, id: &DocId) -> bool {
    let id = id.clone();
    server
        .hub
        .with_docs(move |c, docs| Ok(docs.exists(c, &id)?))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_write_only_their_own_documents() {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().join("hub"),
    };
    let server = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let ca = Ca::load(&paths.ca_dir()).unwrap();
    ca.issue_store("S002", &dir.path().join("s2")).unwrap();
    let mut s2 = connect(&server, &dir.path().join("s2")).await;

    // 1. S002 pushes a ledger of S001, even with S001's actor: out of scope
    let s1_ledger = DocId::store_ledger("S001", day());
    let mut forged = ledger_with_sale(
        &s1_ledger,
        Owner::Store("S001".into()).actor([9; 8]),
        "FORGED1",
    );
    let refusal = push_doc(&mut s2, &s1_ledger, &mut forged).await;
    assert!(
        matches!(&refusal, Pushed::Refused(r) if r.contains("scope")),
        "{refusal:?}"
    );
    assert!(!hub_has_doc(&server, &s1_ledger).await);
    assert!(server.hub.sales("S001", day()).await.unwrap().is_empty());

    // 2. S002 writes into its own ledger with another store's actor
    let s2_ledger = DocId::store_ledger("S002", day());
    let mut foreign_actor = ledger_with_sale(
        &s2_ledger,
        Owner::Store("S001".into()).actor([7; 8]),
        "FORGED2",
    );
    let refusal = push_doc(&mut s2, &s2_ledger, &mut foreign_actor).await;
    assert!(
        matches!(&refusal, Pushed::Refused(r) if r.contains("actor")),
        "a change by a foreign actor is refused: {refusal:?}"
    );
    assert!(!hub_holds_changes_by(&server, &s2_ledger, Owner::Store("S001".into())).await);
    assert!(
        server.hub.sales("S002", day()).await.unwrap().is_empty(),
        "nothing of it applied"
    );

    // 3. S002 writes into the hub's catalog
    let catalog = DocId::catalog(1);
    let mut cat = new_doc(&catalog, Owner::Store("S002".into()).actor([5; 8])).unwrap();
    cat.commit();
    // automerge already holds changes back from the hub's read-only state...
    // (the hub processes the message and says nothing: it asks a store for
    // no changes to a document the store does not own)
    let said = said_before_probe(&mut s2, &catalog, &mut cat).await;
    assert!(
        !said.iter().any(|f| matches!(f, Frame::Refused { .. })),
        "{said:?}"
    );
    assert!(!hub_holds_changes_by(&server, &catalog, Owner::Store("S002".into())).await);
    // ...and a store that sends them anyway is refused
    let refusal = force_push(&mut s2, &catalog, &mut cat).await;
    assert!(
        refusal.unwrap().contains("not accepted"),
        "stores cannot write hub documents"
    );
    assert!(!hub_holds_changes_by(&server, &catalog, Owner::Store("S002".into())).await);

    // 4. its own ledger with its own actor is accepted (the rules are not
    //    refusing everything)
    let mut own = ledger_with_sale(
        &s2_ledger,
        Owner::Store("S002".into()).actor([1; 8]),
        "GOOD1",
    );
    assert_eq!(
        push_doc(&mut s2, &s2_ledger, &mut own).await,
        Pushed::Converged
    );
    let sales = server.hub.sales("S002", day()).await.unwrap();
    assert_eq!(sales.len(), 1);
    assert_eq!(sales[0].sale_id, "GOOD1");
    let links = server.hub.links();
    assert!(
        links["S002"].refused >= 2,
        "refusals are counted for the regional view"
    );
    s2.conn.close(0u32.into(), b"done");

    // 5. a revoked store is closed right after its handshake
    ca.revoke("S002").unwrap();
    let id = StoreIdentity::load(&dir.path().join("s2")).unwrap();
    let endpoint = tls::client_endpoint(
        tls::client_config(&id, TransportSettings::default()).unwrap(),
        server.quic_addr,
    )
    .unwrap();
    let conn = tls::connect(&endpoint, server.quic_addr, "localhost")
        .await
        .unwrap();
    if let Ok((mut send, _recv)) = conn.open_bi().await {
        let _ = write_frame(&mut send, &Frame::Index(Default::default())).await;
    }
    let reason = tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(
                close.error_code,
                quinn::VarInt::from_u32(tls::CLOSE_REVOKED)
            );
        }
        other => panic!("expected a revocation close, got {other:?}"),
    }
    assert_eq!(
        server.hub.sales("S002", day()).await.unwrap().len(),
        1,
        "nothing after revocation"
    );
    server.shutdown().await;
}

/// Waits, with a deadline, until `cond` holds of the hub's documents.
async fn until_docs(
    server: &HubServer,
    what: &str,
    cond: impl Fn(&linli_sync::doc_store::Docs) -> bool + Send + Sync + Clone + 'static,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = cond.clone();
        if server
            .hub
            .with_docs(move |_, docs| Ok(c(docs)))
            .await
            .unwrap()
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hub's memory follows the stores connected: when a store's session
/// ends, the documents only its sessions write leave the cache (they reload
/// from their chunks), and its next session builds on what the hub stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stores_documents_leave_the_hubs_memory_when_its_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let paths = HubPaths {
        data_dir: dir.path().join("hub"),
    };
    let server = HubServer::start(
        &paths,
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:0".parse().unwrap(),
        &[],
    )
    .await
    .unwrap();
    let ca = Ca::load(&paths.ca_dir()).unwrap();
    ca.issue_store("S002", &dir.path().join("s2")).unwrap();
    let ledger = DocId::store_ledger("S002", day());
    let mut doc = ledger_with_sale(&ledger, Owner::Store("S002".into()).actor([1; 8]), "KEEP1");

    let mut s2 = connect(&server, &dir.path().join("s2")).await;
    assert_eq!(
        push_doc(&mut s2, &ledger, &mut doc).await,
        Pushed::Converged
    );
    let id = ledger.clone();
    assert!(
        server
            .hub
            .with_docs(move |_, docs| Ok(docs.is_cached(&id)))
            .await
            .unwrap(),
        "held while the store is connected"
    );
    s2.conn.close(0u32.into(), b"bye");
    drop(s2);
    let id = ledger.clone();
    until_docs(
        &server,
        "the store's ledger leaves the cache",
        move |docs| !docs.is_cached(&id),
    )
    .await;

    // a new session adds a sale on top of what the hub stored
    record_sale(
        &mut doc,
        &SaleFact {
            sale_id: "KEEP2".into(),
            ticket_no: "X-20261125-0002".into(),
            total_fen: 200,
            ..Default::default()
        },
    )
    .unwrap();
    doc.commit();
    let mut s2 = connect(&server, &dir.path().join("s2")).await;
    assert_eq!(
        push_doc(&mut s2, &ledger, &mut doc).await,
        Pushed::Converged
    );
    let ids: Vec<String> = server
        .hub
        .sales("S002", day())
        .await
        .unwrap()
        .iter()
        .map(|s| s.sale_id.clone())
        .collect();
    assert_eq!(ids, ["KEEP1", "KEEP2"]);
}
