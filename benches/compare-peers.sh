#!/usr/bin/env bash
# evgrid against both peers the issue names, side by side on this machine: mosquitto (apt) and
# rumqttd 0.20, the fastest Rust broker (installed here with `cargo install` into
# target/peers: without --locked, so its dependencies resolve to the newest compatible versions
# this toolchain builds). MQTT 3.1.1 (p2p: MQTT 5), 128-byte payloads, `evgrid-loadtest compare` alternating
# evgrid and one peer round by round (A B A B ..., medians of ROUNDS), a pair per peer.
#
# Scenarios (benches/README.md, "Three brokers"):
#   fanin_q0     100 publishers → 1 subscriber, QoS 0, 2M msgs/s offered (more than any delivers)
#   p2p          100 pairs, 600k msgs/s offered
#   fanin_q1     100 publishers with 32 QoS 1 messages in flight each, closed loop (--max-rate,
#                at most 10,000 published and not yet received: --outstanding) → 1 QoS 1
#                subscriber: messages/s received, and loss (acknowledged, never received)
#   fanout       1 publisher → 1,000 subscribers, 3,000 msgs/s offered (3M deliveries/s)
#   fanout_max   the same at 10,000 msgs/s offered (10M deliveries/s: more than any delivers)
#   latency_20k  100 publishers → 1 subscriber at a fixed 20,000 msgs/s: p50/p99/p999
# Limits: evgrid with its defaults; mosquitto with max_queued_messages 100000 and
# max_inflight_messages 1000 (evgrid's defaults); rumqttd with its sample configuration's limits
# (max_inflight_count 100 per connection, 100 MB segments) and a payload limit that fits.
#
# Usage: benches/compare-peers.sh [OUTDIR] [ROUNDS]   (needs: apt-get install mosquitto; cargo)
# Env: ONLY="fanin_q0 fanin_q1 ..." runs just those; PEERS="mosquitto rumqttd" (default both).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-peers}
rounds=${2:-3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cargo build --release -p evgrid -p evgrid-loadtest
lt=target/release/evgrid-loadtest
peers=${PEERS:-mosquitto rumqttd}
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

. benches/peers.sh
[[ " $peers " == *" rumqttd "* ]] && install_rumqttd

ev_port=18930; mq_port=18931; rq_port=18932; rq5_port=18933
rm -rf "$out/data"
target/release/evgrid --mqtt-bind 127.0.0.1:$ev_port --http-bind 127.0.0.1:18980 \
  --data-dir "$out/data" > "$out/evgrid.log" 2>&1 &
ev=$!
pids=($ev)
mosquitto_conf "$out/mosquitto.conf" $mq_port
rumqttd_conf "$out/rumqttd.toml" 10010 $rq_port $rq5_port
declare -A port pid
port[mosquitto]=$mq_port; port[rumqttd]=$rq_port
for p in $peers; do
  case $p in
    mosquitto) /usr/sbin/mosquitto -c "$out/mosquitto.conf" > "$out/mosquitto.log" 2>&1 & ;;
    rumqttd) RUST_LOG=warn $rumqttd -c "$out/rumqttd.toml" > "$out/rumqttd.log" 2>&1 & ;;
    *) echo "unknown peer $p"; exit 2 ;;
  esac
  pid[$p]=$!
  pids+=(${pid[$p]})
done
trap 'kill ${pids[*]} 2>/dev/null || true' EXIT
sleep 1
for _ in $(seq 100); do curl -sf http://127.0.0.1:18980/metrics > /dev/null && break; sleep 0.1; done
curl -sf http://127.0.0.1:18980/metrics > /dev/null || { echo "evgrid did not start: $(tail -2 "$out/evgrid.log")"; exit 1; }

# run NAME VERSION ARGS...: MQTT 3.1.1 (4) unless the scenario needs 5 (p2p: response topic and
# correlation data; rumqttd serves MQTT 5 on a listener of its own).
run() {
  local name=$1 v=$2; shift 2
  want "$name" || return 0
  for p in $peers; do
    local b=${port[$p]}
    [ "$p" = rumqttd ] && [ "$v" = 5 ] && b=$rq5_port
    echo "=== $name: evgrid vs $p (MQTT $v)"
    $lt compare --a 127.0.0.1:$ev_port --b 127.0.0.1:$b --a-pid $ev --b-pid ${pid[$p]} \
      --rounds "$rounds" --json "$out/$name.$p.json" -V "$v" -s 128 "$@" | tee "$out/$name.$p.txt"
  done
}
run fanin_q0 4    --scenario fanin  --publishers 100  --rate 2000000 -q 0 --duration 5s
run p2p 5         --scenario p2p    --pairs 100       --rate 600000  -q 0 --duration 5s
run fanin_q1 4    --scenario fanin  --publishers 100  --max-rate -F 32 --outstanding 10000 -q 1 --duration 5s
run fanout 4      --scenario fanout --subscribers 1000 --rate 3000   -q 0 --duration 5s
run fanout_max 4  --scenario fanout --subscribers 1000 --rate 10000  -q 0 --duration 5s
run latency_20k 4 --scenario fanin  --publishers 100  --rate 20000   -q 0 --duration 5s
echo "done: $out"
