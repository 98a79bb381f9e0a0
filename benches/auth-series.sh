#!/usr/bin/env bash
# Identity figures (issue 18), evgrid beside mosquitto in the same run:
#
#  connect  CONNECTs per second by authentication method, `evgrid-loadtest compare` alternating
#           evgrid and mosquitto round by round (A B A B ..., medians):
#             anonymous    plain TCP, no credentials (both brokers allow anonymous clients there);
#             password     CONNS clients, each its own user bench-<i> (loadtest `-u 'bench-%i'`):
#                          evgrid: one registered client per user with a password (evgrid's
#                          salted slow hash), created through the management API; mosquitto: a
#                          password file with the same users (`mosquitto_passwd -U`);
#             tls          TLS without a client certificate (the baseline of `certificate`);
#             certificate  TLS with the dev client certificate: evgrid registers it by thumbprint
#                          (`ThumbprintMatch`), mosquitto requires it (`require_certificate`,
#                          `use_identity_as_username`). All these connections share one
#                          authentication name, which evgrid allows at most 100 sessions
#                          (`maximumClientSessionsPerAuthenticationName`), so CERT_CONNS <= 100.
#           A wrong password is checked to be refused by both brokers first (a broker that ignored
#           passwords would otherwise be measured).
#  fanin    fan-in throughput (PUBS password-authenticated publishers → 1 subscriber, QoS 0, 64 B,
#           saturating rate) without and with a realistic authorization policy: the same PUBS+1
#           registered clients with attributes either way; `mqtt.authorization = "off"` against
#           `"bindings"` with 10 client groups (by attribute), 10 topic spaces of 3 templates
#           (`${client.authenticationName}`, `${client.attributes.group}`) and 20 permission
#           bindings. A fresh evgrid per run, the two alternating (off policy off policy ...).
#  memory   VmRSS per connected, authenticated idle client: MEM_CONNS password clients on a fresh
#           evgrid (clients registered before the baseline is read) against MEM_CONNS anonymous
#           ones on a fresh evgrid, and mosquitto with the password file (benches/idle-series.sh
#           does the same without authentication).
#
# Usage: benches/auth-series.sh [OUTDIR] [ROUNDS]   (needs: apt-get install mosquitto; curl)
# Env: ONLY="connect fanin memory" runs just those parts; CONNS (2000), CERT_CONNS (100),
#      PUBS (1000), MEM_CONNS (2000); PROFILE=debug runs debug builds (to try the script);
#      NO_REGISTRY=1 skips every management call and evgrid's password check (to try the script
#      on a build without the identity resources: evgrid's figures are then unauthenticated).
# Release builds; generator and servers share the cores. Results: OUTDIR/*.txt and *.json.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench-auth}
rounds=${2:-3}
conns=${CONNS:-2000}
cert_conns=${CERT_CONNS:-100}
pubs=${PUBS:-1000}
mem_conns=${MEM_CONNS:-2000}
profile=${PROFILE:-release}
rm -rf "$out"; mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ "$profile" = release ]; then
  cargo build --release -p evgrid -p evgrid-loadtest
else
  cargo build -p evgrid -p evgrid-loadtest
fi
ev=target/$profile/evgrid
lt=target/$profile/evgrid-loadtest
ADMIN=bench-admin-key-0123456789
PW=bench-password-0123
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

$ev cert dev --out "$out/certs" --client-name bench-cert > /dev/null
# mosquitto started as root drops to its own user, which must read the (scratch) key and files.
chmod 644 "$out/certs/server.key" "$out/certs/client.key"
ca="$out/certs/ca.pem"
thumb=$(openssl x509 -in "$out/certs/client.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g')

# Ports: evgrid TCP/TLS/HTTP, mosquitto anonymous/password/TLS/certificate.
ev_tcp=18850; ev_tls=18851; http=18852; mq_anon=18853; mq_pw=18854; mq_tls=18855; mq_cert=18856
B=http://127.0.0.1:$http

# evgrid (memory store: the figures are about CONNECT and PUBLISH, not the disk). Extra
# EVGRID_* settings as arguments (NAME=VALUE). Sets $evpid.
start_evgrid() {
  rm -rf "$out/data"
  # Without the identity resources there is no mqtt.authorization setting either.
  [ -n "${NO_REGISTRY:-}" ] && set -- $(printf '%s\n' "$@" | grep -v '^EVGRID_MQTT_AUTHORIZATION=')
  env EVGRID_ADMIN_KEY=$ADMIN EVGRID_STORE_BACKEND=memory RUST_LOG=warn \
    EVGRID_MQTT_MAX_QUEUED_MESSAGES=10000 \
    EVGRID_MQTT_TLS_BIND=127.0.0.1:$ev_tls EVGRID_MQTT_TLS_CERT_FILE="$out/certs/server.pem" \
    EVGRID_MQTT_TLS_KEY_FILE="$out/certs/server.key" EVGRID_MQTT_TLS_CLIENT_AUTH=optional \
    EVGRID_MQTT_TLS_CA_FILE="$ca" "$@" \
    $ev --mqtt-bind 127.0.0.1:$ev_tcp --http-bind 127.0.0.1:$http --data-dir "$out/data" \
    >> "$out/evgrid.log" 2>&1 &
  evpid=$!
  for _ in $(seq 100); do curl -sf "$B/metrics" > /dev/null && return 0; sleep 0.1; done
  echo "evgrid did not start: $(tail -3 "$out/evgrid.log")"; exit 1
}
stop() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.1; done; }

