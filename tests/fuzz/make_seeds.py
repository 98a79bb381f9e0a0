#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ (run from anywhere; overwrites the seeds only).

MQTT seeds start with the harness's chunking byte (0: the whole input in one read, n: reads of
n bytes); the JSON and SAS seeds are described in README.md.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def s(x):
    x = x.encode() if isinstance(x, str) else x
    return struct.pack(">H", len(x)) + x


def pkt(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def u8p(pid, v):
    return bytes([pid, v])


def u16p(pid, v):
    return bytes([pid]) + struct.pack(">H", v)


def u32p(pid, v):
    return bytes([pid]) + struct.pack(">I", v)


def strp(pid, v):
    return bytes([pid]) + s(v)


def userp(k, v):
    return b"\x26" + s(k) + s(v)


# ---- MQTT 3.1.1 ----
def connect3(client, flags=0x02, keep=60, will=None, user=None, pw=None):
    if will:
        flags |= 0x04 | 0x20
    if user is not None:
        flags |= 0x80
    if pw is not None:
        flags |= 0x40
    body = s("MQTT") + bytes([4, flags]) + struct.pack(">H", keep) + s(client)
    if will:
        body += s(will[0]) + s(will[1])
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body)


def publish3(topic, payload, qos=0, pid=1, dup=False, retain=False):
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + payload
    return pkt(first, body)


def ack(first, pid):
    return pkt(first, struct.pack(">H", pid))


V3 = {
    "connect_publish_ping_disconnect": b"\x00"
    + connect3("c1")
    + publish3("a/b", b"hello")
    + pkt(0xC0, b"")
    + pkt(0xE0, b""),
    "connect_will_auth_subscribe": b"\x00"
    + connect3("", 0x00, 0, will=("w/t", b"bye"), user="u", pw=b"p")
    + pkt(0x82, struct.pack(">H", 7) + s("a/+/c") + b"\x01" + s("#") + b"\x02")
    + pkt(0xA2, struct.pack(">H", 8) + s("a/+/c")),
    "qos1_qos2_flow_split_3": b"\x03"
    + connect3("c2")
    + publish3("t", b"x" * 20, qos=1, pid=1)
    + ack(0x40, 1)
    + publish3("t", b"y" * 10, qos=2, pid=2, dup=True, retain=True)
    + ack(0x50, 2)
    + ack(0x62, 2)
    + ack(0x70, 2),
    "streamed_publish_header": b"\x00"
    + connect3("c3")
    + bytes([0x30])
    + varint(40000)
    + s("big")
    + b"z" * 200,
}

# ---- MQTT 5 ----
def connect5(client, p=b"\x00", will=None, user=None, pw=None, flags=0x02):
    if will:
        flags |= 0x04 | 0x08 | 0x20
    if user is not None:
        flags |= 0x80
    if pw is not None:
        flags |= 0x40
    body = s("MQTT") + bytes([5, flags]) + struct.pack(">H", 30) + p + s(client)
    if will:
        body += will[0] + s(will[1]) + s(will[2])
    if user is not None:
        body += s(user)
    if pw is not None:
        body += s(pw)
    return pkt(0x10, body)


def publish5(topic, payload, p=b"\x00", qos=0, pid=1, dup=False):
    first = 0x30 | (qos << 1) | (0x08 if dup else 0)
    body = s(topic) + (struct.pack(">H", pid) if qos else b"") + p + payload
    return pkt(first, body)


