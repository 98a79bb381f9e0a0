#!/bin/bash
# Needs: cargo build --release -p evgrid -p evgrid-loadtest.
# Usage: benches/sessions-restart.sh [SESSIONS] [WAVE]  (defaults 100000 and 15000)
# Persistent MQTT sessions on disk, then kill -9 and a restart timed to /readyz (issue 20,
# item 5). `evgrid-loadtest sub -V 4 -C false` connects WAVE clients at a time (each subscribes
# to devices/<n>/cmd at QoS 1 and disconnects after 2 s; the file-descriptor limit bounds a
# wave), until SESSIONS persistent sessions with one subscription each are recorded.
cd "$(dirname "$0")/.."
N=${1:-100000}; WAVE=${2:-15000}
BIN=target/release/evgrid; LT=target/release/evgrid-loadtest
DATA=${DATA:-/tmp/evgrid-sessions}; rm -rf $DATA; mkdir -p $DATA
H=http://127.0.0.1:18851
start() {
  EVGRID_MQTT_MAX_SESSIONS=$((N * 2)) RUST_LOG=warn $BIN --data-dir $DATA \
    --mqtt-bind 127.0.0.1:18850 --http-bind 127.0.0.1:18851 >> $DATA.log 2>&1 &
  PID=$!
}
metric() { curl -s $H/metrics | awk -v m="$1" '$1 == m {print $2}'; }
start
until curl -sf $H/readyz >/dev/null; do sleep 0.1; done
for ((s = 0; s < N; s += WAVE)); do
  c=$(( N - s < WAVE ? N - s : WAVE ))
  $LT sub --quiet -h 127.0.0.1 -p 18850 -V 4 -C false -q 1 -c $c -n $s -R 3000 \
    -t 'devices/%i/cmd' -d 2s > /dev/null 2>&1
done
sleep 2
echo "recorded: sessions=$(metric evgrid_mqtt_sessions) subscriptions=$(metric evgrid_mqtt_subscriptions) store=$(du -sh $DATA | cut -f1) rss=$(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$PID/status)"
kill -9 $PID; wait $PID 2>/dev/null
T0=$(date +%s.%N)
start
until curl -sf $H/readyz >/dev/null; do sleep 0.05; done
T1=$(date +%s.%N)
echo "restart after kill -9: ready after $(echo "$T1 - $T0" | bc) s, sessions=$(metric evgrid_mqtt_sessions) subscriptions=$(metric evgrid_mqtt_subscriptions) rss=$(awk '/VmRSS/ {printf "%.0f MB", $2/1024}' /proc/$PID/status)"
kill $PID; wait $PID 2>/dev/null
