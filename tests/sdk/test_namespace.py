"""Compatibility of evgrid's namespace pull delivery with the real azure-eventgrid SDK (4.22.1).

Run by `cargo test --test sdk` (tests/sdk.rs), which starts evgrid and sets:
  EVGRID_ENDPOINT  http://127.0.0.1:PORT/namespaces/default  (the SDK endpoint)
  EVGRID_KEY       key1 of that namespace
  EVGRID_ADMIN     the admin key (management API)
  EVGRID_HTTP      http://127.0.0.1:PORT
The server runs with EVGRID_EVENTS_MIN_LOCK_DURATION_SECS=1 so subscriptions here can use 3 s
locks. Every test creates its own topic and subscription, so tests are independent.

A receive with nothing available long-polls for the whole max_wait_time (>= 10 s), so each test
publishes before it receives; "nothing else is queued" is checked by publishing a marker event
and receiving only that marker.
"""

import os
import time
import urllib.parse
import uuid

import evgrid_mgmt
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.messaging import CloudEvent
from azure.core.rest import HttpRequest
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient

ENDPOINT = os.environ["EVGRID_ENDPOINT"]
KEY = os.environ["EVGRID_KEY"]
HTTP = os.environ["EVGRID_HTTP"].rstrip("/")
NAMESPACE = urllib.parse.urlparse(ENDPOINT).path.rstrip("/").rsplit("/", 1)[-1]

LOCK_SECS = 3
WAIT = 10  # the smallest max_wait_time the server accepts


# ---------------------------------------------------------------------------------------------
# Management API helpers (plain urllib, admin bearer key)


def mgmt(method, path, body=None):
    """Calls the management API; returns (status, parsed JSON or None); fails on an error."""
    status, doc = evgrid_mgmt.call(method, path, body, timeout=10)
    if status >= 400:
        raise AssertionError(f"{method} {path} -> {status}: {doc!r}")
    return status, doc


def sub_path(topic, sub):
    return f"/namespaces/{NAMESPACE}/topics/{topic}/eventSubscriptions/{sub}"


def create(max_delivery_count=10, dead_letter=True):
    """A fresh topic with one queue subscription; returns (topic, subscription) names."""
    tag = uuid.uuid4().hex[:10]
    topic, sub = f"topic-{tag}", f"sub-{tag}"
    status, _ = mgmt("PUT", f"/namespaces/{NAMESPACE}/topics/{topic}", {"properties": {}})
    assert status == 201
    queue = {
        "receiveLockDurationInSeconds": LOCK_SECS,
        "maxDeliveryCount": max_delivery_count,
    }
    if dead_letter:
        queue["deadLetterDestinationWithResourceIdentity"] = {
            "deadLetterDestination": {
                "endpointType": "StorageBlob",
                "properties": {"resourceId": "x", "blobContainerName": "dl"},
            }
        }
    body = {"properties": {"deliveryConfiguration": {"deliveryMode": "Queue", "queue": queue}}}
    status, doc = mgmt("PUT", sub_path(topic, sub), body)
    assert status == 201, doc
    return topic, sub


def dead_letters(topic, sub):
    status, doc = mgmt("GET", sub_path(topic, sub) + "/deadLetters")
    assert status == 200
    return doc["value"]


def wait_dead_letters(topic, sub, n, timeout=10.0):
    """Polls the dead-letter listing until it holds `n` records."""
    deadline = time.monotonic() + timeout
    while True:
        recs = dead_letters(topic, sub)
        if len(recs) >= n or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# SDK helpers


def cred(key=KEY):
    return AzureKeyCredential(key)


def clients(topic, sub, key=KEY):
    pub = EventGridPublisherClient(ENDPOINT, cred(key), namespace_topic=topic)
    con = EventGridConsumerClient(ENDPOINT, cred(key), namespace_topic=topic, subscription=sub)
    return pub, con


@pytest.fixture
def queue():
    """(publisher, consumer, topic, subscription) on a fresh topic, maxDeliveryCount 10."""
    topic, sub = create()
    pub, con = clients(topic, sub)
    yield pub, con, topic, sub
    pub.close()
    con.close()


def receive_n(con, n):
    """Receives until `n` events arrived (each call returns at once when events are ready)."""
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} events arrived"
        got += con.receive(max_events=n - len(got) + 5, max_wait_time=WAIT)
    assert len(got) == n, [d.event.id for d in got]
    return got


