import socket, struct, sys, time, selectors
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((host, port))
    cid = b'idle-%d' % i
    body = b'\x00\x04MQTT\x04\x02\x02\x58' + struct.pack('>H', len(cid)) + cid
    s.sendall(bytes([0x10, len(body)]) + body)
    socks.append(s)
    if i % 500 == 499:
        for t in socks[-500:]:
            t.settimeout(10); assert t.recv(4)[0] == 0x20
for t in socks[(n // 500) * 500:]:
    t.settimeout(10); assert t.recv(4)[0] == 0x20
print("connected", n, flush=True)
time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 5)
