use serde_json::{Value, json};

use super::*;

fn ev(what: Happened, conn: u64, session: &str) -> SessionEvent {
    SessionEvent {
        what,
        conn: ConnId(conn),
        auth_name: ByteString::from_static("user\"1"),
        session: ByteString::from(session),
        at_ms: 1_000,
    }
}

const LOST: Happened = Happened::Disconnected(EndReason::ConnectionLost);

#[test]
fn every_end_reason_has_its_event_grid_name() {
    let all = [
        (EndReason::ClientDisconnect, "ClientInitiatedDisconnect"),
        (EndReason::ConnectionLost, "ConnectionLost"),
        (EndReason::KeepAliveTimeout, "ConnectionLost"),
        (EndReason::TakenOver, "SessionTakenOver"),
        (EndReason::ProtocolError, "ClientError"),
        (EndReason::ServerShutdown, "ServerInitiatedDisconnect"),
        (EndReason::SendTimeout, "QuotaExceeded"),
        (EndReason::QuotaExceeded, "QuotaExceeded"),
        (EndReason::ServerError, "ServerError"),
    ];
    for (r, name) in all {
        assert_eq!(disconnection_reason(r), name, "{r:?}");
    }
}

#[test]
fn a_connection_pair_shares_its_number_and_the_next_connection_takes_the_next() {
    let mut n = Numbering::default();
    assert_eq!(n.number(&ev(Happened::Connected, 1, "s")), 1);
    assert_eq!(n.number(&ev(LOST, 1, "s")), 1);
    assert_eq!(n.number(&ev(Happened::Connected, 2, "s")), 2);
    // A takeover: the new connection's Connected may arrive before the old one's Disconnected.
    assert_eq!(n.number(&ev(Happened::Connected, 3, "s")), 3);
    assert_eq!(n.number(&ev(LOST, 2, "s")), 2);
    assert_eq!(n.number(&ev(LOST, 3, "s")), 3);
    // Another session name counts on its own.
    assert_eq!(n.number(&ev(Happened::Connected, 4, "t")), 1);
    // A Disconnected whose Connected was dropped: the next number, never an old one.
    assert_eq!(n.number(&ev(LOST, 99, "s")), 4);
    assert_eq!(n.number(&ev(Happened::Connected, 5, "s")), 5);
}

#[test]
fn idle_names_are_forgotten_open_ones_kept() {
    let mut n = Numbering::default();
    n.number(&ev(Happened::Connected, 1, "gone"));
    n.number(&ev(LOST, 1, "gone"));
    n.number(&ev(Happened::Connected, 2, "open"));
    n.prune(1_000 + FORGET_AFTER_MS - 1);
    assert_eq!(n.names(), 2);
    n.prune(1_000 + FORGET_AFTER_MS);
    assert_eq!(n.names(), 1);
    assert_eq!(n.number(&ev(LOST, 2, "open")), 1);
    assert_eq!(n.number(&ev(Happened::Connected, 3, "gone")), 1);
}

/// A Connected whose Disconnected was dropped (full backlog) does not hold its entries for
/// ever: a storm of such connections cannot grow the maps without bound.
#[test]
fn connections_whose_end_never_came_are_forgotten() {
    let mut n = Numbering::default();
    for c in 0..1000 {
        n.number(&ev(Happened::Connected, c, &format!("dev-{c}")));
    }
    assert_eq!((n.open(), n.names()), (1000, 1000));
    n.prune(1_000 + FORGET_OPEN_AFTER_MS - 1);
    assert_eq!((n.open(), n.names()), (1000, 1000));
    n.prune(1_000 + FORGET_OPEN_AFTER_MS);
    assert_eq!(n.open(), 0);
    // Their names then age out like any other.
    n.prune(1_000 + FORGET_OPEN_AFTER_MS + FORGET_AFTER_MS);
    assert_eq!(n.names(), 0);
}

#[test]
fn events_have_event_grids_shape() {
    let topic = "/providers/Microsoft.EventGrid/namespaces/default";
    let e = event(
        "id-1",
        topic,
        "default",
        &ev(Happened::Disconnected(EndReason::TakenOver), 7, "dev/1"),
        42,
        "2024-05-01T10:00:00.000Z",
    );
    let v: Value = serde_json::from_slice(&e.ev.raw).unwrap();
    assert_eq!(
        v,
        json!({
            "id": "id-1",
            "topic": topic,
            "subject": "clients/user\"1/sessions/dev/1",
            "data": {
                "namespaceName": "default",
                "clientAuthenticationName": "user\"1",
                "clientSessionName": "dev/1",
                "sequenceNumber": 42,
                "disconnectionReason": "SessionTakenOver",
            },
            "eventType": DISCONNECTED,
            "dataVersion": "1",
            "metadataVersion": "1",
            "eventTime": "2024-05-01T10:00:00.000Z",
        })
    );
    assert_eq!(e.ev.ty.as_str(), DISCONNECTED);
    assert_eq!(
        e.ev.subject.as_deref(),
        Some("clients/user\"1/sessions/dev/1")
    );
    assert_eq!(e.ev.source.as_str(), topic);
    assert_eq!(e.data_version.as_str(), "1");

    let c = event(
        "id-2",
        topic,
        "default",
        &ev(Happened::Connected, 7, "s"),
        1,
        "t",
    );
    let v: Value = serde_json::from_slice(&c.ev.raw).unwrap();
    assert_eq!(v["eventType"], CONNECTED);
    assert!(v["data"].get("disconnectionReason").is_none(), "{v}");
}

#[test]
fn ids_are_unique_and_uuid_shaped() {
    let mut ids = Ids::new();
    let (a, b) = (ids.next(), ids.next());
    assert_ne!(a, b);
    assert_eq!(a.len(), 36, "{a}");
    assert_eq!(a.matches('-').count(), 4, "{a}");
}
