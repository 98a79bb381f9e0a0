"""The azure-eventgrid SDK (4.22.1) against evgrid's HTTPS listener (http.tls), trusting evgrid's
certificate through a custom CA: namespace publish, receive and acknowledge, and basic-tier
publish to a custom topic.

Run by `cargo test --test https` (tests/https.rs), which starts evgrid with an HTTPS listener and
sets:
  EVGRID_HTTPS     https://127.0.0.1:PORT  (the HTTPS listener)
  EVGRID_CA        the CA certificate (PEM) evgrid's server certificate is issued by
  EVGRID_KEY       key1 of the `default` namespace
  EVGRID_ADMIN     the admin key (management API)
  EVGRID_HTTP      the same HTTPS URL, for evgrid_mgmt (urllib verifies through SSL_CERT_FILE)
"""

import os
import uuid

import evgrid_mgmt
import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ServiceRequestError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridConsumerClient, EventGridEvent, EventGridPublisherClient

HTTPS = os.environ["EVGRID_HTTPS"].rstrip("/")
CA = os.environ["EVGRID_CA"]
KEY = os.environ["EVGRID_KEY"]
ENDPOINT = HTTPS + "/namespaces/default"


def mgmt(method, path, body=None):
    status, doc = evgrid_mgmt.call(method, path, body, timeout=10)
    assert status < 400, f"{method} {path} -> {status}: {doc!r}"
    return doc


def test_namespace_publish_receive_acknowledge_over_https():
    tag = uuid.uuid4().hex[:10]
    topic, sub = "t-" + tag, "s-" + tag
    mgmt("PUT", f"/namespaces/default/topics/{topic}", {"properties": {}})
    queue = {"receiveLockDurationInSeconds": 60, "maxDeliveryCount": 10}
    body = {"properties": {"deliveryConfiguration": {"deliveryMode": "Queue", "queue": queue}}}
    mgmt("PUT", f"/namespaces/default/topics/{topic}/eventSubscriptions/{sub}", body)

    cred = AzureKeyCredential(KEY)
    # The CA handed to the SDK's transport (requests' `verify`), not the system's.
    with EventGridPublisherClient(
        ENDPOINT, cred, namespace_topic=topic, connection_verify=CA
    ) as pub, EventGridConsumerClient(
        ENDPOINT, cred, namespace_topic=topic, subscription=sub, connection_verify=CA
    ) as con:
        events = [
            CloudEvent(source="/tls", type="T", data={"n": i}, id=f"e{i}") for i in range(3)
        ]
        pub.send(events)
        got = []
        while len(got) < 3:
            batch = con.receive(max_events=10, max_wait_time=10)
            assert batch, "nothing received"
            got += batch
        assert sorted(d.event.id for d in got) == ["e0", "e1", "e2"]
        assert {d.event.data["n"] for d in got} == {0, 1, 2}
        tokens = [d.broker_properties.lock_token for d in got]
        res = con.acknowledge(lock_tokens=tokens)
        assert sorted(res.succeeded_lock_tokens) == sorted(tokens)
        assert list(res.failed_lock_tokens) == []


def test_custom_topic_publish_over_https():
    name = "t-" + uuid.uuid4().hex[:10]
    mgmt("PUT", "/topics/" + name, {"properties": {}})
    key = mgmt("POST", f"/topics/{name}/listKeys")["key1"]
    client = EventGridPublisherClient(f"{HTTPS}/topics/{name}/api/events", AzureKeyCredential(key))
    event = EventGridEvent(subject="s/1", event_type="T", data={"v": 1}, data_version="1.0")
    with client:
        # The basic-tier client takes the CA per request (its transport ignores the
        # constructor's connection_verify); without it the certificate is refused.
        with pytest.raises(ServiceRequestError) as e:
            client.send(event)
        assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
        client.send(event, connection_verify=CA)


def test_without_the_ca_the_sdk_refuses_the_certificate():
    # The system's roots do not hold the dev CA: the SDK must not connect (nothing falls back).
    client = EventGridPublisherClient(
        ENDPOINT,
        AzureKeyCredential(KEY),
        namespace_topic="whatever",
        connection_verify=True,
    )
    with client, pytest.raises(ServiceRequestError) as e:
        client.send(CloudEvent(source="/tls", type="T", data={}))
    assert "CERTIFICATE_VERIFY_FAILED" in str(e.value)
