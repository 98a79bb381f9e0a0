#!/usr/bin/env python3
"""By-hand measurement of the robustness issue's first scenario against a running broker: one
MQTT subscriber to `flood/#` that never reads, one publisher of 100 KB QoS 0 messages as fast as
the broker takes them. Prints the broker's RSS (from /proc) every second, during the flood and
after both clients have left.

    python3 benches/abuse/slow_reader.py --pid $(pgrep -n evgrid) --port 1883 --secs 25

Loopback only; stops by itself.
"""
import argparse, socket, struct, time

from wire import connect_packet, packet, rss_mib, s


def connect(port, cid):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(connect_packet(cid))
    assert c.recv(4)[:2] == b"\x20\x02"
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--secs", type=float, default=25)
    ap.add_argument("--size", type=int, default=100 * 1024)
    a = ap.parse_args()
    sub = connect(a.port, b"slow-reader")
    sub.sendall(packet(0x82, struct.pack("!H", 1) + s(b"flood/#") + b"\x00"))
    time.sleep(0.3)  # the SUBACK stays unread, like everything after it
    pub = connect(a.port, b"flooder")
    burst = packet(0x30, s(b"flood/a") + b"x" * a.size) * 10
    start = last = time.time()
    sent, peak = 0, rss_mib(a.pid)
    print(f"t=0s rss={peak:.0f} MiB")
    while time.time() - start < a.secs:
        pub.sendall(burst)
        sent += len(burst)
        if time.time() - last >= 1:
            last = time.time()
            r = rss_mib(a.pid)
            peak = max(peak, r)
            print(f"t={last - start:.0f}s sent={sent >> 20} MiB rss={r:.0f} MiB")
    pub.close()
    sub.close()
    time.sleep(3)
    print(f"sent {sent >> 20} MiB in {a.secs:.0f} s; peak rss {peak:.0f} MiB; "
          f"3 s after both left: {rss_mib(a.pid):.0f} MiB")


if __name__ == "__main__":
    main()
