"""Opens N idle MQTT 3.1.1 connections (keep-alive 600 s) and holds them.

Usage: python3 benches/idle_connections.py HOST PORT N [SECONDS] [--subscribe] [--tls=CAFILE]
                                          [--username=TEMPLATE --password=PASSWORD]
With --username each client sends a user name (%i in TEMPLATE: its index, from 0) and, with
--password, a password. With --subscribe each client also subscribes to fleet/devices/<its id>/commands/# at QoS 1, the
way a device fleet waits for commands. With --tls=CAFILE each connection is MQTT over TLS,
verified against CAFILE (server name: localhost). Compare the broker's VmRSS before and after.
"""
import socket, ssl, struct, sys, time

args = [a for a in sys.argv[1:] if not a.startswith("--")]
subscribe = "--subscribe" in sys.argv
cafile = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--tls=")), None)
tls = ssl.create_default_context(cafile=cafile) if cafile else None
opt = lambda name: next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(name + "=")), None)
username, password = opt("--username"), opt("--password")
host, port, n = args[0], int(args[1]), int(args[2])
hold = float(args[3]) if len(args) > 3 else 5


def connect(i):
    s = socket.create_connection((host, port))
    if tls:
        s = tls.wrap_socket(s, server_hostname="localhost")
    cid = b"idle-%d" % i
    flags = 0x02 | (0x80 if username else 0) | (0x40 if username and password else 0)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x02\x58" + struct.pack(">H", len(cid)) + cid
    if username:
        u = username.replace("%i", str(i)).encode()
        body += struct.pack(">H", len(u)) + u
        if password:
            body += struct.pack(">H", len(password)) + password.encode()
    assert len(body) < 128, "one-byte remaining length"
    s.sendall(bytes([0x10, len(body)]) + body)
    return s


def subscribe_to(s, i):
    topic = b"fleet/devices/idle-%d/commands/#" % i
    body = struct.pack(">H", 1) + struct.pack(">H", len(topic)) + topic + b"\x01"
    s.sendall(bytes([0x82, len(body)]) + body)


def expect(s, first):
    s.settimeout(10)
    got = s.recv(5)
    assert got and got[0] == first, (first, got)
    # A CONNACK must accept (a refused one, e.g. a wrong password, would be measured as idle).
    assert first != 0x20 or (len(got) >= 4 and got[3] == 0), ("CONNACK refused", got)


socks = []
for i in range(n):
    socks.append(connect(i))
    if len(socks) % 500 == 0 or len(socks) == n:
        batch = socks[(len(socks) - 1) // 500 * 500:]
        for t in batch:
            expect(t, 0x20)
        if subscribe:
            base = (len(socks) - 1) // 500 * 500
            for j, t in enumerate(batch):
                subscribe_to(t, base + j)
            for t in batch:
                expect(t, 0x90)
print("connected", n, "subscribed" if subscribe else "", flush=True)
time.sleep(hold)