V5 = {
    "connect_props_publish_disconnect": b"\x00"
    + connect5(
        "c5",
        props(
            u32p(0x11, 3600),
            u16p(0x21, 20),
            u32p(0x27, 65536),
            u16p(0x22, 5),
            u8p(0x17, 1),
            u8p(0x19, 1),
            userp("k", "v"),
            strp(0x15, "m"),
            strp(0x16, b"d"),
        ),
    )
    + publish5(
        "a/b",
        b"{}",
        props(
            u8p(0x01, 1),
            u32p(0x02, 60),
            strp(0x03, "application/json"),
            strp(0x08, "r/t"),
            strp(0x09, b"corr"),
            userp("x", "y"),
            u16p(0x23, 1),
        ),
    )
    + publish5("", b"alias", props(u16p(0x23, 1)))
    + pkt(0xE0, b"\x00" + props(u32p(0x11, 0), strp(0x1F, "bye"))),
    "connect_will_subscribe_unsubscribe": b"\x00"
    + connect5(
        "",
        b"\x00",
        will=(props(u32p(0x18, 5), u8p(0x01, 0)), "w/t", "gone"),
        user="u",
        pw=b"p",
        flags=0x00,
    )
    + pkt(
        0x82,
        struct.pack(">H", 3)
        + props(b"\x0b\x05", userp("a", "b"))
        + s("a/+/c")
        + b"\x2e"
        + s("$share/g/x/#")
        + b"\x01",
    )
    + pkt(0xA2, struct.pack(">H", 4) + props() + s("a/+/c"))
    + pkt(0xC0, b""),
    "qos1_qos2_acks_auth_split_5": b"\x05"
    + connect5("c6")
    + publish5("t", b"q1", qos=1, pid=9)
    + pkt(0x40, struct.pack(">H", 9) + b"\x10" + props(strp(0x1F, "no match")))
    + publish5("t", b"q2", qos=2, pid=10, dup=True)
    + pkt(0x50, struct.pack(">H", 10))
    + pkt(0x62, struct.pack(">H", 10) + b"\x92" + props())
    + pkt(0x70, struct.pack(">H", 10) + b"\x00")
    + pkt(0xF0, b"\x18" + props(strp(0x15, "SCRAM"), strp(0x16, b"x"))),
}

CE = {
    # Content-Type byte 0: application/cloudevents-batch+json
    "batch": b"\x00"
    + b'[{"specversion":"1.0","id":"1","source":"/s","type":"t","subject":"a/b","time":"2026-01-02T03:04:05.123Z",'
    b'"datacontenttype":"application/json","dataschema":"https://x/s","ext1":"v","n1":5,"data":{"n":3,"s":"x\\u00e9"}},'
    b'{"specversion":"1.0","id":"2","source":"s","type":"t","data_base64":"AAE="}]',
    # 1: application/cloudevents+json, one object
    "single": b"\x01"
    + b'{"specversion":"1.0","id":"e\\"1","source":"urn:x","type":"Contoso.Created","data":"text"}',
    # 2: application/json with small limits (high bit): too many / too large
    "limits": b"\x82"
    + b'[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","id":"2","source":"s","type":"t"},'
    b'{"specversion":"1.0","id":"3","source":"s","type":"t"},{"specversion":"1.0","id":"4","source":"s","type":"t"},'
    b'{"specversion":"1.0","id":"5","source":"s","type":"t"}]',
    "invalid_duplicate_key": b"\x00" + b'[{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}]',
}

CONVERSION = {
    # ctl: bit 0 PFI, bits 1-3 the content type (1 application/json; charset=utf-8,
    # 2 application/cloudevents+json, 3 application/octet-stream, 4 text/plain); then
    # "name: value" lines (HTTP headers and MQTT user properties), an empty line, the body.
    "binary_json": b"\x02"
    + b"ce-specversion: 1.0\nce-id: b-1\nce-source: /d\nce-type: T\nce-subject: a%20b\n"
    b"ce-time: 2024-05-01T10:00:00Z\nce-unit: C\n\n"
    + b'{"temp": 21.5}',
    "binary_mqtt_user_properties": b"\x06"
    + b"specversion: 1.0\nid: m-1\nsource: /d\ntype: T\nmyext: v\nunit: C\nunit: F\n\n"
    + b"\x00\x01",
    "structured": b"\x04"
    + b"a.b: x\n\n"
    + b'{"specversion":"1.0","id":"s-1","source":"/s","type":"t","site":"forged","n":1,'
    b'"data":{"k":[1,2]}}',
    "pfi_text": b"\x01" + b"unit: C\n\n" + b"not json \"quoted\"",
    "octets": b"\x00" + b"\xff\xfe\x00",
}

