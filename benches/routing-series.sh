#!/usr/bin/env bash
# The figures of MQTT routed into the event grid (benches/README.md, "MQTT ↔ Event Grid"):
# fan-in with routing on and off alternately (A B A B A B, a fresh evgrid each run), QoS 0 and 1,
# at a rate both keep up with and saturated; end-to-end latency MQTT → pull consumers; HTTP →
# MQTT beside basic-tier publish. Usage: benches/routing-series.sh [OUTDIR] [ROUNDS]
# Prints one line per run and a median per scenario; keeps every loadtest report in OUTDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-routing}
rounds=${2:-3}
mkdir -p "$out"
cargo build --release -p evgrid -p evgrid-loadtest
lt=target/release/evgrid-loadtest
admin=bench-admin-key-0123456789
mqtt_port=18860
http_port=18095
url=http://127.0.0.1:$http_port/namespaces/default

ev=""
start() {
  local data=$out/data
  rm -rf "$data"
  EVGRID_ADMIN_KEY=$admin EVGRID_MQTT_MAX_QUEUED_MESSAGES=10000 target/release/evgrid \
    --mqtt-bind 127.0.0.1:$mqtt_port --http-bind 127.0.0.1:$http_port --data-dir "$data" \
    >"$out/evgrid.log" 2>&1 &
  ev=$!
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$http_port/healthz" >/dev/null && return
    sleep 0.1
  done
  echo "evgrid did not start" >&2
  exit 1
}
stop() {
  kill "$ev" 2>/dev/null || true
  wait "$ev" 2>/dev/null || true
}
trap stop EXIT
metric() { curl -s "http://127.0.0.1:$http_port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$ev/stat"; }

# One fan-in run: routing on|off, QoS, rate (msgs/s), extra e2e flags. Prints
# "sent/s delivered/s p50_us p99_us routed_total evgrid_cpu_s".
# ONLY="fanin_q0_max e2e" runs just those parts (scenario names below, e2e, http_mqtt).
fanin() {
  local routing=$1 qos=$2 rate=$3 tag=$4
  shift 4
  # "max": closed loop, at most 10,000 messages published and not yet received.
  local load=(--rate "$rate")
  [ "$rate" = max ] && load=(--max-rate --outstanding 10000)
  start
  $lt e2e -h 127.0.0.1 -p $mqtt_port --url $url --admin-key $admin --setup --routing "$routing" \
    --publishers 100 --subscribers 1 --consumers 0 "${load[@]}" -q "$qos" -s 64 --duration 5s \
    "$@" >"$out/$tag.txt" 2>&1 || true
  local routed cpu_s
  routed=$(metric 'evgrid_mqtt_routed_total{outcome="routed"}')
  cpu_s=$(cpu)
  stop
  # The MQTT side's report (fanin) comes first: its throughput and e2e latency lines.
  awk -v routed="$routed" -v cpu="$cpu_s" '
    /^throughput/ && !t { for (i = 1; i <= NF; i++) { if ($i == "sent") s = $(i+1); if ($i == "received") r = $(i+1) } t = 1 }
    /^  e2e/ && !e { p50 = $3; p99 = $5; e = 1 }
    END { gsub("/s", "", s); gsub("/s", "", r); printf "%s %s %s %s %s %s\n", s, r, p50, p99, routed, cpu }' \
    "$out/$tag.txt"
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

summary=$out/summary.txt
: >"$summary"
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
scenario() {
  local name=$1 qos=$2 rate=$3
  want "$name" || return 0
  for r in $(seq "$rounds"); do
    for routing in off on; do
      local line
      line=$(fanin "$routing" "$qos" "$rate" "${name}_${routing}_$r")
      echo "$name routing=$routing round=$r: sent/s delivered/s p50_us p99_us routed cpu_s = $line"
      echo "$name $routing $line" >>"$summary"
    done
  done
  for routing in off on; do
    for col in 2 3 4 5 6 7; do
      awk -v n="$name" -v ro="$routing" -v c="$col" '$1 == n && $2 == ro {print $(c + 1)}' "$summary" |
        median | tr '\n' ' '
    done | awk -v n="$name" -v ro="$routing" '{printf "MEDIAN %s routing=%s: sent/s %s delivered/s %s p50_us %s p99_us %s routed %s cpu_s %s\n", n, ro, $1, $2, $3, $4, $5, $6}'
  done
}

echo "=== fan-in (100 publishers -> 1 subscriber, 64 B), routing into a topic with one Queue subscription"
scenario fanin_q0_100k 0 100000
scenario fanin_q1_100k 1 100000
scenario fanin_q0_max 0 2000000
scenario fanin_q1_max 1 300000
scenario fanin_q0_closed 0 max

if want e2e; then
echo "=== end-to-end latency MQTT -> 4 pull consumers, QoS 1, 50k msgs/s"
for r in $(seq "$rounds"); do
  start
  $lt e2e -h 127.0.0.1 -p $mqtt_port --url $url --admin-key $admin --setup --publishers 100 \
    --consumers 4 --rate 50000 -q 1 -s 64 --duration 5s >"$out/e2e_latency_$r.txt" 2>&1 || true
  stop
  grep -A12 '== evgrid-loadtest e2e' "$out/e2e_latency_$r.txt" | grep -E '^(throughput|accounting|  e2e)' || true
done

fi

if want http_mqtt; then
echo "=== HTTP -> MQTT (8 connections, one message per request, 1 subscriber) beside basic-tier publish (8 connections, one event per request)"
for r in $(seq "$rounds"); do
  start
  key=$(curl -s -X POST -H "Authorization: Bearer $admin" \
    "http://127.0.0.1:$http_port/mgmt/namespaces/default/listKeys" | sed 's/.*"key1":"\([^"]*\)".*/\1/')
  $lt http-mqtt -h 127.0.0.1 -p $mqtt_port --url $url --key "$key" --connections 8 \
    --subscribers 1 --max-rate -q 0 -s 64 --duration 5s >"$out/http_mqtt_$r.txt" 2>&1 || true
  curl -s -o /dev/null -X PUT -H "Authorization: Bearer $admin" \
    "http://127.0.0.1:$http_port/mgmt/topics/bench" -d '{"properties":{}}'
  tkey=$(curl -s -X POST -H "Authorization: Bearer $admin" \
    "http://127.0.0.1:$http_port/mgmt/topics/bench/listKeys" | sed 's/.*"key1":"\([^"]*\)".*/\1/')
  $lt http-publish --endpoint "http://127.0.0.1:$http_port/topics/bench/api/events" --key "$tkey" \
    --connections 8 --batch 1 --duration 5s >"$out/basic_publish_$r.txt" 2>&1 || true
  stop
  echo "round $r http-mqtt: $(grep -E '^throughput' "$out/http_mqtt_$r.txt" | tail -1)"
  echo "round $r basic publish: $(grep -E 'events/s|ev/s|throughput' "$out/basic_publish_$r.txt" | head -2 | tr '\n' ' ')"
done
fi
