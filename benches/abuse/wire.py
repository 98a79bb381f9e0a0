"""Shared by the by-hand abuse scripts beside it: the broker's RSS from /proc, and the few MQTT
3.1.1 packets they send, encoded by hand (no client library: a misbehaving client is the point)."""
import struct


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def s(b):
    """An MQTT string: two length bytes, then the bytes."""
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    """A packet: first byte, remaining length as a variable byte integer, body."""
    out, n = bytearray([first]), len(body)
    while True:
        d, n = n % 128, n // 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out) + body


def connect_packet(cid, clean=True, keep_alive=0):
    """A v3.1.1 CONNECT for client id `cid`."""
    flags = 2 if clean else 0
    return packet(0x10, s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", keep_alive) + s(cid))
