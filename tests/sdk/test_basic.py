"""Compatibility of evgrid's basic tier (custom topics, domains, push delivery) with the real
azure-eventgrid SDK (4.22.1): EventGridPublisherClient with EventGridEvent, CloudEvent and
dicts, AzureKeyCredential and AzureSasCredential (generate_sas), and the SDK's error mapping.

Run by `cargo test --test sdk` (tests/sdk.rs) with the environment described in
test_namespace.py. Events are checked where they arrive: a local webhook (http.server) that
answers the validation handshakes and records every delivery.
"""

import datetime
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import evgrid_mgmt
import pytest
from azure.core.credentials import AzureKeyCredential, AzureSasCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient, generate_sas

HTTP = os.environ["EVGRID_HTTP"].rstrip("/")


mgmt = evgrid_mgmt.call


class Hook:
    """A webhook endpoint: passes both handshakes, answers 200, records deliveries."""

    def __init__(self):
        self.deliveries = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_OPTIONS(self):
                self.send_response(200)
                self.send_header("WebHook-Allowed-Origin", self.headers.get("WebHook-Request-Origin", "*"))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                doc = json.loads(body) if body else None
                if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                    out = json.dumps({"validationResponse": doc[0]["data"]["validationCode"]}).encode()
                else:
                    with hook.cond:
                        hook.deliveries.append((dict(self.headers), doc))
                        hook.cond.notify_all()
                    out = b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, n, timeout=20):
        """Waits for n delivered events; returns them."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                evs = []
                for _, doc in self.deliveries:
                    evs.extend(doc if isinstance(doc, list) else [doc])
                if len(evs) >= n:
                    return evs
                left = deadline - time.time()
                assert left > 0, "only %d of %d events delivered" % (len(evs), n)
                self.cond.wait(left)


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.server.shutdown()


def new_topic(schema="EventGridSchema", kind="topics", extra=None):
    name = "t-" + uuid.uuid4().hex[:10]
    props = {"inputSchema": schema}
    props.update(extra or {})
    status, _ = mgmt("PUT", "/%s/%s" % (kind, name), {"properties": props})
    assert status == 201
    status, keys = mgmt("POST", "/%s/%s/listKeys" % (kind, name))
    assert status == 200
    return name, keys["key1"], keys["key2"]


def subscribe(scope, url, props=None):
    p = {"destination": {"endpointType": "WebHook", "properties": {"endpointUrl": url}}}
    p.update(props or {})
    status, doc = mgmt("PUT", scope + "/eventSubscriptions/s-" + uuid.uuid4().hex[:8], {"properties": p})
    assert status == 201, doc
    assert doc["properties"]["provisioningState"] == "Succeeded"


def client(kind, name, cred):
    return EventGridPublisherClient("%s/%s/%s/api/events" % (HTTP, kind, name), cred)


def test_eventgrid_events_and_dicts_with_a_key(hook):
    name, key, _ = new_topic()
    subscribe("/topics/" + name, hook.url)
    c = client("topics", name, AzureKeyCredential(key))
    c.send(EventGridEvent(subject="orders/1", event_type="Contoso.Order.Created", data={"orderId": 1}, data_version="1.0", id="eg-1"))
    c.send([
        EventGridEvent(subject="orders/2", event_type="Contoso.Order.Created", data="text", data_version="2.0", id="eg-2"),
        {"id": "eg-3", "subject": "orders/3", "eventType": "Contoso.Order.Shipped", "data": {"n": 3},
         "dataVersion": "1.0", "eventTime": "2024-05-01T10:00:00Z"},
    ])
    evs = {e["id"]: e for e in hook.events(3)}
    assert set(evs) == {"eg-1", "eg-2", "eg-3"}
    assert evs["eg-1"]["data"] == {"orderId": 1}
    assert evs["eg-1"]["topic"].endswith("/topics/" + name)
    assert evs["eg-1"]["metadataVersion"] == "1"
    assert evs["eg-2"]["data"] == "text" and evs["eg-2"]["dataVersion"] == "2.0"
    assert evs["eg-3"]["eventType"] == "Contoso.Order.Shipped"
    headers = hook.deliveries[0][0]
    assert headers["aeg-event-type"] == "Notification"


def test_sas_tokens_from_generate_sas(hook):
    name, _, key2 = new_topic()
    subscribe("/topics/" + name, hook.url)
    endpoint = "%s/topics/%s/api/events" % (HTTP, name)
    expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    token = generate_sas(endpoint, key2, expiry)
    EventGridPublisherClient(endpoint, AzureSasCredential(token)).send(
        EventGridEvent(subject="s", event_type="T", data={}, data_version="1", id="sas-1"))
    assert [e["id"] for e in hook.events(1)] == ["sas-1"]
    expired = generate_sas(endpoint, key2, datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc))
    with pytest.raises(ClientAuthenticationError):
        EventGridPublisherClient(endpoint, AzureSasCredential(expired)).send(
            EventGridEvent(subject="s", event_type="T", data={}, data_version="1"))


def test_cloudevents_to_a_cloudevents_topic(hook):
    name, key, _ = new_topic("CloudEventSchemaV1_0")
    subscribe("/topics/" + name, hook.url)
    c = client("topics", name, AzureKeyCredential(key))
    c.send(CloudEvent(source="/orders", type="Contoso.Order.Created", data={"orderId": 1}, id="ce-1",
                      subject="orders/1", extensions={"myext": "v"}))
    c.send([CloudEvent(source="/blobs", type="Contoso.Blob", data=b"hello", id="ce-2",
                       datacontenttype="application/octet-stream")])
    c.send([{"id": "ce-3", "source": "/d", "specversion": "1.0", "type": "Contoso.Dict"}])
    evs = {e["id"]: e for e in hook.events(3)}
    assert evs["ce-1"]["myext"] == "v" and evs["ce-1"]["data"] == {"orderId": 1}
    assert evs["ce-2"]["data_base64"] == "aGVsbG8="
    assert evs["ce-3"]["type"] == "Contoso.Dict"
    # Unbatched CloudEvents deliveries are single objects.
    assert all(isinstance(doc, dict) for _, doc in hook.deliveries)


def test_custom_schema_dicts(hook):
    mapping = {"inputSchemaMappingType": "Json", "properties": {
        "id": {"sourceField": "customId"}, "eventType": {"sourceField": "kind", "defaultValue": "Default"},
        "subject": {"sourceField": "where", "defaultValue": "/"}, "dataVersion": {"defaultValue": "1.0"}}}
    name, key, _ = new_topic("CustomEventSchema", extra={"inputSchemaMapping": mapping})
    subscribe("/topics/" + name, hook.url, {"eventDeliverySchema": "EventGridSchema"})
    client("topics", name, AzureKeyCredential(key)).send([{"customId": "7", "kind": "custom"}])
    (ev,) = hook.events(1)
    assert ev["id"] == "7" and ev["eventType"] == "custom" and ev["subject"] == "/"
    assert ev["data"] == {"customId": "7", "kind": "custom"}


def test_domains_route_by_topic(hook):
    name, key, _ = new_topic(kind="domains")
    subscribe("/domains/%s/topics/tenant-a" % name, hook.url)
    client("domains", name, AzureKeyCredential(key)).send([
        EventGridEvent(subject="s", event_type="T", data=1, data_version="1", topic="tenant-a", id="d-a"),
        EventGridEvent(subject="s", event_type="T", data=2, data_version="1", topic="tenant-b", id="d-b"),
    ])
    (ev,) = hook.events(1)
    assert ev["id"] == "d-a" and ev["topic"].endswith("/domains/%s/topics/tenant-a" % name)
    status, topics = mgmt("GET", "/domains/%s/topics" % name)
    assert {t["name"] for t in topics["value"]} == {"tenant-a", "tenant-b"}


def test_errors_map_to_the_sdk_exceptions():
    name, key, _ = new_topic()
    ok = EventGridEvent(subject="s", event_type="T", data={}, data_version="1")
    with pytest.raises(ClientAuthenticationError):
        client("topics", name, AzureKeyCredential("d3Jvbmcga2V5")).send(ok)
    with pytest.raises(ResourceNotFoundError):
        client("topics", "no-such-topic", AzureKeyCredential(key)).send(ok)
    with pytest.raises(HttpResponseError) as e:
        client("topics", name, AzureKeyCredential(key)).send([{"id": "x", "subject": "s", "eventType": "T",
                                                                "data": 1, "dataVersion": "1", "eventTime": "never"}])
    assert e.value.status_code == 400
    assert "eventTime" in str(e.value)