api() { # METHOD PATH JSON → fails on an HTTP error
  [ -n "${NO_REGISTRY:-}" ] && return 0
  local code body="$out/api.$BASHPID"
  code=$(curl -s -o "$body" -w '%{http_code}' -X "$1" -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' "$B/mgmt/namespaces/default$2" -d "$3")
  case $code in
    2??) rm -f "$body" ;;
    *) echo "management API: $1 $2: $code $(cat "$body")" >&2; rm -f "$body"; return 1 ;;
  esac
}
reg_one() { # i: client bench-<i> with the password, attribute group=g<i mod 10>
  api PUT "/clients/bench-$1" "{\"properties\":{\"authenticationName\":\"bench-$1\",\"password\":\"$PW\",\"attributes\":{\"group\":\"g$(( $1 % 10 ))\"}}}"
}
export -f api reg_one; export ADMIN B PW out

# Registers clients bench-FROM..bench-TO with the password (hashed at PUT: 4 in parallel).
register() {
  api PUT "" '{"properties":{"topicSpacesConfiguration":{"state":"Enabled","maximumClientSessionsPerAuthenticationName":100}}}'
  seq "$1" "$2" | xargs -P 4 -n 1 bash -c 'reg_one "$0"'
}

# mosquitto: an anonymous listener, a password listener (the same users), TLS without and with a
# required client certificate, as benches/tls-series.sh configures it otherwise.
for i in $(seq 0 $(( (conns > mem_conns ? conns : mem_conns) - 1 ))); do echo "bench-$i:$PW"; done \
  > "$out/mosquitto.passwd"
mosquitto_passwd -U "$out/mosquitto.passwd"
chmod 644 "$out/mosquitto.passwd"
cat > "$out/mosquitto.conf" <<CONF
per_listener_settings true
set_tcp_nodelay true
max_queued_messages 10000
max_inflight_messages 1000
listener $mq_anon 127.0.0.1
allow_anonymous true
listener $mq_pw 127.0.0.1
allow_anonymous false
password_file $out/mosquitto.passwd
listener $mq_tls 127.0.0.1
allow_anonymous true
cafile $ca
certfile $out/certs/server.pem
keyfile $out/certs/server.key
listener $mq_cert 127.0.0.1
allow_anonymous false
cafile $ca
certfile $out/certs/server.pem
keyfile $out/certs/server.key
require_certificate true
use_identity_as_username true
CONF
start_mosquitto() {
  /usr/sbin/mosquitto -c "$out/mosquitto.conf" >> "$out/mosquitto.log" 2>&1 &
  mqpid=$!
  sleep 0.5
}
evpid=; mqpid=
trap 'kill $evpid $mqpid 2>/dev/null || true' EXIT

