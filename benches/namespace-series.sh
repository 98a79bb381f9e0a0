#!/bin/bash
# Needs: cargo build --release -p evgrid -p evgrid-loadtest. Usage: benches/namespace-series.sh closed|RATE
# (W=2 for two HTTP workers). Ports 18090; data in $DATA (default /tmp/evgrid-bench), removed first.
# One run: fresh store; publish MODE ("closed" or rate) 10 s; then pull-drain 8 consumers 10 s.
cd "$(dirname "$0")/.."
RATE=$1
rm -rf ${DATA:-/tmp/evgrid-bench}; mkdir -p ${DATA:-/tmp/evgrid-bench}
EVGRID_HTTP_WORKERS=${W:-1} EVGRID_ADMIN_KEY=bench-admin-key-0123456789 RUST_LOG=warn target/release/evgrid --data-dir ${DATA:-/tmp/evgrid-bench} --mqtt-bind 127.0.0.1:0 --http-bind 127.0.0.1:18090 > ${DATA:-/tmp/evgrid-bench}.log 2>&1 &
PID=$!
sleep 1
H="Authorization: Bearer bench-admin-key-0123456789"; B=http://127.0.0.1:18090
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench -d '{"properties":{}}' >/dev/null
curl -s -XPUT -H "$H" $B/mgmt/namespaces/default/topics/bench/eventSubscriptions/bench-sub -d '{"properties":{"deliveryConfiguration":{"deliveryMode":"Queue","queue":{}}}}' > /dev/null
KEY=$(curl -s -XPOST -H "$H" $B/mgmt/namespaces/default/listKeys | python3 -c 'import sys,json;print(json.load(sys.stdin)["key1"])')
EXTRA=""; [ "$RATE" != closed ] && EXTRA="--rate $RATE"
target/release/evgrid-loadtest http-publish --quiet --url $B/namespaces/default --topic bench --key "$KEY" --connections 32 --batch 100 --size 1024 --duration 10s $EXTRA --json /tmp/pub.json > /tmp/pub.txt 2>&1
P=$(grep -E "^throughput" /tmp/pub.txt | awk '{print $2}'); L=$(grep -E "^  publish" /tmp/pub.txt | awk '{print $3/1000, $5/1000}')
C=$(curl -s $B/metrics | python3 -c '
import sys
b=[];n=0
for l in sys.stdin:
    if l.startswith("evgrid_store_commit_seconds_bucket"):
        le=l.split("le=\"")[1].split("\"")[0]; v=int(l.split()[-1]); b.append((le,v))
    if l.startswith("evgrid_store_commit_seconds_count"): n=int(l.split()[-1])
p50=next(le for le,v in b if v>=0.5*n); p99=next(le for le,v in b if v>=0.99*n)
print(f"commits={n} p50<={float(p50)*1000:g}ms p99<={float(p99)*1000:g}ms")')
if [ "$RATE" = closed ]; then
target/release/evgrid-loadtest pull --quiet --url $B/namespaces/default --topic bench --subscription bench-sub --key "$KEY" --consumers 8 --duration 10s > /tmp/pull.txt 2>&1
Q=$(grep -E "^throughput" /tmp/pull.txt | awk '{print $3}')
else Q=-; fi
echo "publish=$P ev/s  p50/p99(ms)=$L  $C  pull_acked=$Q ev/s"
kill $PID; wait $PID 2>/dev/null