def only_marker(pub, con):
    """Publishes a marker, receives once, asserts only the marker came back, acknowledges it."""
    marker_id = "marker-" + uuid.uuid4().hex
    marker = CloudEvent(source="/marker", type="Marker", data={"m": 1}, id=marker_id)
    pub.send(marker)
    got = con.receive(max_events=50, max_wait_time=WAIT)
    assert [d.event.id for d in got] == [marker.id], "something besides the marker was queued"
    assert got[0].broker_properties.delivery_count == 1
    res = con.acknowledge(lock_tokens=[got[0].broker_properties.lock_token])
    assert list(res.succeeded_lock_tokens) == [got[0].broker_properties.lock_token]
    assert list(res.failed_lock_tokens) == []


def token(d):
    return d.broker_properties.lock_token


def failed_codes(res):
    return {f.lock_token: f.error.code for f in res.failed_lock_tokens}


# ---------------------------------------------------------------------------------------------
# 1. publish (object, list, dict) -> receive -> acknowledge


def test_publish_receive_acknowledge(queue):
    pub, con, _, _ = queue
    single = CloudEvent(
        source="/orders",
        type="Contoso.Order.Created",
        data={"orderId": 1, "items": ["a", "b"], "nested": {"x": None, "ok": True}},
        subject="orders/1",
        id="ce-single",
    )
    pub.send(single)

    with_ext = CloudEvent(
        source="/orders",
        type="Contoso.Order.Shipped",
        data={"orderId": 2},
        id="ce-ext",
        extensions={"myext": "v", "priority": "high"},
    )
    binary = CloudEvent(
        source="/blobs",
        type="Contoso.Blob",
        data=b"\x00\x01hello\xff",
        datacontenttype="application/octet-stream",
        id="ce-bytes",
    )
    pub.send([with_ext, binary])

    pub.send(
        {
            "id": "ce-dict",
            "source": "/dicts",
            "type": "Contoso.Dict",
            "specversion": "1.0",
            "data": {"fromDict": True},
        }
    )

    got = receive_n(con, 4)
    by_id = {d.event.id: d for d in got}
    assert set(by_id) == {"ce-single", "ce-ext", "ce-bytes", "ce-dict"}
    for d in got:
        assert d.broker_properties.delivery_count == 1
        assert isinstance(token(d), str) and token(d)
    assert len({token(d) for d in got}) == 4, "lock tokens must be distinct"

    e = by_id["ce-single"].event
    assert (e.source, e.type, e.subject, e.specversion) == (
        "/orders",
        "Contoso.Order.Created",
        "orders/1",
        "1.0",
    )
    assert e.data == {"orderId": 1, "items": ["a", "b"], "nested": {"x": None, "ok": True}}
    assert e.time is not None and abs(e.time.timestamp() - single.time.timestamp()) < 0.001

    e = by_id["ce-ext"].event
    assert e.data == {"orderId": 2}
    assert e.extensions == {"myext": "v", "priority": "high"}

    e = by_id["ce-bytes"].event
    assert e.data == b"\x00\x01hello\xff"
    assert isinstance(e.data, bytes)
    assert e.datacontenttype == "application/octet-stream"

    e = by_id["ce-dict"].event
    assert (e.source, e.type, e.data) == ("/dicts", "Contoso.Dict", {"fromDict": True})

    tokens = [token(d) for d in got]
    res = con.acknowledge(lock_tokens=tokens)
    assert sorted(res.succeeded_lock_tokens) == sorted(tokens)
    assert list(res.failed_lock_tokens) == []

    only_marker(pub, con)


# ---------------------------------------------------------------------------------------------
# 2. release -> redelivered; release with a delay -> not redelivered at once


