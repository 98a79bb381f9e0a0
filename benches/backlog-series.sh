#!/bin/bash
# Needs: cargo build --release -p evgrid -p evgrid-loadtest.
# Usage: [BACKEND=redb|log] benches/backlog-series.sh SECONDS [BIN]  (BIN: the evgrid binary,
# default target/release/evgrid; BACKEND: store.backend, default redb)
# One run, data in $DATA (default /tmp/evgrid-backlog, removed first), ports 18091:
# 1. publish 1 KiB events in batches of 100 over 32 connections for SECONDS into one Queue
#    subscription nobody reads; print events/s, the backlog, and evgrid's RSS;
# 2. kill -9, start again, and time until /readyz answers 200; print RSS again;
# 3. drain from the cold backlog with 8 pull consumers for 10 s (receive + acknowledge).
cd "$(dirname "$0")/.."
SECS=${1:-10}; BIN=${2:-target/release/evgrid}
DATA=${DATA:-/tmp/evgrid-backlog}
rm -rf $DATA; mkdir -p $DATA
H="Authorization: Bearer bench-admin-key-0123456789"; B=http://127.0.0.1:18091
start() {
  EVGRID_STORE_BACKEND=${BACKEND:-redb} EVGRID_ADMIN_KEY=bench-admin-key-0123456789 RUST_LOG=warn $BIN --data-dir $DATA \
    --mqtt-bind 127.0.0.1:0 --http-bind 127.0.0.1:18091 >> $DATA.log 2>&1 &
  PID=$!
}
rss() { awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$PID/status; }
metric() { curl -s $B/metrics | awk -v m="$1" '$1 == m {print $2}'; }
start
until curl -sf $B/readyz >/dev/null; do sleep 0.1; done
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench -d '{"properties":{}}' >/dev/null
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench/eventSubscriptions/bench-sub -d '{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":{}}}}' > /dev/null
KEY=$(curl -s -XPOST -H "$H" $B/mgmt/namespaces/default/listKeys | python3 -c 'import sys,json;print(json.load(sys.stdin)["key1"])')
target/release/evgrid-loadtest http-publish --quiet --url $B/namespaces/default --topic bench --key "$KEY" --connections 32 --batch 100 --size 1024 --duration ${SECS}s --json /tmp/backlog-pub.json > /tmp/backlog-pub.txt 2>&1
P=$(grep -E "^throughput" /tmp/backlog-pub.txt | awk '{print $2}')
echo "publish=$P ev/s queued=$(metric evgrid_events_queued) in_memory=$(metric evgrid_backlog_memory_events) ev/$(metric evgrid_backlog_memory_bytes) B on_disk=$(metric evgrid_backlog_disk_events) rss=$(rss) store=$(du -sh $DATA | cut -f1)"
kill -9 $PID; wait $PID 2>/dev/null
T0=$(date +%s.%N)
start
until curl -sf $B/readyz >/dev/null; do sleep 0.05; done
T1=$(date +%s.%N)
echo "restart: ready after $(echo "$T1 - $T0" | bc) s, rss=$(rss), queued=$(metric evgrid_events_queued) on_disk=$(metric evgrid_backlog_disk_events)"
target/release/evgrid-loadtest pull --quiet --url $B/namespaces/default --topic bench --subscription bench-sub --key "$KEY" --consumers 8 --duration 10s > /tmp/backlog-pull.txt 2>&1
Q=$(grep -E "^throughput" /tmp/backlog-pull.txt | awk '{print $3}')
echo "pull from the cold backlog: $Q ev/s acknowledged, rss=$(rss)"
kill $PID; wait $PID 2>/dev/null
