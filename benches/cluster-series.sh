#!/usr/bin/env bash
# The cluster figures (benches/README.md, "Cluster"): MQTT fan-in on one evgrid node beside the
# same load published on one node of a cluster and received on another (3 nats-servers, two
# evgrid nodes), and beside publisher and subscriber on one node of the cluster; CPU per
# delivered message on each path (every process's user + system time over the messages
# received); failover after kill -9 of the NATS server under the subscriber's node and under the
# publisher's node (the longest gap between two messages at 500/s); fan-out to three
# subscribers on one node beside one subscriber on each of three nodes. A fresh set of processes
# per run; the scenarios alternate round by round. RATE (default 100000) is the publish rate.
# Usage: benches/cluster-series.sh [OUTDIR] [ROUNDS]   (NATS_SERVER: the nats-server binary)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-cluster}
rounds=${2:-3}
nats_bin=${NATS_SERVER:-target/sdk-venv/bin/nats-server}
"$nats_bin" --version >/dev/null || { echo "no nats-server at $nats_bin (set NATS_SERVER)" >&2; exit 1; }
mkdir -p "$out"
cargo build --release -p evgrid -p evgrid-loadtest
lt=target/release/evgrid-loadtest
rate=${RATE:-100000}

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  exit 1
}

nats_pids=()
start_nats() {
  nats_pids=()
  rm -rf "$out/js"
  for i in 1 2 3; do
    printf '%s\n' "server_name: n$i" "listen: 127.0.0.1:1942$i" \
      "jetstream { store_dir: \"$out/js/$i\", sync_interval: always }" \
      "cluster { name: bench, listen: 127.0.0.1:1962$i, routes: [nats-route://127.0.0.1:19621, nats-route://127.0.0.1:19622, nats-route://127.0.0.1:19623] }" \
      >"$out/n$i.conf"
    "$nats_bin" -c "$out/n$i.conf" >"$out/n$i.log" 2>&1 &
    pids+=($!)
    nats_pids+=($!)
  done
  for i in 1 2 3; do wait_port 1942$i; done
  sleep 2 # routes and the JetStream meta leader
}

# evgrid NAME MQTT_PORT HTTP_PORT [NATS_URL]
declare -A ev
evgrid() {
  local data=$out/data-$1
  rm -rf "$data"
  local env=()
  [ -n "${4:-}" ] && env=(EVGRID_CLUSTER_URLS="$4")
  env "${env[@]}" target/release/evgrid --mqtt-bind 127.0.0.1:$2 --http-bind 127.0.0.1:$3 \
    --data-dir "$data" >"$out/evgrid-$1.log" 2>&1 &
  pids+=($!)
  ev[$1]=$!
  wait_port "$2"
}

# spread TAG PUB_PORT SUB_PORT...: one subscriber on bench/# per SUB_PORT, 10 publishers on
# PUB_PORT at $rate msgs/s as in run. Prints "delivered/s (all subscribers) cpu_us_per_delivery".
spread() {
  local tag=$1 pp=$2
  shift 2
  local before=0 p subs=() i=0
  for p in "${pids[@]}"; do before=$((before + $(ticks "$p"))); done
  for sp in "$@"; do
    $lt sub -h 127.0.0.1 -p "$sp" -c 1 -t 'bench/#' -d 14s \
      >"$out/$tag-sub$i.txt" 2>&1 &
    subs+=($!)
    i=$((i + 1))
  done
  sleep 1
  $lt pub -h 127.0.0.1 -p "$pp" -c 10 -t 'bench/%i' --rate "$rate" -s 64 -q 0 -d 10s \
    >"$out/$tag-pub.txt" 2>&1 || true
  for p in "${subs[@]}"; do wait "$p" || true; done
  local after=0
  for p in "${pids[@]}"; do after=$((after + $(ticks "$p"))); done
  local got
  got=$(cat "$out/$tag"-sub*.txt | awk '$1 == "messages" {for (i = 1; i < NF; i++) if ($i == "received") s += $(i + 1)} END {print s + 0}')
  awk -v got="$got" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.0f %.2f\n", got / 10, (got > 0 ? t / hz * 1e6 / got : 0)}'
}