def test_release_redelivers_and_delay_holds_back(queue):
    pub, con, _, _ = queue
    pub.send(CloudEvent(source="/r", type="Rel", data={"n": 7}, id="rel-1"))

    [first] = con.receive(max_events=5, max_wait_time=WAIT)
    assert first.event.id == "rel-1"
    assert first.broker_properties.delivery_count == 1
    res = con.release(lock_tokens=[token(first)])
    assert list(res.succeeded_lock_tokens) == [token(first)]
    assert list(res.failed_lock_tokens) == []

    [second] = con.receive(max_events=5, max_wait_time=WAIT)
    assert second.event.id == "rel-1"
    assert second.event.data == {"n": 7}
    assert second.broker_properties.delivery_count == 2
    assert token(second) != token(first)

    # The first token is spent: releasing it again fails.
    res = con.release(lock_tokens=[token(first)])
    assert list(res.succeeded_lock_tokens) == []
    assert failed_codes(res) == {token(first): "TokenLost"}

    res = con.release(lock_tokens=[token(second)], release_delay=10)
    assert list(res.succeeded_lock_tokens) == [token(second)]
    assert list(res.failed_lock_tokens) == []
    # Held back for 10 s: a receive right now gets only the marker.
    only_marker(pub, con)


def test_release_delay_outside_allowed_values_is_400(queue):
    pub, con, _, _ = queue
    pub.send(CloudEvent(source="/r", type="Rel", data=None, id="rel-bad"))
    [d] = con.receive(max_events=1, max_wait_time=WAIT)
    with pytest.raises(HttpResponseError) as ei:
        con.release(lock_tokens=[token(d)], release_delay=7)
    assert ei.value.status_code == 400
    res = con.acknowledge(lock_tokens=[token(d)])
    assert list(res.succeeded_lock_tokens) == [token(d)]


# ---------------------------------------------------------------------------------------------
# 3. reject -> dead-lettered


def test_reject_dead_letters(queue):
    pub, con, topic, sub = queue
    pub.send(
        [
            CloudEvent(source="/rej", type="Rej", data={"bad": True}, id="rej-1"),
            CloudEvent(source="/rej", type="Rej", data={"bad": False}, id="keep-1"),
        ]
    )
    got = receive_n(con, 2)
    by_id = {d.event.id: d for d in got}
    res = con.reject(lock_tokens=[token(by_id["rej-1"])])
    assert list(res.succeeded_lock_tokens) == [token(by_id["rej-1"])]
    assert list(res.failed_lock_tokens) == []
    res = con.acknowledge(lock_tokens=[token(by_id["keep-1"])])
    assert list(res.succeeded_lock_tokens) == [token(by_id["keep-1"])]

    recs = wait_dead_letters(topic, sub, 1)
    assert len(recs) == 1, recs
    rec = recs[0]
    assert rec["event"]["id"] == "rej-1"
    assert rec["event"]["source"] == "/rej"
    assert rec["event"]["data"] == {"bad": True}
    props = rec["deadLetterProperties"]
    assert "reject" in props["deadletterreason"].lower(), props
    assert props["deliveryattempts"] == 1

    # A rejected token is spent, and the event is gone from the queue.
    res = con.acknowledge(lock_tokens=[token(by_id["rej-1"])])
    assert failed_codes(res) == {token(by_id["rej-1"]): "TokenLost"}
    only_marker(pub, con)


def test_reject_without_dead_letter_destination_drops():
    topic, sub = create(dead_letter=False)
    pub, con = clients(topic, sub)
    with pub, con:
        pub.send(CloudEvent(source="/rej", type="Rej", data="x", id="drop-1"))
        [d] = con.receive(max_events=1, max_wait_time=WAIT)
        assert d.event.data == "x"
        res = con.reject(lock_tokens=[token(d)])
        assert list(res.succeeded_lock_tokens) == [token(d)]
        only_marker(pub, con)


# ---------------------------------------------------------------------------------------------
# 4. renew_locks, bad tokens, settling twice


def test_renew_locks_and_token_errors(queue):
    pub, con, _, _ = queue
    pub.send(CloudEvent(source="/renew", type="Renew", data={"r": 1}, id="renew-1"))
    [d] = con.receive(max_events=1, max_wait_time=WAIT)
    tok = token(d)

    # Renew every 1.5 s across the 3 s lock: after 4.5 s in total the lock still holds.
    for _ in range(3):
        time.sleep(1.5)
        res = con.renew_locks(lock_tokens=[tok, "not-a-token"])
        assert list(res.succeeded_lock_tokens) == [tok]
        [failed] = res.failed_lock_tokens
        assert failed.lock_token == "not-a-token"
        assert failed.error is not None, "SDK could not read the failedLockTokens error"
        assert failed.error.code == "BadToken"
        assert failed.error.message

    res = con.acknowledge(lock_tokens=[tok])
    assert list(res.succeeded_lock_tokens) == [tok]
    assert list(res.failed_lock_tokens) == []

    # Settling an already-acknowledged token fails per token, still with a 200.
    for op in (con.acknowledge, con.release, con.reject, con.renew_locks):
        res = op(lock_tokens=[tok])
        assert list(res.succeeded_lock_tokens) == [], op.__name__
        assert failed_codes(res) == {tok: "TokenLost"}, op.__name__

    only_marker(pub, con)


