#!/usr/bin/env bash
# Memory per idle connection, over TCP and TLS, evgrid vs mosquitto: each measurement on a freshly
# started broker (a broker that has held connections before keeps that memory, so a second
# measurement on it reads ~0), VmRSS before and after N connections have their CONNACK.
# Usage: benches/idle-series.sh [OUTDIR] [ROUNDS] [N]   (needs: apt-get install mosquitto;
# release builds: cargo build --release -p evgrid)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-idle}
rounds=${2:-3}
n=${3:-5000}
rm -rf "$out"; mkdir -p "$out"
out=$(cd "$out" && pwd)
ev=target/release/evgrid
$ev cert dev --out "$out/certs" > /dev/null
chmod 644 "$out/certs/server.key" # mosquitto started as root reads it as its own user
ca="$out/certs/ca.pem"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start() { # broker transport → pid; the port is 18930 either way
  case "$1/$2" in
    evgrid/tcp) RUST_LOG=warn $ev --mqtt-bind 127.0.0.1:18930 --http-bind 127.0.0.1:18931 \
        --data-dir "$out/data" > "$out/broker.log" 2>&1 & ;;
    evgrid/tls) RUST_LOG=warn EVGRID_MQTT_TCP_ENABLED=false EVGRID_MQTT_TLS_BIND=127.0.0.1:18930 \
        EVGRID_MQTT_TLS_CERT_FILE="$out/certs/server.pem" \
        EVGRID_MQTT_TLS_KEY_FILE="$out/certs/server.key" \
        $ev --http-bind 127.0.0.1:18931 --data-dir "$out/data" > "$out/broker.log" 2>&1 & ;;
    mosquitto/tcp) printf 'listener 18930 127.0.0.1\nallow_anonymous true\n' > "$out/m.conf"
      /usr/sbin/mosquitto -c "$out/m.conf" > "$out/broker.log" 2>&1 & ;;
    mosquitto/tls) printf 'listener 18930 127.0.0.1\nallow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\n' \
        "$ca" "$out/certs/server.pem" "$out/certs/server.key" > "$out/m.conf"
      /usr/sbin/mosquitto -c "$out/m.conf" > "$out/broker.log" 2>&1 & ;;
  esac
  echo $!
}

for r in $(seq "$rounds"); do
  for broker in evgrid mosquitto; do
    for t in tcp tls; do
      rm -rf "$out/data"
      pid=$(start $broker $t)
      sleep 1.5
      kill -0 "$pid" 2>/dev/null || { echo "round $r $broker $t: did not start: $(tail -1 "$out/broker.log")"; continue; }
      before=$(rss "$pid")
      extra=(); [ $t = tls ] && extra=(--tls="$ca")
      python3 benches/idle_connections.py 127.0.0.1 18930 "$n" 60 "${extra[@]}" > "$out/py.log" 2>&1 &
      py=$!
      for _ in $(seq 600); do
        grep -q "^connected" "$out/py.log" && break
        kill -0 $py 2>/dev/null || break
        sleep 0.1
      done
      if grep -q "^connected" "$out/py.log"; then
        sleep 1
        after=$(rss "$pid")
        echo "round $r $broker $t: $(( (after - before) * 1024 / n )) bytes/connection (RSS $before → $after KiB, $n connections)"
      else
        echo "round $r $broker $t: FAILED: $(tail -1 "$out/py.log")"
      fi
      kill $py 2>/dev/null || true; wait $py 2>/dev/null || true
      # Not this shell's child (started in a subshell): wait until it is gone, port and all.
      kill "$pid"
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
  done
done | tee "$out/idle.txt"
