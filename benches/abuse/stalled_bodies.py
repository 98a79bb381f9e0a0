#!/usr/bin/env python3
"""Stalled and trickling HTTP bodies against a real evgrid binary: the server's RSS before, while
the connections are held, and whether it answers them (408) and lets go.

    python3 benches/abuse/stalled_bodies.py target/release/evgrid 2000 40            # stalled
    python3 benches/abuse/stalled_bodies.py target/release/evgrid 500 40 --trickle   # 1 byte/s

Each connection sends a publish request's headers with a valid key and `Content-Length: 1048576`,
then nothing (stalled) or one byte a second (trickle), for the given number of seconds. The open-
file limit is raised to its hard limit for the client sockets. Default settings otherwise
(`http.body_timeout_ms` 30 s).

Figures on the 2-core development machine, debug builds of 22bcc64 (before) and of the change
that reads bodies incrementally with a body timeout (after):

    2,000 stalled:   before +784 MB at 2 s, 2.41 GB peak, none answered after 40 s
                     after  +58 MB (30 kB per connection), all 2,000 answered 408 at 30 s
    500 trickling:   before +471 MB, all 500 still open after 40 s
                     after  +14 MB, all 500 answered 408 and closed at about 30 s
"""
import json, os, resource, shutil, socket, subprocess, sys, tempfile, time

binary, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
trickle = "--trickle" in sys.argv[4:]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ADMIN = "measure-admin-key-0123456789"
d = tempfile.mkdtemp(prefix="evgrid-stall-")
env = dict(os.environ, EVGRID_ADMIN_KEY=ADMIN, RUST_LOG="error")
p = subprocess.Popen([binary, "--mqtt-bind", "127.0.0.1:0", "--http-bind", "127.0.0.1:0",
                      "--data-dir", d], env=env, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
http = None
while http is None:
    line = p.stdout.readline()
    if not line:
        sys.exit("evgrid did not start")
    if line.startswith("evgrid: http listening on "):
        http = line.split()[-1]
host, port = http.rsplit(":", 1)
port = int(port)


def req(method, path, body=b""):
    s = socket.create_connection((host, port))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              f"Authorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    out = b""
    while True:
        c = s.recv(65536)
        if not c:
            return out.decode()
        out += c


def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])


try:
    req("PUT", "/mgmt/topics/stall", b'{"properties":{}}')
    key = json.loads(req("POST", "/mgmt/topics/stall/listKeys").split("\r\n\r\n", 1)[1])["key1"]
    time.sleep(0.5)
    before = rss()
    head = (f"POST /topics/stall/api/events?api-version=2018-01-01 HTTP/1.1\r\nHost: x\r\n"
            f"aeg-sas-key: {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1048576\r\n\r\n").encode()
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(head)
        conns.append(s)
    t0 = time.time()
    peak, at2 = before, None
    while time.time() - t0 < secs:
        if trickle:
            for s in conns:
                try:
                    s.sendall(b" ")
                except OSError:
                    pass
        time.sleep(1)
        peak = max(peak, rss())
        if at2 is None and time.time() - t0 >= 2:
            at2 = rss()
    answered = closed = waiting = 0
    for s in conns:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            if data.startswith(b"HTTP/1.1 408"):
                answered += 1
            elif data == b"":
                closed += 1
            else:
                waiting += 1
        except BlockingIOError:
            waiting += 1
        except OSError:
            closed += 1
    kind = "trickling" if trickle else "stalled"
    print(f"{n} {kind} connections: RSS {before} kB before, {at2} kB at 2 s "
          f"(+{(at2 or before) - before} kB), peak {peak} kB, {rss()} kB after {secs:.0f} s; "
          f"{answered} answered 408, {closed} closed without an answer, {waiting} still waiting")
finally:
    p.kill()
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