EG = {
    # ctl 6: custom topic, application/json
    "topic": b"\x06"
    + b'[{"id":"1","subject":"/a/b","eventType":"Contoso.Created","eventTime":"2026-01-02T03:04:05Z",'
    b'"data":{"n":3,"v":[1,2]},"dataVersion":"1.0","metadataVersion":"1"}]',
    # ctl 7: domain; topic names the domain topic; custom mapping fields present
    "domain_and_custom": b"\x07"
    + b'[{"id":"2","topic":"dt1","subject":"s","eventType":"t","eventTime":"2026-01-02T03:04:05+01:00","data":null,'
    b'"myId":"m1","where":{"topic":"dt2"},"when":"2026-01-02T03:04:05Z","kind":"k","a":{"b":{"c":"sub"}}}]',
    "invalid_missing_fields": b"\x06" + b'[{"id":"3","data":{}},{"subject":"x"}]',
    "not_json_type": b"\x02" + b"[]",
}

SAS = {
    "sdk_token": b"r=https%3A%2F%2Fh.example%2Ftopics%2Ft%2Fapi%2Fevents&e=2030-01-01T00%3A00%3A00Z&s=AAAA\n"
    b"/topics/t/api/events\n/topics/t\napi-version=2018-01-01",
    "dotnet_expiry": b"r=h.example%2Fnamespaces%2Fns1%2Ftopics%2Forders&e=6%2F15%2F2030+6%3A20%3A15+PM&s=x%2By%3D\n"
    b"/namespaces/ns1/topics/orders:publish\n/namespaces/ns1\n",
    "query_key": b"\n/topics/t/api/events\n/topics/t\naeg-sas-key=AAAA%2B/=&aeg-sas-token=r%3Dx%26e%3D1",
    "offset_expiry": b"r=/topics/t&e=2030-01-01 10:00:00.5 +02:00\n/topics/t/api/events\n/topics/t\n",
}

FILTER = {
    "namespace_all_ops": b'{"includedEventTypes":["a.b"],"enableAdvancedFilteringOnArrays":true,"filters":['
    b'{"operatorType":"NumberIn","key":"data.v","values":[1,2.5]},'
    b'{"operatorType":"NumberNotInRange","key":"data.n","values":[[1,2]]},'
    b'{"operatorType":"NumberLessThanOrEquals","key":"n1","value":9},'
    b'{"operatorType":"BoolEquals","key":"data.flag","value":true},'
    b'{"operatorType":"StringNotContains","key":"subject","values":["q"]},'
    b'{"operatorType":"StringIn","key":"type","values":["Contoso.Created"]},'
    b'{"operatorType":"IsNullOrUndefined","key":"data.a.b"},'
    b'{"operatorType":"IsNotNull","key":"ext1"}]}',
    "basic_subject": b'{"subjectBeginsWith":"/a","subjectEndsWith":"Z","isSubjectCaseSensitive":false,'
    b'"includedEventTypes":["All"],"advancedFilters":[{"operatorType":"StringBeginsWith","key":"data.s","values":["q"]},'
    b'{"operatorType":"NumberGreaterThan","key":"data.n","value":1}]}',
    "invalid_key": b'{"filters":[{"operatorType":"StringIn","key":"data..x","values":["a"]}]}',
}

