"""One paho-mqtt (2.1) client session for tests/auth_clients.rs, driven by arguments.

Connects (MQTT 3.1.1 or 5; user name and password; MQTT 5 CUSTOM-JWT with the token in the
CONNECT's Authentication Data), then optionally subscribes and publishes at QoS 1, and prints one
JSON line: {"connack": code, "suback": [codes], "puback": code, "received": [payloads]}.
"""

import argparse
import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def code(rc):
    return rc.value if hasattr(rc, "value") else int(rc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--version", type=int, choices=[3, 5], default=5)
    ap.add_argument("--id", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--jwt", help="a CUSTOM-JWT token for the CONNECT")
    ap.add_argument("--sub", help="a topic filter to subscribe to at QoS 1")
    ap.add_argument("--pub", help="a topic to publish 'hello' to at QoS 1")
    ap.add_argument("--expect", type=int, default=0, help="messages to wait for")
    a = ap.parse_args()

    proto = mqtt.MQTTv5 if a.version == 5 else mqtt.MQTTv311
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.id, protocol=proto)
    if a.user is not None:
        c.username_pw_set(a.user, a.password)
    out = {"connack": None, "suback": None, "puback": None, "received": []}
    connected, subscribed, published = threading.Event(), threading.Event(), threading.Event()
    got = threading.Event()

    def on_connect(client, userdata, flags, rc, props):
        out["connack"] = code(rc)
        connected.set()

    def on_subscribe(client, userdata, mid, rcs, props):
        out["suback"] = [code(r) for r in rcs]
        subscribed.set()

    def on_publish(client, userdata, mid, rc, props):
        out["puback"] = code(rc)
        published.set()

    def on_message(client, userdata, msg):
        out["received"].append(msg.payload.decode())
        if len(out["received"]) >= a.expect:
            got.set()

    c.on_connect, c.on_subscribe, c.on_publish, c.on_message = (
        on_connect, on_subscribe, on_publish, on_message)
    props = None
    if a.jwt:
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = "CUSTOM-JWT"
        props.AuthenticationData = a.jwt.encode()
    try:
        c.connect("127.0.0.1", a.port, keepalive=30, properties=props)
    except Exception as e:  # the server closed the socket before a CONNACK
        out["error"] = str(e)
        print(json.dumps(out))
        return
    c.loop_start()
    connected.wait(10)
    if out["connack"] == 0:
        if a.sub:
            c.subscribe(a.sub, qos=1)
            subscribed.wait(10)
        if a.pub:
            c.publish(a.pub, b"hello", qos=1)
            published.wait(10)
        if a.expect:
            got.wait(10)
        c.disconnect()
    time.sleep(0.1)
    c.loop_stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
