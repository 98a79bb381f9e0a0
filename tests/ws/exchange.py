"""MQTT over WebSockets with a real client: paho-mqtt's WebSocket transport against evgrid's
`ws` or `wss` listener, exchanging messages both ways with a paho client on plain TCP, at the
given protocol version and QoS, then one large message each way (many frames).

Run by tests/ws.rs; prints `OK` and exits 0, or names what went wrong and exits 1.
"""

import argparse
import queue
import ssl
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 10


def client(name, version, transport, port, ca=None, cert=None, key=None):
    proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=name,
        protocol=proto,
        transport=transport,
    )
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    if ca:
        c.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
    got = queue.Queue()
    connected = queue.Queue()
    c.on_message = lambda _c, _u, m: got.put((m.topic, m.payload, m.qos))
    c.on_connect = lambda _c, _u, _f, rc, _p=None: connected.put(rc)
    c.connect("localhost", port, keepalive=30)
    c.loop_start()
    rc = connected.get(timeout=TIMEOUT)
    if rc != 0:
        fail(f"{name}: CONNACK {rc}")
    return c, got


def subscribe(c, topic, qos):
    done = queue.Queue()
    c.on_subscribe = lambda *_a: done.put(True)
    c.subscribe(topic, qos)
    done.get(timeout=TIMEOUT)


def fail(msg):
    print(f"FAIL {msg}", flush=True)
    sys.exit(1)


def expect(got, topic, payload, qos, who):
    try:
        t, p, q = got.get(timeout=TIMEOUT)
    except queue.Empty:
        fail(f"{who}: nothing received, expected {topic}")
    if (t, p) != (topic, payload):
        fail(f"{who}: got {t} ({len(p)} bytes), expected {topic} ({len(payload)} bytes)")
    if q != qos:
        fail(f"{who}: {topic} arrived at QoS {q}, expected {qos}")


def publish(c, topic, payload, qos):
    info = c.publish(topic, payload, qos)
    info.wait_for_publish(timeout=TIMEOUT)
    if not info.is_published():
        fail(f"publish {topic} not completed")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ws-port", type=int, required=True)
    ap.add_argument("--tcp-port", type=int, required=True)
    ap.add_argument("--ca", help="CA bundle: use wss")
    ap.add_argument("--version", type=int, choices=[3, 5], default=5)
    ap.add_argument("--qos", type=int, choices=[0, 1], default=1)
    ap.add_argument("--large", type=int, default=200 * 1024)
    ap.add_argument("--cert", help="client certificate (wss)")
    ap.add_argument("--key", help="its key")
    ap.add_argument(
        "--expect-refused",
        action="store_true",
        help="the WebSocket client's connection must fail (prints REFUSED)",
    )
    a = ap.parse_args()
    tag = f"{'wss' if a.ca else 'ws'}-v{a.version}-q{a.qos}{'-cert' if a.cert else ''}"
    if a.expect_refused:
        try:
            client(f"{tag}-ws", a.version, "websockets", a.ws_port, a.ca, a.cert, a.key)
        except (OSError, queue.Empty) as e:
            print(f"REFUSED {type(e).__name__}", flush=True)
            return
        fail("the WebSocket client connected")
    ws, ws_got = client(f"{tag}-ws", a.version, "websockets", a.ws_port, a.ca, a.cert, a.key)
    tcp, tcp_got = client(f"{tag}-tcp", a.version, "tcp", a.tcp_port)
    subscribe(ws, f"{tag}/down/#", a.qos)
    subscribe(tcp, f"{tag}/up/#", a.qos)
    for i in range(5):
        publish(ws, f"{tag}/up/{i}", f"from ws {i}".encode(), a.qos)
    for i in range(5):
        expect(tcp_got, f"{tag}/up/{i}", f"from ws {i}".encode(), a.qos, "tcp")
    for i in range(5):
        publish(tcp, f"{tag}/down/{i}", f"from tcp {i}".encode(), a.qos)
    for i in range(5):
        expect(ws_got, f"{tag}/down/{i}", f"from tcp {i}".encode(), a.qos, "ws")
    big = bytes((i * 31 + 7) % 251 for i in range(a.large))
    publish(ws, f"{tag}/up/big", big, a.qos)
    expect(tcp_got, f"{tag}/up/big", big, a.qos, "tcp (large)")
    publish(tcp, f"{tag}/down/big", big[::-1], a.qos)
    expect(ws_got, f"{tag}/down/big", big[::-1], a.qos, "ws (large)")
    for c in (ws, tcp):
        c.disconnect()
        c.loop_stop()
    print(f"OK {tag}", flush=True)


if __name__ == "__main__":
    main()
