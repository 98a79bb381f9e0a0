#!/usr/bin/env bash
# Transport security figures: evgrid vs mosquitto over plain TCP and over TLS (same certificates,
# same limits), TLS handshakes per second, memory per idle TLS connection, HTTPS vs HTTP publish.
# Usage: benches/tls-series.sh [OUTDIR] [ROUNDS]   (needs: apt-get install mosquitto)
# Release builds; generator and servers on the same cores; `compare` alternates the brokers round
# by round (A B A B ...) and reports medians. See benches/README.md, "Transport security".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-tls}
rounds=${2:-3}
rm -rf "$out"; mkdir -p "$out"
out=$(cd "$out" && pwd)
cargo build --release -p evgrid -p evgrid-loadtest
ev=target/release/evgrid
lt=target/release/evgrid-loadtest
$ev cert dev --out "$out/certs" > /dev/null
# mosquitto started as root drops to its own user, which must read the (scratch) server key.
chmod 644 "$out/certs/server.key"
ca="$out/certs/ca.pem"
ev_tcp=18830; ev_tls=18883; mq_tcp=18831; mq_tls=18884; http=18095; https=18443

EVGRID_MQTT_MAX_QUEUED_MESSAGES=10000 EVGRID_ADMIN_KEY=bench-admin-key-0123456789 \
  EVGRID_STORE_BACKEND=memory \
  EVGRID_MQTT_TLS_BIND=127.0.0.1:$ev_tls EVGRID_MQTT_TLS_CERT_FILE="$out/certs/server.pem" \
  EVGRID_MQTT_TLS_KEY_FILE="$out/certs/server.key" \
  EVGRID_HTTP_TLS_BIND=127.0.0.1:$https EVGRID_HTTP_TLS_CERT_FILE="$out/certs/server.pem" \
  EVGRID_HTTP_TLS_KEY_FILE="$out/certs/server.key" RUST_LOG=warn \
  $ev --mqtt-bind 127.0.0.1:$ev_tcp --http-bind 127.0.0.1:$http --data-dir "$out/data" \
  > "$out/evgrid.log" 2>&1 &
evpid=$!
# mosquitto with the same limits as benches/compare-mosquitto.sh, and the same certificate.
# set_tcp_nodelay: without it mosquitto's TLS CONNACK waits behind Nagle (~40 ms). The TLS
# options after the second `listener` line apply to it only.
cat > "$out/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 10000
max_inflight_messages 1000
listener $mq_tcp 127.0.0.1
listener $mq_tls 127.0.0.1
cafile $ca
certfile $out/certs/server.pem
keyfile $out/certs/server.key
CONF
/usr/sbin/mosquitto -c "$out/mosquitto.conf" > "$out/mosquitto.log" 2>&1 &
mqpid=$!
trap 'kill $evpid $mqpid 2>/dev/null' EXIT
sleep 1

# ONLY="fanin_tcp fanin_tls idle publish" runs just those parts (default: everything).
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
mqtt() {
  local name=$1 a=$2 b=$3; shift 3
  want "$name" || return 0
  echo "=== $name"
  $lt compare --a 127.0.0.1:$a --b 127.0.0.1:$b --a-pid $evpid --b-pid $mqpid --rounds "$rounds" \
    --json "$out/$name.json" "$@" | tee "$out/$name.txt"
}
tls=(--tls --cafile "$ca")
mqtt fanin_tcp   $ev_tcp $mq_tcp --scenario fanin  --publishers 100 --rate 2000000 -q 0 -s 64 --duration 5s
mqtt fanin_tls   $ev_tls $mq_tls --scenario fanin  --publishers 100 --rate 2000000 -q 0 -s 64 --duration 5s "${tls[@]}"
# Closed loop (peak against peak): publishers send as fast as each broker takes messages, with at
# most 10,000 published and not yet received, so neither broker is judged by what it drops.
mqtt fanin_max_tcp $ev_tcp $mq_tcp --scenario fanin --publishers 100 --max-rate --outstanding 10000 -q 0 -s 64 --duration 5s
mqtt fanin_max_tls $ev_tls $mq_tls --scenario fanin --publishers 100 --max-rate --outstanding 10000 -q 0 -s 64 --duration 5s "${tls[@]}"
mqtt fanout_tcp  $ev_tcp $mq_tcp --scenario fanout --subscribers 1000 --rate 3000 -q 0 -s 64 --duration 5s
mqtt fanout_tls  $ev_tls $mq_tls --scenario fanout --subscribers 1000 --rate 3000 -q 0 -s 64 --duration 5s "${tls[@]}"
mqtt fanin_q1_tcp $ev_tcp $mq_tcp --scenario fanin --publishers 100 --rate 300000 -q 1 -s 64 --duration 5s
mqtt fanin_q1_tls $ev_tls $mq_tls --scenario fanin --publishers 100 --rate 300000 -q 1 -s 64 --duration 5s "${tls[@]}"
# Handshakes: 2,000 clients connecting at once (a full TLS handshake each, no resumption).
mqtt connect_tls $ev_tls $mq_tls --scenario conn -c 2000 -R 100000 --duration 2s "${tls[@]}"
mqtt connect_tcp $ev_tcp $mq_tcp --scenario conn -c 2000 -R 100000 --duration 2s

