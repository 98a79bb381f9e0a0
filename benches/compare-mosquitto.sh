#!/usr/bin/env bash
# Whole-system comparison: evgrid vs mosquitto on this machine, same limits, alternating rounds.
# Usage: benches/compare-mosquitto.sh [OUTDIR]   (needs: apt-get install mosquitto)
# Each scenario runs `evgrid-loadtest compare` (A B A B A B, 5 s each) and keeps its JSON report.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-compare}
mkdir -p "$out"
cargo build --release -p evgrid -p evgrid-loadtest
lt=target/release/evgrid-loadtest
ev_port=18830; mq_port=18831
EVGRID_MQTT_MAX_QUEUED_MESSAGES=10000 target/release/evgrid --mqtt-bind 127.0.0.1:$ev_port \
  --http-bind 127.0.0.1:18080 --data-dir "$out/data" > "$out/evgrid.log" 2>&1 &
ev=$!
cat > "$out/mosquitto.conf" <<CONF
listener $mq_port 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 10000
max_inflight_messages 1000
CONF
/usr/sbin/mosquitto -c "$out/mosquitto.conf" > "$out/mosquitto.log" 2>&1 &
mq=$!
trap 'kill $ev $mq 2>/dev/null' EXIT
sleep 1
run() {
  local name=$1; shift
  echo "=== $name"
  # Each round waits for both brokers to go idle: a saturated mosquitto works on for seconds
  # after its round, on the cores the next evgrid round needs.
  $lt compare --a 127.0.0.1:$ev_port --b 127.0.0.1:$mq_port --a-pid $ev --b-pid $mq --rounds 3 \
    --json "$out/$name.json" "$@"
}
# Offered rates above what either broker delivers on a 2-core machine, so the ratios compare
# saturated throughput (the generator shares the cores: see benches/README.md).
run fanin_q0    --scenario fanin  --publishers 100  --rate 2000000 -q 0 -s 64 --duration 5s
run fanout_q0   --scenario fanout --subscribers 1000 --rate 3000  -q 0 -s 64 --duration 5s
run p2p_q0      --scenario p2p    --pairs 100       --rate 600000 -q 0 -s 64 --duration 5s
run fanin_q1    --scenario fanin  --publishers 100  --rate 100000 -q 1 -s 64 --duration 5s
run fanin_q1_300k --scenario fanin --publishers 100 --rate 300000 -q 1 -s 64 --duration 5s
run latency_20k --scenario fanin  --publishers 20   --rate 20000  -q 0 -s 64 --duration 5s
