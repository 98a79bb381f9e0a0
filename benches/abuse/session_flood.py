#!/usr/bin/env python3
"""By-hand measurement of the robustness issue's session flood against a running broker: new
client ids connect with a persistent session (v3.1.1, clean session 0) and leave at once, as
fast as the broker answers, for a while. Prints how many sessions were created, the CONNACK codes
seen, and the broker's RSS (from /proc) and session gauge.

    python3 benches/abuse/session_flood.py --pid $(pgrep -n evgrid) --port 1883 --http 8080 --secs 16

Loopback only; stops by itself.
"""
import argparse, socket, time, urllib.request
from collections import Counter

from wire import connect_packet, rss_mib


def sessions(http):
    body = urllib.request.urlopen(f"http://127.0.0.1:{http}/metrics").read().decode()
    for line in body.splitlines():
        if line.startswith("evgrid_mqtt_sessions "):
            return int(float(line.split()[1]))
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--http", type=int, default=8080)
    ap.add_argument("--secs", type=float, default=16)
    a = ap.parse_args()
    base = rss_mib(a.pid)
    codes, n, start = Counter(), 0, time.time()
    while time.time() - start < a.secs:
        c = socket.create_connection(("127.0.0.1", a.port))
        c.sendall(connect_packet(b"flood-%d" % n, clean=False, keep_alive=60))
        ack = c.recv(4)
        codes[ack[3] if len(ack) == 4 else "closed"] += 1
        c.close()
        n += 1
    time.sleep(1)
    print(f"{n} CONNECTs in {a.secs:.0f} s; CONNACK codes {dict(codes)}; "
          f"sessions {sessions(a.http)}; RSS {base:.0f} -> {rss_mib(a.pid):.0f} MiB")


if __name__ == "__main__":
    main()