# Memory per idle connection: VmRSS before and after holding N connections (TLS and TCP), read
# once every connection has its CONNACK; each broker settles for a few seconds in between.
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
idle() {
  local name=$1 pid=$2 port=$3; shift 3
  local n=5000 before after log="$out/idle.$name.log"
  sleep 3
  before=$(rss "$pid")
  python3 benches/idle_connections.py 127.0.0.1 "$port" $n 60 "$@" > "$log" 2>&1 &
  local py=$!
  for _ in $(seq 600); do
    grep -q "^connected" "$log" && break
    kill -0 $py 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "^connected" "$log"; then
    echo "idle $name: FAILED: $(tail -1 "$log")"; kill $py 2>/dev/null; return 0
  fi
  sleep 1
  after=$(rss "$pid")
  kill $py 2>/dev/null; wait $py 2>/dev/null || true
  echo "idle $name: $(( (after - before) * 1024 / n )) bytes/connection (RSS $before → $after KiB, $n connections)"
}
if want idle; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  for r in $(seq "$rounds"); do
    idle evgrid_tls $evpid $ev_tls --tls="$ca"
    idle mosquitto_tls $mqpid $mq_tls --tls="$ca"
    idle evgrid_tcp $evpid $ev_tcp
    idle mosquitto_tcp $mqpid $mq_tcp
  done | tee "$out/idle.txt"
fi

# HTTPS vs HTTP publish: one namespace topic with a Queue subscription, 32 keep-alive
# connections, batches of 100 1 KiB CloudEvents, closed loop; the memory store, so the transport
# is what differs.
H="Authorization: Bearer bench-admin-key-0123456789"; B=http://127.0.0.1:$http
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench -d '{"properties":{}}' > /dev/null
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench/eventSubscriptions/s \
  -d '{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":{"eventTimeToLive":"PT1M"}}}}' > /dev/null
KEY=$(curl -s -XPOST -H "$H" $B/mgmt/namespaces/default/listKeys | python3 -c 'import sys,json;print(json.load(sys.stdin)["key1"])')
want publish && {
  for r in $(seq "$rounds"); do
    for scheme in http https; do
      port=$http; [ $scheme = https ] && port=$https
      extra=(); [ $scheme = https ] && extra=(--cafile "$ca")
      $lt http-publish --quiet --url $scheme://localhost:$port/namespaces/default --topic bench \
        --key "$KEY" --connections 32 --batch 100 --size 1024 --duration 5s "${extra[@]}" \
        > "$out/publish_$scheme.$r.txt" 2>&1
      echo "publish $scheme round $r: $(grep -E '^throughput' "$out/publish_$scheme.$r.txt")"
      # Drain what the run queued, so the next round starts from the same memory.
      curl -s -XDELETE -H "$H" $B/mgmt/namespaces/default/topics/bench/eventSubscriptions/s > /dev/null
      curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench/eventSubscriptions/s \
        -d '{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":{"eventTimeToLive":"PT1M"}}}}' > /dev/null
    done
  done
} | tee "$out/publish.txt"
grep -h "evgrid_tls_handshake" <(curl -s $B/metrics) | grep -v " 0$" > "$out/tls-metrics.txt" || true
echo "done: $out"