def test_all_tokens_bad_is_still_200(queue):
    _, con, _, _ = queue
    res = con.acknowledge(lock_tokens=["not-a-token", "also bad"])
    assert list(res.succeeded_lock_tokens) == []
    assert failed_codes(res) == {"not-a-token": "BadToken", "also bad": "BadToken"}


# ---------------------------------------------------------------------------------------------
# 5. lock expiry


def test_lock_expiry_redelivers(queue):
    pub, con, _, _ = queue
    pub.send(CloudEvent(source="/exp", type="Exp", data={"e": 1}, id="exp-1"))
    [first] = con.receive(max_events=1, max_wait_time=WAIT)
    assert first.broker_properties.delivery_count == 1
    time.sleep(LOCK_SECS + 0.5)

    t0 = time.monotonic()
    [second] = con.receive(max_events=5, max_wait_time=WAIT)
    assert time.monotonic() - t0 < 5, "expired lock was not released promptly"
    assert second.event.id == "exp-1"
    assert second.event.data == {"e": 1}
    assert second.broker_properties.delivery_count == 2

    res = con.acknowledge(lock_tokens=[token(first)])
    assert list(res.succeeded_lock_tokens) == []
    assert failed_codes(res) == {token(first): "TokenLost"}
    res = con.acknowledge(lock_tokens=[token(second)])
    assert list(res.succeeded_lock_tokens) == [token(second)]
    only_marker(pub, con)


# ---------------------------------------------------------------------------------------------
# 6. maxDeliveryCount -> dead-lettered


def test_max_delivery_count_dead_letters():
    topic, sub = create(max_delivery_count=2)
    pub, con = clients(topic, sub)
    with pub, con:
        pub.send(CloudEvent(source="/max", type="Max", data={"m": 2}, id="max-1"))
        [d1] = con.receive(max_events=1, max_wait_time=WAIT)
        assert d1.broker_properties.delivery_count == 1
        res = con.release(lock_tokens=[token(d1)])  # delivery 1 ends: released
        assert list(res.succeeded_lock_tokens) == [token(d1)]

        [d2] = con.receive(max_events=1, max_wait_time=WAIT)
        assert d2.event.id == "max-1"
        assert d2.broker_properties.delivery_count == 2
        # Delivery 2 ends by lock expiry: that was the last allowed attempt.
        recs = wait_dead_letters(topic, sub, 1, timeout=LOCK_SECS + 7)
        assert len(recs) == 1, "event was not dead-lettered after maxDeliveryCount deliveries"
        rec = recs[0]
        assert rec["event"]["id"] == "max-1"
        assert rec["event"]["data"] == {"m": 2}
        props = rec["deadLetterProperties"]
        assert props["deliveryattempts"] == 2
        assert props["deadletterreason"] == "Maximum delivery attempts was exceeded."

        res = con.acknowledge(lock_tokens=[token(d2)])
        assert failed_codes(res) == {token(d2): "TokenLost"}
        only_marker(pub, con)


# ---------------------------------------------------------------------------------------------
# 7. errors surface as the SDK's exceptions


def test_wrong_key_is_client_authentication_error(queue):
    _, _, topic, sub = queue
    pub, con = clients(topic, sub, key="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZw==")
    with pub, con:
        with pytest.raises(ClientAuthenticationError) as ei:
            pub.send(CloudEvent(source="/a", type="A", data=1))
        assert ei.value.status_code == 401
        with pytest.raises(ClientAuthenticationError):
            con.receive(max_events=1, max_wait_time=WAIT)
        with pytest.raises(ClientAuthenticationError):
            con.acknowledge(lock_tokens=["x"])


