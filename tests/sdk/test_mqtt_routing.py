"""MQTT messages routed into a namespace topic (docs/eventgrid.md §7.6), published with
`mosquitto_pub` (MQTT 3.1.1 and 5, QoS 0 and 1, payload format indicator 0 and 1, JSON and
binary payloads, a structured and a binary-mode CloudEvent) and received with the real
azure-eventgrid `EventGridConsumerClient`, attribute by attribute, enrichments included.

Run by `cargo test --test sdk` (tests/sdk.rs) against an evgrid of its own, which sets
EVGRID_ENDPOINT, EVGRID_KEY, EVGRID_ADMIN, EVGRID_HTTP (see test_namespace.py) and EVGRID_MQTT
(host:port of the MQTT listener). The test configures namespace `default` to route into a fresh
topic, so it must not share its server with other tests.
"""

import datetime
import json
import os
import subprocess
import time
import urllib.parse
import uuid

import evgrid_mgmt
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridConsumerClient

ENDPOINT = os.environ["EVGRID_ENDPOINT"]
KEY = os.environ["EVGRID_KEY"]
MQTT_HOST, MQTT_PORT = os.environ["EVGRID_MQTT"].rsplit(":", 1)
NAMESPACE = urllib.parse.urlparse(ENDPOINT).path.rstrip("/").rsplit("/", 1)[-1]

ENRICHMENTS = {
    "static": [{"key": "site", "valueType": "String", "value": "plant-7"}],
    "dynamic": [
        {"key": "clientname", "value": "${client.authenticationName}"},
        {"key": "topicname", "value": "${mqtt.message.topicName}"},
        {"key": "room", "value": "${mqtt.message.userProperties.room}"},
        {"key": "mqttpfi", "value": "${mqtt.message.pfi}"},
        {"key": "floor", "value": "${client.attributes.floor}"},
    ],
}


def mgmt(method, path, body=None):
    status, doc = evgrid_mgmt.call(method, path, body, timeout=10)
    assert status < 400, f"{method} {path} -> {status}: {doc!r}"
    return doc


def route_into_fresh_topic():
    """A fresh topic with a Queue subscription, and the namespace routing into it."""
    tag = uuid.uuid4().hex[:10]
    topic, sub = f"mqtt-{tag}", f"all-{tag}"
    mgmt("PUT", f"/namespaces/{NAMESPACE}/topics/{topic}", {"properties": {}})
    mgmt(
        "PUT",
        f"/namespaces/{NAMESPACE}/topics/{topic}/eventSubscriptions/{sub}",
        {"properties": {"deliveryConfiguration": {"deliveryMode": "Queue"}}},
    )
    route = f"/providers/Microsoft.EventGrid/namespaces/{NAMESPACE}/topics/{topic}"
    mgmt(
        "PUT",
        f"/namespaces/{NAMESPACE}",
        {
            "properties": {
                "topicSpacesConfiguration": {
                    "state": "Enabled",
                    "routeTopicResourceId": route,
                    "routingEnrichments": ENRICHMENTS,
                }
            }
        },
    )
    return topic, sub


def mosquitto_pub(topic, payload, *, v5=False, qos=1, user="device-17", props=()):
    args = ["mosquitto_pub", "-h", MQTT_HOST, "-p", MQTT_PORT, "-q", str(qos), "-t", topic]
    args += ["-V", "mqttv5" if v5 else "mqttv311", "-u", user, "-i", "pub-" + uuid.uuid4().hex[:8]]
    for p in props:
        args += ["-D", "publish", *p]
    args += ["-s"]  # the payload from stdin, byte for byte
    subprocess.run(args, input=payload, check=True, timeout=20)


def receive_all(con, n):
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} events arrived"
        got += con.receive(max_events=100, max_wait_time=10)
    con.acknowledge(lock_tokens=[d.broker_properties.lock_token for d in got])
    assert len(got) == n, [d.event.subject for d in got]
    return {d.event.subject: d.event for d in got}


