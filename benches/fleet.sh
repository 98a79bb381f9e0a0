#!/usr/bin/env bash
# The large-fleet scenario (`evgrid-loadtest fleet`) against evgrid, mosquitto and rumqttd 0.20,
# one broker at a time, each freshly started for each run, rounds alternating between them
# (evgrid mosquitto rumqttd evgrid ...). MQTT 3.1.1 (rumqttd's MQTT 5 listener lacks features the
# others have), persistent sessions, QoS 1 telemetry every 10 s, an alert every second to every
# device, a 4-member shared-subscription backend, a reconnect storm within 10 s.
#
# Usage: benches/fleet.sh [OUTDIR] [ROUNDS] [DEVICES]   (needs: apt-get install mosquitto; cargo)
# DEVICES defaults to what this process's file-descriptor limit allows, at most 100,000: each
# broker and the generator need one descriptor per device (RLIMIT_NOFILE; see benches/README.md,
# "Large fleet"). Env: PEERS="mosquitto rumqttd" (default both).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-fleet}
rounds=${2:-3}
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] && hard=1048576
default=$(( hard - 1000 < 100000 ? hard - 1000 : 100000 ))
devices=${3:-$default}
mkdir -p "$out"
out=$(cd "$out" && pwd)
ulimit -n "$hard"
cargo build --release -p evgrid -p evgrid-loadtest
lt=target/release/evgrid-loadtest
peers=${PEERS:-mosquitto rumqttd}
rumqttd=target/peers/bin/rumqttd
if [[ " $peers " == *" rumqttd "* ]] && [ ! -x "$rumqttd" ]; then
  echo "installing rumqttd 0.20.0 into target/peers (once)"
  CARGO_TARGET_DIR=target/peers/build cargo install rumqttd --version 0.20.0 --root target/peers
fi
port=18940
cat > "$out/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
CONF
cat > "$out/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = $((devices + 100))
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:$port"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
CONF

pid=""
start() {
  case $1 in
    evgrid)
      rm -rf "$out/data"
      RUST_LOG=warn target/release/evgrid --mqtt-bind 127.0.0.1:$port --http-bind 127.0.0.1:18981 \
        --data-dir "$out/data" > "$out/evgrid.log" 2>&1 & ;;
    mosquitto) /usr/sbin/mosquitto -c "$out/mosquitto.conf" > "$out/mosquitto.log" 2>&1 & ;;
    rumqttd) RUST_LOG=warn $rumqttd -c "$out/rumqttd.toml" > "$out/rumqttd.log" 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return
    sleep 0.1
  done
  echo "$1 did not start" >&2
  exit 1
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; sleep 2; }
trap stop EXIT

for r in $(seq "$rounds"); do
  for b in evgrid $peers; do
    start "$b"
    echo "=== round $r: $b, $devices devices"
    $lt fleet -h 127.0.0.1 -p $port -V 4 --devices "$devices" --broker-pid "$pid" \
      --json "$out/$b.$r.json" 2>"$out/$b.$r.err" | tee "$out/$b.$r.txt" || true
    stop
  done
done

# Medians per broker of each figure.
python3 - "$out" "$rounds" evgrid $peers <<'PY'
import json, statistics, sys
out, rounds, brokers = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = [
    ("connect storm, s", lambda r: r["connect_storm"]["seconds"]),
    ("connects/s", lambda r: r["connect_storm"]["connects_per_s"]),
    ("CONNACK p99, ms", lambda r: r["connect_storm"]["connack_us"]["p99_us"] / 1000),
    ("steady CPU, cores", lambda r: r["steady"]["broker_cores"]),
    ("steady RSS, MB", lambda r: r["steady"]["broker_rss_mb"]),
    ("telemetry e2e p99, ms", lambda r: r["telemetry"]["e2e_steady_us"]["p99_us"] / 1000),
    ("broadcast spread p50, ms", lambda r: r["broadcast"]["spread_p50_ms"]),
    ("broadcast spread max, ms", lambda r: r["broadcast"]["spread_max_ms"]),
    ("reconnect recovery, s", lambda r: r["reconnect_storm"]["recovery_s"]),
    ("devices back / sessions kept", lambda r: r["reconnect_storm"]["sessions_kept"]),
    ("devices not back by the end", lambda r: r["reconnect_storm"]["not_back"]),
    ("telemetry lost", lambda r: r["lost"]["telemetry"]),
    ("alerts lost (devices back)", lambda r: r["lost"]["alerts"]),
    ("alerts undelivered (devices not back)", lambda r: r["lost"]["alerts_not_back"]),
]
res = {}
for b in brokers:
    res[b] = []
    for k in range(1, rounds + 1):
        try:
            res[b].append(json.load(open(f"{out}/{b}.{k}.json")))
        except (OSError, ValueError):
            pass
print("| figure | " + " | ".join(f"{b} (median of {len(res[b])})" for b in brokers) + " |")
print("|---|" + "---|" * len(brokers))
for name, f in rows:
    cells = []
    for b in brokers:
        vals = [f(r) for r in res[b] if f(r) is not None]
        cells.append(f"{statistics.median(vals):.3g}" if vals else "-")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
