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
. benches/peers.sh
[[ " $peers " == *" rumqttd "* ]] && install_rumqttd
port=18940
mosquitto_conf "$out/mosquitto.conf" $port
rumqttd_conf "$out/rumqttd.toml" $((devices + 100)) $port

pid=""
start() {
  # A broker left from an earlier run would answer in this one's place.
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is already in use: stop what listens there first" >&2
    exit 1
  fi
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
    kill -0 "$pid" 2>/dev/null || { echo "$1 exited at start" >&2; exit 1; }
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