def test_mosquitto_pub_messages_arrive_as_cloudevents_with_enrichments():
    topic, sub = route_into_fresh_topic()
    t0 = datetime.datetime.now(datetime.timezone.utc)
    binary = bytes(range(256))
    mosquitto_pub("d/v3/q0/binary", binary, qos=0)
    mosquitto_pub("d/v3/q1/json", b'{"t":21}', qos=1)
    mosquitto_pub(
        "d/v5/q1/pfi1/json",
        b'{"t":22}',
        v5=True,
        props=[("payload-format-indicator", "1"), ("user-property", "room", "r1")],
    )
    mosquitto_pub("d/v5/q0/pfi1/text", b"hello", v5=True, qos=0, props=[("payload-format-indicator", "1")])
    mosquitto_pub(
        "d/v5/q1/ct-json",
        b'{"t":23}',
        v5=True,
        props=[("content-type", "application/json; charset=utf-8")],
    )
    mosquitto_pub(
        "d/v5/q1/binary",
        b"\x00\xffraw",
        v5=True,
        props=[("content-type", "application/octet-stream"), ("user-property", "room", "a"), ("user-property", "room", "b")],
    )
    structured = {
        "specversion": "1.0",
        "id": "ce-structured-1",
        "source": "/devices/d17",
        "type": "Device.Reading",
        "subject": "d/v5/q1/structured",
        "time": "2026-01-02T03:04:05Z",
        "datacontenttype": "application/json",
        "data": {"x": 1},
    }
    mosquitto_pub(
        "d/v5/q1/structured",
        json.dumps(structured).encode(),
        v5=True,
        props=[("content-type", "application/cloudevents+json")],
    )
    mosquitto_pub(
        "d/v5/q1/binary-mode",
        b'{"y":2}',
        v5=True,
        props=[
            ("content-type", "application/json"),
            ("user-property", "specversion", "1.0"),
            ("user-property", "id", "ce-binary-1"),
            ("user-property", "source", "/devices/d18"),
            ("user-property", "type", "Device.Binary"),
            ("user-property", "subject", "d/v5/q1/binary-mode"),
        ],
    )
    con = EventGridConsumerClient(ENDPOINT, AzureKeyCredential(KEY), namespace_topic=topic, subscription=sub)
    events = receive_all(con, 8)
    con.close()

    ids = {e.id for e in events.values()}
    assert len(ids) == 8, ids
    for subject, e in events.items():
        ext = e.extensions or {}
        assert ext.get("site") == "plant-7", (subject, ext)
        assert ext.get("clientname") == "device-17", (subject, ext)
        assert ext.get("topicname") == subject, (subject, ext)
        assert ext.get("floor") == "", (subject, ext)  # no such client attribute: ""
        if subject in ("d/v5/q1/structured", "d/v5/q1/binary-mode"):
            continue
        assert e.type == "MQTT.EventPublished", subject
        assert e.source == NAMESPACE, subject
        assert e.specversion == "1.0", subject
        assert abs((e.time - t0).total_seconds()) < 60, (subject, e.time)

    e = events["d/v3/q0/binary"]
    assert e.data == binary, e.data
    assert e.extensions["mqttpfi"] == 0
    assert e.extensions["room"] == ""
    assert events["d/v3/q1/json"].data == b'{"t":21}'  # 3.1.1: no format indicator, base64

    e = events["d/v5/q1/pfi1/json"]
    assert e.data == {"t": 22}, e.data
    assert e.extensions["mqttpfi"] == 1
    assert e.extensions["room"] == "r1"
    assert events["d/v5/q0/pfi1/text"].data == "hello"
    assert events["d/v5/q1/ct-json"].data == {"t": 23}
    assert events["d/v5/q1/ct-json"].datacontenttype == "application/json; charset=utf-8"

    e = events["d/v5/q1/binary"]
    assert e.data == b"\x00\xffraw"
    assert e.datacontenttype == "application/octet-stream"
    assert e.extensions["room"] == "a,b"  # repeated user properties, comma-joined

    e = events["d/v5/q1/structured"]
    assert (e.id, e.source, e.type) == ("ce-structured-1", "/devices/d17", "Device.Reading")
    assert e.time == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert e.data == {"x": 1}

    e = events["d/v5/q1/binary-mode"]
    assert (e.id, e.source, e.type) == ("ce-binary-1", "/devices/d18", "Device.Binary")
    assert e.data == {"y": 2}
    assert e.datacontenttype == "application/json"
