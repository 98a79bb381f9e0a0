#!/bin/bash
# Needs: cargo build --release -p evgrid -p evgrid-loadtest.
# Usage: benches/durable-mqtt.sh [ROUNDS]  (default 3)
# Two evgrid release builds side by side: A with mqtt.persistence = durable (the default), B with
# memory; `evgrid-loadtest compare` alternates them round by round, MQTT 3.1.1, 128-byte
# payloads, persistent sessions (-C false):
# 1. QoS 1 fan-in, 100 publishers, closed loop (--max-rate -F 32 --outstanding 10000);
# 2. QoS 1 fan-out, 1,000 subscribers, 1,000 msgs/s;
# 3. QoS 1 publishes (10 publishers, 5,000 msgs/s, 3 s a round: the session queue's bounds
#    are not reached) to one persistent session that is offline:
#    in durable mode each PUBACK waits for the message's journal commit.
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BIN=target/release/evgrid; LT=target/release/evgrid-loadtest
A=/tmp/evgrid-durable-a; B=/tmp/evgrid-durable-b
rm -rf $A $B; mkdir -p $A $B
start() { # DIR MQTTPORT HTTPPORT PERSISTENCE
  EVGRID_MQTT_PERSISTENCE=$4 RUST_LOG=warn \
    $BIN --data-dir $1 --mqtt-bind 127.0.0.1:$2 --http-bind 127.0.0.1:$3 >> $1.log 2>&1 &
  echo $!
}
PA=$(start $A 18831 18841 durable); PB=$(start $B 18832 18842 memory)
until curl -sf http://127.0.0.1:18841/readyz >/dev/null && curl -sf http://127.0.0.1:18842/readyz >/dev/null; do sleep 0.1; done
common="--a 127.0.0.1:18831 --b 127.0.0.1:18832 --a-pid $PA --b-pid $PB --rounds $ROUNDS -V 4 -q 1 -s 128 -C false"
echo "== fan-in"
$LT compare $common --scenario fanin --publishers 100 --max-rate -F 32 --outstanding 10000 -d 5s 2>&1 | tail -8
echo "== fan-out"
$LT compare $common --scenario fanout --subscribers 1000 --rate 1000 -d 5s 2>&1 | tail -8
echo "== QoS 1 to an offline persistent session"
for p in 18831 18832; do
  $LT sub --quiet -h 127.0.0.1 -p $p -V 4 -C false -q 1 -c 1 -n 900000 -t 'off/#' -d 1s > /dev/null 2>&1
done
$LT compare $common --scenario pub-qos1 -c 10 --rate 5000 -t off/x -d 3s 2>&1 | tail -8
echo "A (durable) store: $(du -sh $A | cut -f1)"
kill $PA $PB; wait $PA $PB 2>/dev/null