# --- connect ---------------------------------------------------------------------------------
if want connect; then
  start_evgrid
  start_mosquitto
  register 0 $(( conns - 1 ))
  api PUT /clients/bench-cert "{\"properties\":{\"authenticationName\":\"bench-cert\",
    \"clientCertificateAuthentication\":{\"validationScheme\":\"ThumbprintMatch\",\"allowedThumbprints\":[\"$thumb\"]}}}"
  # Both brokers must refuse a wrong password and accept the right one.
  for port in $([ -z "${NO_REGISTRY:-}" ] && echo $ev_tcp) $mq_pw; do
    if mosquitto_pub -h 127.0.0.1 -p $port -u bench-1 -P wrong -t sanity -m x 2>/dev/null; then
      echo "port $port accepted a wrong password: not measuring an authenticating broker"; exit 1
    fi
    mosquitto_pub -h 127.0.0.1 -p $port -u bench-1 -P "$PW" -t sanity -m x
  done
  mosquitto_pub -h 127.0.0.1 -p $ev_tls --cafile "$ca" --cert "$out/certs/client.pem" \
    --key "$out/certs/client.key" -t sanity -m x
  mosquitto_pub -h 127.0.0.1 -p $mq_cert --cafile "$ca" --cert "$out/certs/client.pem" \
    --key "$out/certs/client.key" -t sanity -m x
  mqtt() {
    local name=$1 a=$2 b=$3; shift 3
    echo "=== $name"
    $lt compare --a 127.0.0.1:$a --b 127.0.0.1:$b --a-pid $evpid --b-pid $mqpid \
      --rounds "$rounds" --json "$out/$name.json" "$@" | tee "$out/$name.txt"
    # Connects per second: every CONNECT goes out within N/R s (-R 100000), so a run's rate is
    # the CONNACKs it got over that spread plus the slowest CONNACK.
    python3 - "$out/$name.json" "$name" <<'PY' | tee -a "$out/$name.txt" "$out/connect.txt"
import json, statistics, sys
j = json.load(open(sys.argv[1]))
rates = {"A": [], "B": []}
for run in j["runs"]:
    r = run["report"]
    c = r["connections"]
    span = c["attempted"] / 100000 + r["latency_us"]["connack"]["max_us"] / 1e6
    rates[run["broker"]].append(c["succeeded"] / span if span > 0 else 0)
med = {k: statistics.median(v) if v else 0 for k, v in rates.items()}
print(f"{sys.argv[2]}: evgrid {med['A']:,.0f} connects/s, mosquitto {med['B']:,.0f} connects/s "
      f"(medians of {len(rates['A'])} rounds)")
PY
  }
  tls=(--tls --cafile "$ca")
  mqtt connect_anonymous $ev_tcp $mq_anon --scenario conn -c "$conns" -R 100000 --duration 2s
  mqtt connect_password $ev_tcp $mq_pw --scenario conn -c "$conns" -R 100000 --duration 2s \
    -u 'bench-%i' -P "$PW"
  mqtt connect_tls $ev_tls $mq_tls --scenario conn -c "$cert_conns" -R 100000 --duration 2s "${tls[@]}"
  mqtt connect_certificate $ev_tls $mq_cert --scenario conn -c "$cert_conns" -R 100000 \
    --duration 2s "${tls[@]}" --cert "$out/certs/client.pem" --cert-key "$out/certs/client.key"
  curl -s "$B/metrics" | grep -E "^evgrid_mqtt_(auth|connections_refused)" > "$out/connect-metrics.txt" || true
  stop "$evpid"; stop "$mqpid"; evpid=; mqpid=
fi

# --- fanin -----------------------------------------------------------------------------------
# The policy: client bench-i (attribute group=g<i mod 10>) is in client group group-<k>; topic
# space space-<k> holds three templates, on the client's own name and its group attribute;
# group-<k> may publish and subscribe on space-<k>; space-0 also holds fleet/+/t, where the
# subscriber (bench-0, in group-0) listens. (Names of groups and spaces take 3 to 50 characters.)
policy() {
  for k in $(seq 0 9); do
    api PUT /clientGroups/group-$k "{\"properties\":{\"query\":\"attributes.group IN ['g$k']\"}}"
    local extra=""; [ "$k" = 0 ] && extra=',"fleet/+/t"'
    api PUT /topicSpaces/space-$k "{\"properties\":{\"topicTemplates\":[
      \"fleet/\${client.authenticationName}/#\",
      \"groups/g$k/\${client.authenticationName}/+\",
      \"status/\${client.attributes.group}/\${client.authenticationName}\"$extra]}}"
    api PUT /permissionBindings/pub-group-$k \
      "{\"properties\":{\"clientGroupName\":\"group-$k\",\"topicSpaceName\":\"space-$k\",\"permission\":\"Publisher\"}}"
    api PUT /permissionBindings/sub-group-$k \
      "{\"properties\":{\"clientGroupName\":\"group-$k\",\"topicSpaceName\":\"space-$k\",\"permission\":\"Subscriber\"}}"
  done
}
if want fanin; then
  for r in $(seq "$rounds"); do
    for mode in off policy; do
      authz=off; [ $mode = policy ] && authz=bindings
      start_evgrid EVGRID_MQTT_ALLOW_ANONYMOUS=false EVGRID_MQTT_AUTHORIZATION=$authz
      register 0 "$pubs"
      [ $mode = policy ] && policy
      # Subscriber bench-0, publishers bench-1..bench-PUBS on fleet/bench-<i>/t (-n 1: the
      # topic's %i counts from 1, as the publishers' user names do).
      $lt fanin -h 127.0.0.1 -p $ev_tcp --publishers "$pubs" --rate 2000000 -q 0 -s 64 \
        --duration 5s -u 'bench-%i' -P "$PW" -n 1 -t 'fleet/bench-%i/t' --sub-topic 'fleet/+/t' \
        --broker-pid "$evpid" --quiet --json "$out/fanin.$mode.$r.json" > "$out/fanin.$mode.$r.txt" 2>&1 \
        || echo "fanin $mode round $r: loadtest failed: $(tail -2 "$out/fanin.$mode.$r.txt")"
      python3 - "$out/fanin.$mode.$r.json" "$mode" "$r" <<'PY' || true
