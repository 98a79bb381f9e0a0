//! The store as the binary uses it: damaged and empty files refused at start, file modes, and a
//! full disk that the store recovers from without a restart.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::http::{Resp, request};
use common::raw::{Client, Opts, PUBACK};
use common::{Server, TempDir};
use serde_json::{Value, json};

const ADMIN: &str = "test-admin-key-0123456789";
const API: &str = "api-version=2024-06-01";

fn mgmt(srv: &Server, method: &str, path: &str, body: &[u8]) -> Resp {
    common::http::mgmt(srv.http, ADMIN, method, path, body)
}

/// A topic `store-topic` with a queue subscription `reader`; answers the namespace key.
fn topic_and_queue(srv: &Server) -> String {
    let r = mgmt(
        srv,
        "PUT",
        "/mgmt/namespaces/default/topics/store-topic",
        br#"{"properties":{}}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = mgmt(
        srv,
        "PUT",
        "/mgmt/namespaces/default/topics/store-topic/eventSubscriptions/reader",
        json!({"properties": {"deliveryConfiguration": {"deliveryMode": "Queue", "queue": {}}}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let r = mgmt(srv, "POST", "/mgmt/namespaces/default/listKeys", b"");
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["key1"].as_str().unwrap().to_string()
}

fn publish(srv: &Server, key: &str, first: usize, n: usize, size: usize) -> Resp {
    let events: Vec<Value> = (first..first + n)
        .map(|i| {
            json!({"specversion": "1.0", "id": format!("e{i}"), "source": "s", "type": "t",
                   "data": "x".repeat(size)})
        })
        .collect();
    let auth = format!("Authorization: SharedAccessKey {key}");
    request(
        srv.http,
        "POST",
        &format!("/namespaces/default/topics/store-topic:publish?{API}"),
        &[
            &auth,
            "Content-Type: application/cloudevents-batch+json; charset=utf-8",
        ],
        json!(events).to_string().as_bytes(),
    )
}

fn sub_op(srv: &Server, key: &str, action: &str, query: &str, body: &[u8]) -> Resp {
    let auth = format!("Authorization: SharedAccessKey {key}");
    request(
        srv.http,
        "POST",
        &format!(
            "/namespaces/default/topics/store-topic/eventsubscriptions/reader:{action}?{API}{query}"
        ),
        &[&auth, "Content-Type: application/json"],
        body,
    )
}

/// Acknowledges `tokens`; answers how many succeeded.
fn acknowledge(srv: &Server, key: &str, tokens: &[&str]) -> usize {
    let body = json!({ "lockTokens": tokens }).to_string();
    let r = sub_op(srv, key, "acknowledge", "", body.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["succeededLockTokens"].as_array().unwrap().len()
}

/// Runs the binary on `dir` until it exits (it must refuse to start).
fn start_refused(dir: &Path) -> Output {
    let mut child = Server::command(dir)
        .env("EVGRID_ADMIN_KEY", ADMIN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("evgrid started on a store it must refuse");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Garbage inside the pages of a cleanly closed store: refused with the file named and what to
/// do, not a panic (redb hit `unreachable!` decoding the pages: exit 101, no file named).
#[test]
fn garbage_inside_a_store_is_refused_with_the_file_named_not_a_panic() {
    let dir = TempDir::new("garbage");
    let data = dir.0.join("data");
    {
        let mut srv = Server::start_in(&data, &[("EVGRID_ADMIN_KEY", ADMIN)]);
        let key = topic_and_queue(&srv);
        for b in 0..4 {
            assert_eq!(publish(&srv, &key, b * 500, 500, 1000).status, 200);
        }
        assert!(srv.terminate().success());
    }
    let store = data.join("store.redb");
    // evgrid's own exit leaves the file for redb to repair (which checks it); a clean close
    // (as redb's own tools and a future graceful close leave it) is trusted as it is.
    drop(evgrid_actors::store::redb::RedbStore::open_beside_log(&store).unwrap());
    let mut bytes = std::fs::read(&store).unwrap();
    let len = bytes.len();
    for b in &mut bytes[len / 4..len / 2] {
        *b = 0xAB;
    }
    std::fs::write(&store, &bytes).unwrap();

    let out = start_refused(&data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!("{} is damaged", store.display()))
            && err.contains("restore it from a backup"),
        "{err}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), bytes, "left as it was");
}

/// An existing zero-byte store lost its data: refused and left alone (redb would initialize it
/// as a new store, and evgrid started with no resources and no keys).
#[test]
fn an_empty_store_file_is_refused_and_left_alone() {
    let dir = TempDir::new("empty");
    let store = dir.0.join("store.redb");
    std::fs::write(&store, b"").unwrap();
    let out = start_refused(&dir.0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{} is empty", store.display())) && err.contains("backup"),
        "{err}"
    );
    assert_eq!(
        std::fs::metadata(&store).unwrap().len(),
        0,
        "left as it was"
    );
    assert!(!dir.0.join("store.redb.new").exists());
}

/// The store and `admin.key` hold every key: owner only, and so is a data directory evgrid
/// creates.
#[test]
fn files_holding_keys_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("modes");
    let data = dir.0.join("fresh").join("data");
    let srv = Server::start_in(&data, &[]);
    assert!(srv.admin_key.is_some(), "admin.key generated");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("store.redb")), 0o600, "store.redb");
    assert_eq!(mode(&data.join("admin.key")), 0o600, "admin.key");
}

/// Unmounts on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A tmpfs of `mib` MiB mounted in a fresh directory, unmounted (then removed) when the pair is
/// dropped; `None`, after saying that `test` is skipped, where `mount` is not allowed (not root).
fn tmpfs(mib: u32, test: &str) -> Option<((Mount, TempDir), std::path::PathBuf)> {
    let dir = TempDir::new("tmpfs");
    let mnt = dir.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "evgrid-test"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(o) if o.status.success() => Some(((Mount(mnt.clone()), dir), mnt)),
        other => {
            eprintln!(
                "SKIPPED {test}: cannot mount a tmpfs here ({other:?}); run as root to include it"
            );
            None
        }
    }
}

fn readyz(srv: &Server) -> u16 {
    srv.get("/readyz").0
}

/// A real full disk (a small tmpfs): the publish whose commit hits ENOSPC gets a 500 naming it,
/// `/readyz` says not ready while the disk stays full, and once a file is deleted the store
/// recovers without a restart: publishes succeed again, readiness is back, and every event
/// accepted before is still there. Needs `mount` (root); says so and does nothing otherwise.
#[test]
fn a_full_disk_is_survived_without_a_restart() {
    let Some((_dir, mnt)) = tmpfs(16, "a_full_disk_is_survived_without_a_restart") else {
        return;
    };
    let data = mnt.join("data");
    let srv = Server::start_in(
        &data,
        &[
            ("EVGRID_ADMIN_KEY", ADMIN),
            ("EVGRID_EVENTS_MIN_LOCK_DURATION_SECS", "60"),
            // A real ENOSPC, not the floor that keeps it from happening.
            ("EVGRID_STORE_MIN_FREE_BYTES", "0"),
        ],
    );
    let key = topic_and_queue(&srv);
    assert_eq!(publish(&srv, &key, 0, 100, 1000).status, 200);
    assert_eq!(readyz(&srv), 200);

    // Fill the disk.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }
    // Publish until a commit needs space that is not there (redb reuses its free pages first).
    let mut accepted = 100;
    let failed = loop {
        let r = publish(&srv, &key, accepted, 50, 1000);
        if r.status != 200 {
            break r;
        }
        accepted += 50;
        assert!(accepted < 20_000, "the disk never filled");
    };
    assert_eq!(failed.status, 500, "{failed:?}");
    assert_eq!(failed.code(), "InternalServerError", "{failed:?}");
    assert!(
        failed.message().contains("No space left on device"),
        "{failed:?}"
    );
    // Still full: not ready, and changes are refused (503 while the writer retries, or 500 if
    // a retry got through and the next commit ran out of space again), never applied.
    assert_eq!(readyz(&srv), 503);
    for _ in 0..3 {
        let r = publish(&srv, &key, 90_000, 10, 1000);
        assert!(matches!(r.status, 500 | 503), "{r:?}");
        assert!(r.code() == "ServiceUnavailable" || r.code() == "InternalServerError");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(readyz(&srv), 503);
    assert!(srv.metric("evgrid_store_commit_failures_total") >= 1.0);
    assert_eq!(srv.metric("evgrid_store_healthy"), 0.0);

    // Space freed: ready again within the writer's retry pause, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&srv) != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again after space was freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(srv.metric("evgrid_store_healthy"), 1.0);
    let r = publish(&srv, &key, 100_000, 10, 1000);
    assert_eq!(r.status, 200, "{r:?}");
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/namespaces/default/topics/after-full",
        br#"{"properties":{}}"#,
    );
    assert_eq!(r.status, 201, "{r:?}");

    // Every event accepted before the failure, and the ones after; none of the refused ones.
    let pulled = receive(&srv, &key, usize::MAX);
    let mut want: Vec<String> = (0..accepted).map(|i| format!("e{i}")).collect();
    want.extend((100_000..100_010).map(|i| format!("e{i}")));
    assert_eq!(pulled.len(), want.len(), "events lost or duplicated");
    let got: std::collections::HashSet<_> = pulled.iter().map(|(id, _)| id.clone()).collect();
    for id in &want {
        assert!(got.contains(id), "{id} lost");
    }
    // And acknowledging commits again.
    for chunk in pulled.chunks(100) {
        let tokens: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(acknowledge(&srv, &key, &tokens), chunk.len());
    }
}

/// Free bytes of the file system holding `dir`, as an unprivileged writer sees them.
fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a writable statvfs.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// The free-space floor (`store.min_free_bytes`) on a small tmpfs: once a file pushes free space
/// under it, publishes get 503 with Retry-After and an MQTT 5 publisher routed into the topic
/// gets Quota exceeded, while receiving and acknowledging go on and readiness stays; once the
/// file is gone, publishes are taken again, and everything accepted before is there. Needs
/// `mount` (root); says so and does nothing otherwise.
#[test]
fn the_free_space_floor_refuses_new_events_and_recovers_when_space_returns() {
    let test = "the_free_space_floor_refuses_new_events_and_recovers_when_space_returns";
    let Some((_dir, mnt)) = tmpfs(96, test) else {
        return;
    };
    let floor: u64 = 32 << 20;
    let srv = Server::start_in(
        &mnt.join("data"),
        &[
            ("EVGRID_ADMIN_KEY", ADMIN),
            ("EVGRID_EVENTS_MIN_LOCK_DURATION_SECS", "60"),
            ("EVGRID_STORE_MIN_FREE_BYTES", &floor.to_string()),
        ],
    );
    let key = topic_and_queue(&srv);
    let r = mgmt(
        &srv,
        "PUT",
        "/mgmt/namespaces/default",
        json!({"properties": {"topicSpacesConfiguration": {"state": "Enabled",
            "routeTopicResourceId": "/providers/Microsoft.EventGrid/namespaces/default/topics/store-topic"}}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(publish(&srv, &key, 0, 100, 1000).status, 200);

    // A file takes the free space to half the floor.
    let filler = mnt.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 1 << 20];
        while free_bytes(&mnt) > floor / 2 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    let r = publish(&srv, &key, 1000, 10, 1000);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.code(), "ServiceUnavailable", "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert!(r.message().contains("store.min_free_bytes"), "{r:?}");
    let mut v5 = Client::ok(srv.mqtt, Opts::v5("floor-5"));
    v5.publish("plant/a", b"one", 1, false, 9, &[]);
    let ack = v5.expect(PUBACK);
    assert_eq!(
        ack.body.get(2).copied(),
        Some(0x97),
        "Quota exceeded: {ack:?}"
    );
    assert!(srv.metric("evgrid_store_full_refusals_total") >= 2.0);
    assert_eq!(
        srv.metric("evgrid_mqtt_routed_total{outcome=\"store_full\"}"),
        1.0
    );
    assert!(srv.metric("evgrid_store_free_bytes") < floor as f64);
    assert_eq!(readyz(&srv), 200, "reads and settlements still work");

    // What was accepted is readable, and acknowledging (which frees space) commits.
    let r = sub_op(&srv, &key, "receive", "&maxEvents=10&maxWaitTime=10", b"");
    let got = r.json()["value"].as_array().unwrap().clone();
    assert_eq!(got.len(), 10, "{r:?}");
    let tokens: Vec<&str> = got
        .iter()
        .map(|v| v["brokerProperties"]["lockToken"].as_str().unwrap())
        .collect();
    assert_eq!(acknowledge(&srv, &key, &tokens), 10);

    // Space returns: publishes are taken again at once.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(publish(&srv, &key, 2000, 10, 1000).status, 200);
    v5.publish("plant/a", b"two", 1, false, 10, &[]);
    assert_eq!(v5.expect(PUBACK).body.get(2).copied().unwrap_or(0), 0);
    let pulled = receive(&srv, &key, usize::MAX);
    let mut ids: Vec<String> = pulled.into_iter().map(|(id, _)| id).collect();
    ids.retain(|id| id.starts_with('e'));
    ids.sort();
    let mut want: Vec<String> = (10..100)
        .chain(2000..2010)
        .map(|i| format!("e{i}"))
        .collect();
    want.sort();
    assert_eq!(ids, want, "the accepted events, none of the refused ones");
}

/// (id, lock token) of up to `n` events the subscription hands out, each locked so each comes
/// once; fewer only when the queue runs dry (the last, empty receive waits its 10 s minimum).
fn receive(srv: &Server, key: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let q = format!("&maxEvents={}&maxWaitTime=10", (n - out.len()).min(100));
        let r = sub_op(srv, key, "receive", &q, b"");
        assert_eq!(r.status, 200, "{r:?}");
        let got = r.json()["value"].as_array().unwrap().clone();
        if got.is_empty() {
            break;
        }
        out.extend(got.iter().map(|v| {
            (
                v["event"]["id"].as_str().unwrap().to_string(),
                v["brokerProperties"]["lockToken"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }));
    }
    out
}

fn segments(data: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(data.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The queue log (the default `store.backend`) through the binary: acknowledged events give
/// their segments back while the server runs, a `kill -9` keeps exactly the unacknowledged
/// ones, and a damaged segment is refused at start with the file named.
#[test]
fn the_queue_log_gives_space_back_keeps_what_was_not_acknowledged_and_refuses_damage() {
    let dir = TempDir::new("log");
    let data = dir.0.join("data");
    let env = [
        ("EVGRID_ADMIN_KEY", ADMIN),
        ("EVGRID_STORE_SEGMENT_BYTES", "1048576"),
    ];
    let srv = Server::start_in(&data, &env);
    let key = topic_and_queue(&srv);
    for b in 0..8 {
        assert_eq!(publish(&srv, &key, b * 500, 500, 1000).status, 200);
    }
    let before = segments(&data);
    assert!(before.len() >= 4, "{before:?}");
    // Acknowledge the first 3,000 of 4,000; the rest stay.
    let got = receive(&srv, &key, 3000);
    assert_eq!(got.len(), 3000);
    for chunk in got.chunks(500) {
        let tokens: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(acknowledge(&srv, &key, &tokens), tokens.len());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while segments(&data).len() > 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = segments(&data);
    assert!(after.len() < before.len() - 1, "{before:?} → {after:?}");
    assert!(
        !after.contains(&before[0]),
        "the first segment was reclaimed: {after:?}"
    );
    let m = request(srv.http, "GET", "/metrics", &[], b"");
    let reclaimed = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("evgrid_store_log_segments_reclaimed_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("evgrid_store_log_segments_reclaimed_total");
    assert!(reclaimed >= 1, "{reclaimed}");

    srv.kill9();
    drop(srv);
    let mut srv = Server::start_in(&data, &env);
    let mut left: Vec<String> = receive(&srv, &key, 1000)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    left.sort_by_key(|id| id[1..].parse::<usize>().unwrap());
    let want: Vec<String> = (3000..4000).map(|i| format!("e{i}")).collect();
    assert_eq!(left, want, "exactly the unacknowledged events, once each");
    let r = sub_op(&srv, &key, "receive", "&maxEvents=10&maxWaitTime=10", b"");
    assert_eq!(
        r.json()["value"].as_array().unwrap().len(),
        0,
        "nothing else"
    );
    assert!(srv.terminate().success());

    // One flipped byte in a segment that still holds events.
    let seg = segments(&data).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&seg, &bytes).unwrap();
    let out = start_refused(&data);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!("{} is damaged", seg.display())),
        "{err}"
    );
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "left as it was");
}
