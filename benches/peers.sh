# Sourced by the scripts that run evgrid's peers (benches/compare-peers.sh, benches/fleet.sh):
# rumqttd 0.20 installed once into target/peers, and the limits every comparison gives the peers.
# mosquitto: max_queued_messages 100000 and max_inflight_messages 1000 (evgrid's defaults);
# rumqttd: its sample configuration's limits (max_inflight_count 100 per connection, 100 MB
# segments) and a payload limit that fits.

rumqttd=target/peers/bin/rumqttd

# install_rumqttd: once, without --locked, so its dependencies resolve to the newest compatible
# versions this toolchain builds.
install_rumqttd() {
  if [ ! -x "$rumqttd" ]; then
    echo "installing rumqttd 0.20.0 into target/peers (once)"
    CARGO_TARGET_DIR=target/peers/build cargo install rumqttd --version 0.20.0 --root target/peers
  fi
}

# mosquitto_conf FILE PORT
mosquitto_conf() {
  cat > "$1" <<CONF
listener $2 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 100000
max_inflight_messages 1000
CONF
}

# rumqttd_conf FILE MAX_CONNECTIONS V4_PORT [V5_PORT]
rumqttd_conf() {
  cat > "$1" <<CONF
id = 0
[router]
id = 0
max_connections = $2
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:$3"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
    dynamic_filters = true
CONF
  if [ -n "${4:-}" ]; then
    cat >> "$1" <<CONF
[v5.1]
name = "v5-1"
listen = "127.0.0.1:$4"
next_connection_delay_ms = 0
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
CONF
  fi
}