import json, sys
j = json.load(open(sys.argv[1]))
c, t, m = j["connections"], j["throughput"], j["messages"]
print(f"fanin {sys.argv[2]:6} round {sys.argv[3]}: received {t['received_per_s']:,.0f} msg/s "
      f"(sent {t['sent_per_s']:,.0f}/s), connections {c['succeeded']}/{c['attempted']}")
PY
      # What authentication and authorization decided in the run (a denial would void it).
      curl -s "$B/metrics" | grep -E '^evgrid_mqtt_(connects_total|authorization_denials_total|messages_dropped_total|messages_received_total)' \
        | grep -v ' 0$' > "$out/fanin.$mode.$r.metrics" || true
      stop "$evpid"; evpid=
    done
  done > >(tee "$out/fanin.txt")  # not a pipeline: the loop's servers stay this shell's (trap)
  sleep 0.5
  python3 - "$out" "$rounds" <<'PY' | tee -a "$out/fanin.txt"
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for mode in ("off", "policy"):
    vals = []
    for r in range(1, rounds + 1):
        try:
            vals.append(json.load(open(f"{out}/fanin.{mode}.{r}.json"))["throughput"]["received_per_s"])
        except (OSError, ValueError, KeyError):
            pass
    med[mode] = statistics.median(vals) if vals else float("nan")
    print(f"fanin {mode}: median {med[mode]:,.0f} msg/s over {len(vals)} runs")
if med["off"] == med["off"] and med["off"] > 0:
    print(f"fanin with the policy: {100 * (med['policy'] / med['off'] - 1):+.1f} % against authorization off")
PY
fi

# --- memory ----------------------------------------------------------------------------------
idle() { # name pid port [idle_connections.py options]
  local name=$1 pid=$2 port=$3; shift 3
  local before after log="$out/idle.$name.log"
  : > "$log"
  sleep 2
  before=$(rss "$pid")
  python3 benches/idle_connections.py 127.0.0.1 "$port" "$mem_conns" 60 "$@" > "$log" 2>&1 &
  local py=$!
  for _ in $(seq 1200); do
    grep -q "^connected" "$log" && break
    kill -0 $py 2>/dev/null || break
    sleep 0.1
  done
  if grep -q "^connected" "$log"; then
    sleep 1
    after=$(rss "$pid")
    echo "idle $name: $(( (after - before) * 1024 / mem_conns )) bytes/connection (RSS $before → $after KiB, $mem_conns connections)"
  else
    echo "idle $name: FAILED: $(tail -1 "$log")"
  fi
  kill $py 2>/dev/null || true; wait $py 2>/dev/null || true
}
if want memory; then
  for r in $(seq "$rounds"); do
    start_evgrid EVGRID_MQTT_ALLOW_ANONYMOUS=false
    register 0 $(( mem_conns - 1 ))
    idle "evgrid_password.$r" "$evpid" $ev_tcp --username='bench-%i' --password="$PW"
    stop "$evpid"
    start_evgrid
    idle "evgrid_anonymous.$r" "$evpid" $ev_tcp
    stop "$evpid"; evpid=
    start_mosquitto
    idle "mosquitto_password.$r" "$mqpid" $mq_pw --username='bench-%i' --password="$PW"
    stop "$mqpid"; mqpid=
  done > >(tee "$out/memory.txt")
fi
echo "done: $out"