# run TAG SUB_PORT PUB_PORT: 10 publishers at $rate msgs/s QoS 0, 64-byte payloads, for 10 s,
# one subscriber on bench/#. Prints "delivered/s cpu_us_per_msg e2e_p50_us e2e_p99_us".
run() {
  local tag=$1 sp=$2 pp=$3
  local before=0 p
  for p in "${pids[@]}"; do before=$((before + $(ticks "$p"))); done
  $lt sub -h 127.0.0.1 -p "$sp" -c 1 -t 'bench/#' -d 14s >"$out/$tag-sub.txt" 2>&1 &
  local sub=$!
  sleep 1
  $lt pub -h 127.0.0.1 -p "$pp" -c 10 -t 'bench/%i' --rate "$rate" -s 64 -q 0 -d 10s \
    >"$out/$tag-pub.txt" 2>&1 || true
  wait "$sub" || true
  local after=0
  for p in "${pids[@]}"; do after=$((after + $(ticks "$p"))); done
  local got e2e
  got=$(awk '$1 == "messages" {for (i = 1; i < NF; i++) if ($i == "received") {print $(i + 1); exit}}' \
    "$out/$tag-sub.txt")
  e2e=$(awk '$1 == "e2e" {print $3, $5; exit}' "$out/$tag-sub.txt")
  awk -v got="${got:-0}" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v e2e="${e2e:-0 0}" \
    'BEGIN {printf "%.0f %.2f %s\n", got / 10, (got > 0 ? t / hz * 1e6 / got : 0), e2e}'
}

# failover TAG VICTIM(1|2): the subscriber on node A (NATS server 1), the publisher on node B
# (server 2) at 500/s; kill -9 of server VICTIM after 4 s. Prints the longest gap between two
# messages in ms, and how many of the 6,000 never arrived.
failover() {
  local tag=$1 victim=$2
  timeout 16 mosquitto_sub -h 127.0.0.1 -p 19883 -t 'fo/#' -F '%U' >"$out/$tag.times" 2>/dev/null &
  local sub=$!
  sleep 1
  $lt pub -h 127.0.0.1 -p 19884 -c 1 -t fo/x --rate 500 -s 64 -q 0 -d 12s >/dev/null 2>&1 &
  local pub=$!
  sleep 4
  kill -9 "${nats_pids[$((victim - 1))]}"
  wait "$pub" || true
  wait "$sub" || true
  # 6,000 published; what did not arrive was lost in the failover (core NATS: at most once).
  sort -n "$out/$tag.times" | awk 'NR > 1 && $1 - prev > gap {gap = $1 - prev} {prev = $1}
    END {printf "%.0f %d\n", gap * 1000, 6000 - NR}'
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

declare -A res
for r in $(seq "$rounds"); do
  evgrid single 19883 19880
  line=$(run "single-$r" 19883 19883); echo "single        round $r: $line"; res[single]+="$line"$'\n'
  stop_all

  start_nats
  evgrid a 19883 19880 nats://127.0.0.1:19421
  evgrid b 19884 19881 nats://127.0.0.1:19422
  line=$(run "across-$r" 19883 19884); echo "across nodes  round $r: $line"; res[across]+="$line"$'\n'
  line=$(run "local-$r" 19883 19883); echo "cluster local round $r: $line"; res[local]+="$line"$'\n'
  gap=$(failover "fo-sub-$r" 1); echo "failover, subscriber's NATS server killed, round $r: gap, lost: $gap"; res[fo_sub]+="$gap"$'\n'
  stop_all

  # Fan-out to three subscribers: on one node, then one on each of three nodes.
  evgrid single 19883 19880
  line=$(spread "fan1-$r" 19883 19883 19883 19883); echo "fan-out x3, one node   round $r: $line"; res[fan1]+="$line"$'\n'
  stop_all
  start_nats
  evgrid a 19883 19880 nats://127.0.0.1:19421
  evgrid b 19884 19881 nats://127.0.0.1:19422
  evgrid c 19885 19882 nats://127.0.0.1:19423
  line=$(spread "fan3-$r" 19883 19883 19884 19885); echo "fan-out x3, three nodes round $r: $line"; res[fan3]+="$line"$'\n'
  stop_all

  start_nats
  evgrid a 19883 19880 nats://127.0.0.1:19421
  evgrid b 19884 19881 nats://127.0.0.1:19422
  gap=$(failover "fo-pub-$r" 2); echo "failover, publisher's NATS server killed, round $r: gap, lost: $gap"; res[fo_pub]+="$gap"$'\n'
  stop_all
done
echo "medians of $rounds (delivered msgs/s, CPU µs per delivered message over every server process, e2e p50 and p99 µs):"
for k in single across local; do
  col() { printf '%s' "${res[$k]}" | awk -v c="$1" 'NF {print $c}' | median; }
  echo "  $k: $(col 1) msgs/s, $(col 2) µs/msg, p50 $(col 3) µs, p99 $(col 4) µs"
done
for k in fan1 fan3; do
  col() { printf '%s' "${res[$k]}" | awk -v c="$1" 'NF {print $c}' | median; }
  echo "  $k: $(col 1) deliveries/s, $(col 2) µs per delivery"
done
for k in fo_sub fo_pub; do
  g=$(printf '%s' "${res[$k]}" | awk 'NF {print $1}' | median)
  l=$(printf '%s' "${res[$k]}" | awk 'NF {print $2}' | median)
  echo "  failover ($k: the NATS server under the ${k#fo_} node killed): longest gap $g ms, $l of 6000 lost"
done