MGMT = {
    "namespace_topic": b'{"properties":{"publisherType":"Custom","inputSchema":"CloudEventSchemaV1_0","eventRetentionInDays":3}}',
    "queue_subscription": b'{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":'
    b'{"receiveLockDurationInSeconds":120,"maxDeliveryCount":5,"eventTimeToLive":"P1D","deadLetterDestination":null}},'
    b'"eventDeliverySchema":"CloudEventSchemaV1_0","expirationTimeUtc":"2030-01-01T00:00:00Z",'
    b'"filtersConfiguration":{"includedEventTypes":["a"],"filters":[{"operatorType":"NumberIn","key":"data.n","values":[1]}]}}}',
    "push_subscription": b'{"properties":{"deliveryConfiguration":{"deliveryMode":"Push","push":{"maxDeliveryCount":3,'
    b'"eventTimeToLive":"PT1H","destination":{"endpointType":"WebHook","properties":{"endpointUrl":"https://h.example/x?code=s",'
    b'"maxEventsPerBatch":10,"preferredBatchSizeInKilobytes":64,"deliveryAttributeMappings":[{"name":"h1","type":"Static",'
    b'"properties":{"value":"v","isSecret":true}},{"name":"h2","type":"Dynamic","properties":{"sourceField":"data.k"}}]}}}}}}',
    "custom_topic_mapping": b'{"properties":{"inputSchema":"CustomEventSchema","inputSchemaMapping":{"inputSchemaMappingType":"Json",'
    b'"properties":{"id":{"sourceField":"myId"},"eventType":{"sourceField":"k","defaultValue":"d"},"subject":{"defaultValue":"s"}}},'
    b'"autoCreateTopicWithFirstSubscription":false}}',
    "basic_subscription": b'{"properties":{"destination":{"endpointType":"WebHook","properties":{"endpointUrl":"http://127.0.0.1:9/hook"}},'
    b'"filter":{"subjectBeginsWith":"/a","advancedFilters":[{"operatorType":"StringContains","key":"data.s","values":["x"]}]},'
    b'"eventDeliverySchema":"EventGridSchema","retryPolicy":{"maxDeliveryAttempts":5,"eventTimeToLiveInMinutes":60},'
    b'"expirationTimeUtc":"2031-02-03T04:05:06.789Z","labels":["a"]}}',
    "regenerate_key": b'{"keyName":"key2"}',
}

# MQTT over WebSockets (ws_frames): byte 0 the read size, an optional upgrade request, then
# masked client frames.
WS_MASK = b"\x37\xfa\x21\x3d"


def wsframe(opcode, payload, fin=True, masked=True):
    head = bytearray([(0x80 if fin else 0) | opcode])
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head.append(m | n)
    elif n <= 0xFFFF:
        head.append(m | 126)
        head += struct.pack(">H", n)
    else:
        head.append(m | 127)
        head += struct.pack(">Q", n)
    if not masked:
        return bytes(head) + payload
    body = bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(payload))
    return bytes(head) + WS_MASK + body


UPGRADE = (
    b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: mqtt\r\n\r\n"
)
_c5 = connect5("ws")
_p5 = publish5("a/b", b"hello")
WS = {
    "upgrade_connect": b"\x00" + UPGRADE + wsframe(2, _c5) + wsframe(2, _p5),
    "fragmented_ping": b"\x03"
    + wsframe(2, _c5[:4], fin=False)
    + wsframe(9, b"ping")
    + wsframe(0, _c5[4:], fin=True)
    + wsframe(10, b""),
    "several_per_frame": b"\x00" + wsframe(2, _c5 + _p5 + b"\xc0\x00") + wsframe(8, b"\x03\xe8"),
    "len16": b"\x07" + wsframe(2, publish5("big", bytes(range(256)) * 2)),
    "bad_text": b"\x00" + wsframe(2, _c5) + wsframe(1, b"{}"),
    "bad_unmasked": b"\x00" + wsframe(2, _c5) + wsframe(2, _p5, masked=False),
    "bad_oversize": b"\x00" + wsframe(2, _c5) + b"\x82\xff" + struct.pack(">Q", 1 << 30) + WS_MASK,
}

ALL = {
    "mqtt_v3": V3,
    "mqtt_v5": V5,
    "cloudevents": CE,
    "conversion": CONVERSION,
    "eventgrid": EG,
    "sas": SAS,
    "filter": FILTER,
    "mgmt": MGMT,
    "ws_frames": WS,
}

for target, seeds in ALL.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