def test_key2_also_works(queue):
    _, _, topic, sub = queue
    status, keys = mgmt("POST", f"/namespaces/{NAMESPACE}/listKeys")
    assert status == 200 and keys["key1"] == KEY
    pub, con = clients(topic, sub, key=keys["key2"])
    with pub, con:
        pub.send(CloudEvent(source="/k2", type="K2", data={"k": 2}, id="k2-1"))
        [d] = con.receive(max_events=1, max_wait_time=WAIT)
        assert (d.event.id, d.event.data) == ("k2-1", {"k": 2})
        assert list(con.acknowledge(lock_tokens=[token(d)]).succeeded_lock_tokens) == [token(d)]


def test_unknown_topic_and_subscription_are_not_found(queue):
    _, _, topic, _ = queue
    missing = "topic-missing-" + uuid.uuid4().hex[:8]
    with EventGridPublisherClient(ENDPOINT, cred(), namespace_topic=missing) as pub:
        with pytest.raises(ResourceNotFoundError):
            pub.send(CloudEvent(source="/a", type="A", data=1))
    with EventGridConsumerClient(
        ENDPOINT, cred(), namespace_topic=topic, subscription="sub-missing"
    ) as con:
        with pytest.raises(ResourceNotFoundError):
            con.receive(max_events=1, max_wait_time=WAIT)
        with pytest.raises(ResourceNotFoundError):
            con.acknowledge(lock_tokens=["x"])


def test_invalid_event_is_400(queue):
    pub, con, _, _ = queue
    with pytest.raises(HttpResponseError) as ei:
        pub.send({"id": "no-source", "type": "T", "specversion": "1.0", "data": {"a": 1}})
    assert ei.value.status_code == 400
    assert ei.value.error is not None and ei.value.error.code == "BadRequest"
    # Nothing of a refused batch was stored.
    only_marker(pub, con)


def test_binary_mode_publish_through_the_raw_pipeline(queue):
    """CloudEvents binary content mode (ce-* headers, body = data) sent with the publisher's own
    pipeline (its SharedAccessKey policy), received by the consumer with the exact attributes."""
    pub, con, topic, _ = queue
    bodies = [
        ("bin-json", "application/json", b'{"temp": 21.5}'),
        ("bin-bytes", "application/octet-stream", b"\x00\x01\xff"),
        ("bin-text", "text/plain", b"hello"),
    ]
    for eid, ct, body in bodies:
        req = HttpRequest(
            "POST",
            f"/topics/{topic}:publish",
            params={"api-version": "2024-06-01"},
            headers={
                "Content-Type": ct,
                "ce-specversion": "1.0",
                "ce-id": eid,
                "ce-source": "/sdk/binary",
                "ce-type": "Contoso.Binary",
                "ce-subject": "rooms/1",
                "ce-time": "2024-05-01T10:00:00Z",
                "ce-myext": "v%20w",
            },
            content=body,
        )
        resp = pub.send_request(req)
        assert resp.status_code == 200, resp.text()
    got = receive_n(con, 3)
    by_id = {d.event.id: d.event for d in got}
    for eid, ct, _ in bodies:
        e = by_id[eid]
        assert (e.source, e.type, e.subject, e.datacontenttype) == (
            "/sdk/binary",
            "Contoso.Binary",
            "rooms/1",
            ct,
        )
        assert e.time is not None and e.time.year == 2024
        assert e.extensions == {"myext": "v w"}
    assert by_id["bin-json"].data == {"temp": 21.5}
    assert by_id["bin-bytes"].data == b"\x00\x01\xff"
    assert by_id["bin-text"].data == b"hello"
    con.acknowledge(lock_tokens=[token(d) for d in got])

    # A missing required header: 400 naming it.
    req = HttpRequest(
        "POST",
        f"/topics/{topic}:publish",
        params={"api-version": "2024-06-01"},
        headers={
            "Content-Type": "text/plain",
            "ce-specversion": "1.0",
            "ce-id": "x",
            "ce-type": "T",
        },
        content=b"x",
    )
    resp = pub.send_request(req)
    assert resp.status_code == 400
    assert "ce-source" in resp.json()["error"]["message"]
    only_marker(pub, con)


def test_receive_out_of_range_wait_is_400(queue):
    _, con, _, _ = queue
    with pytest.raises(HttpResponseError) as ei:
        con.receive(max_events=1, max_wait_time=5)
    assert ei.value.status_code == 400
    with pytest.raises(HttpResponseError) as ei:
        con.receive(max_events=101, max_wait_time=WAIT)
    assert ei.value.status_code == 400
