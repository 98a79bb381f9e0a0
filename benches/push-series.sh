#!/bin/bash
# Basic-tier figures, one run: hello-world ceiling, durable publish, push delivery batched and not.
# Needs: cargo build --release -p evgrid -p evgrid-loadtest && cargo bench --no-run --bench hello_world
# Usage: benches/push-series.sh [N_BATCHED] [N_SINGLE]. Ports 18090-18092; data in $DATA
# (default /tmp/evgrid-push-bench), removed first. 1 KiB events, batches of 100, 32 connections.
cd "$(dirname "$0")/.."
NB=${1:-500000}; NS=${2:-100000}
DATA=${DATA:-/tmp/evgrid-push-bench}
LT=target/release/evgrid-loadtest
HELLO=$(ls -t target/release/deps/hello_world-* 2>/dev/null | grep -v '\.d$' | head -1)
[ -x "$HELLO" ] || { echo "build the hello_world bench first (cargo bench --no-run --bench hello_world)"; exit 2; }
rm -rf "$DATA"; mkdir -p "$DATA"
EVGRID_ADMIN_KEY=bench-admin-key-0123456789 RUST_LOG=warn target/release/evgrid --data-dir "$DATA" \
  --mqtt-bind 127.0.0.1:0 --http-bind 127.0.0.1:18090 > "$DATA.log" 2>&1 &
EVG=$!
"$HELLO" --serve 127.0.0.1:18091 > /dev/null 2>&1 &
HW=$!
sleep 1
H="Authorization: Bearer bench-admin-key-0123456789"; B=http://127.0.0.1:18090
ev_s() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['throughput'][sys.argv[2]]))" "$@"; }
pub() { # endpoint key limit json
  $LT http-publish --quiet --endpoint "$1" --key "$2" --schema eventgrid --connections 32 --batch 100 \
    --size 1024 --limit "$3" --duration 60s --json "$4" > /dev/null 2>&1
}
# 1. The ceiling: the same requests to hello-world actix-web.
pub http://127.0.0.1:18091/api/events any "$NB" /tmp/hello.json
HELLO_RPS=$(ev_s /tmp/hello.json requests_per_s)
# 2./3. evgrid: a topic with one webhook subscription each, batched (100) and unbatched.
for MODE in batched single; do
  N=$NB; EXTRA=',"maxEventsPerBatch":100'
  [ $MODE = single ] && { N=$NS; EXTRA=''; }
  $LT webhook-sink --quiet --bind 127.0.0.1:18092 --expect "$N" --idle 2s --duration 120s --json /tmp/sink-$MODE.json > /dev/null 2>&1 &
  SINK=$!
  sleep 0.5
  curl -s -XPUT -H "$H" $B/mgmt/topics/$MODE -d '{}' > /dev/null
  curl -s -XPUT -H "$H" $B/mgmt/topics/$MODE/eventSubscriptions/sink -d "{\"properties\":{\"destination\":{\"endpointType\":\"WebHook\",\"properties\":{\"endpointUrl\":\"http://127.0.0.1:18092/hook\"$EXTRA}}}}" > /dev/null
  KEY=$(curl -s -XPOST -H "$H" $B/mgmt/topics/$MODE/listKeys | python3 -c 'import sys,json;print(json.load(sys.stdin)["key1"])')
  pub $B/topics/$MODE/api/events "$KEY" "$N" /tmp/pub-$MODE.json
  wait $SINK
  eval "PUB_$MODE=$(ev_s /tmp/pub-$MODE.json events_per_s)"
  eval "PUSH_$MODE=$(ev_s /tmp/sink-$MODE.json events_per_s)"
  eval "RPS_$MODE=$(ev_s /tmp/pub-$MODE.json requests_per_s)"
  python3 -c "import json; s=json.load(open('/tmp/sink-$MODE.json')); e=s['events']; print('  $MODE: accepted', e['accepted'], 'lost', e['lost'], 'dup', e['duplicated'], 'e2e p50/p99 ms', s['latency_us']['e2e']['p50_us']/1000, s['latency_us']['e2e']['p99_us']/1000)"
done
echo "hello_rps=$HELLO_RPS publish_batched=${PUB_batched}ev/s (${RPS_batched} req/s) push_batched=${PUSH_batched}ev/s publish_single=${PUB_single}ev/s push_single=${PUSH_single}ev/s"
kill $EVG $HW; wait $EVG $HW 2>/dev/null
