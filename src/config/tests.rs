use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn defaults_validate() {
    let c = Config::load(None, std::iter::empty()).unwrap();
    c.validate().unwrap();
    assert_eq!(c.mqtt.bind.port(), 1883);
    assert_eq!(c.http.bind.port(), 8080);
    assert_eq!(c.mqtt.max_keepalive, 1160);
}

#[test]
fn env_overrides() {
    let c = Config::load(
        None,
        env(&[
            ("EVGRID_MQTT_MAX_QOS", "1"),
            ("EVGRID_DATA_DIR", "/tmp/x"),
            ("PATH", "/bin"),
        ])
        .into_iter(),
    )
    .unwrap();
    assert_eq!(c.mqtt.max_qos, 1);
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    let e = Config::load(None, env(&[("EVGRID_MQTT_NOPE", "1")]).into_iter()).unwrap_err();
    assert!(e.to_string().contains("EVGRID_MQTT_NOPE"), "{e}");
    let e = Config::load(None, env(&[("EVGRID_MQTT_MAX_QOS", "x")]).into_iter()).unwrap_err();
    assert!(e.to_string().contains("integer"), "{e}");
}

#[test]
fn file_then_validate() {
    let dir = std::env::temp_dir().join(format!("evgrid-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("c.toml");
    std::fs::write(&p, "[mqtt]\nmax_qos = 3\n").unwrap();
    let c = Config::load(Some(&p), std::iter::empty()).unwrap();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.max_qos")
    );
    std::fs::write(&p, "[mqtt]\nbogus = 1\n").unwrap();
    let e = Config::load(Some(&p), std::iter::empty()).unwrap_err();
    assert!(e.to_string().contains("bogus"), "{e}");
    // env applies on top of the file
    std::fs::write(&p, "[mqtt]\nmax_qos = 1\n").unwrap();
    let c = Config::load(
        Some(&p),
        env(&[("EVGRID_MQTT_MAX_INFLIGHT", "7")]).into_iter(),
    )
    .unwrap();
    assert_eq!((c.mqtt.max_qos, c.mqtt.max_inflight), (1, 7));
}

#[test]
fn memory_budget_is_a_top_level_key_with_a_floor() {
    let c = Config::load(
        None,
        env(&[("EVGRID_MEMORY_BUDGET_BYTES", "16777216")]).into_iter(),
    )
    .unwrap();
    assert_eq!(c.memory_budget_bytes, 16 * 1024 * 1024);
    c.validate().unwrap();
    for (var, raw) in [
        ("EVGRID_MEMORY_BUDGET_BYTES", "16777215"),
        ("EVGRID_MQTT_MAX_OUTBOUND_BYTES", "2000000000"),
    ] {
        let c = Config::load(None, env(&[(var, raw)]).into_iter()).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("memory_budget_bytes"), "{var}: {e}");
    }
    let e = Config::load(
        None,
        env(&[("EVGRID_MQTT_MAX_BUFFERED_BYTES", "16777216")]).into_iter(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no such setting"), "{e}");
}

#[test]
fn connect_timeout_zero_is_refused() {
    let c = Config::load(
        None,
        env(&[("EVGRID_MQTT_CONNECT_TIMEOUT", "0")]).into_iter(),
    )
    .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("mqtt.connect_timeout"), "{e}");
}

#[test]
fn lifecycle_backlog_defaults_and_must_hold_one() {
    assert_eq!(Config::default().mqtt.lifecycle_backlog, 100_000);
    let c = Config::load(
        None,
        env(&[("EVGRID_MQTT_LIFECYCLE_BACKLOG", "7")]).into_iter(),
    )
    .unwrap();
    assert_eq!(c.mqtt.lifecycle_backlog, 7);
    let c = Config::load(
        None,
        env(&[("EVGRID_MQTT_LIFECYCLE_BACKLOG", "0")]).into_iter(),
    )
    .unwrap();
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("mqtt.lifecycle_backlog"), "{e}");
}

#[test]
fn the_grid_threads_run_niced_by_default_within_0_to_19() {
    let d = Config::default().events;
    assert_eq!((d.nice, d.actor_threads), (10, 0));
    for (v, ok) in [("0", true), ("19", true), ("20", false), ("-1", false)] {
        let c = Config::load(None, env(&[("EVGRID_EVENTS_NICE", v)]).into_iter()).unwrap();
        assert_eq!(c.validate().is_ok(), ok, "events.nice = {v}");
    }
}

#[test]
fn tls_sections_take_nested_env_keys_and_are_checked() {
    let c = Config::load(
        None,
        env(&[
            ("EVGRID_MQTT_TLS_BIND", "127.0.0.1:8883"),
            ("EVGRID_MQTT_TLS_CERT_FILE", "/c.pem"),
            ("EVGRID_MQTT_TLS_KEY_FILE", "/k.pem"),
            ("EVGRID_MQTT_TLS_CLIENT_AUTH", "required"),
            ("EVGRID_PUSH_TLS_CA_FILE", "/ca.pem"),
        ])
        .into_iter(),
    )
    .unwrap();
    assert_eq!(c.mqtt.tls.bind, "127.0.0.1:8883");
    assert_eq!(c.mqtt.tls.client_auth, crate::tls::ClientAuth::Required);
    assert_eq!(c.push.tls.ca_file, PathBuf::from("/ca.pem"));
    // client_auth required without a CA to verify against.
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("mqtt.tls.ca_file"), "{e}");
    let e = Config::load(
        None,
        env(&[("EVGRID_MQTT_TLS_CLIENT_AUTH", "sometimes")]).into_iter(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sometimes"), "{e}");
    let c = Config::load(
        None,
        env(&[("EVGRID_MQTT_WSS_BIND", "127.0.0.1:0")]).into_iter(),
    )
    .unwrap();
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("mqtt.wss_bind")
    );
}

/// `mqtt.authorization` and `mqtt.webhook_auth_token` (issue 18): defaults, overrides, a bad mode
/// named; `mqtt.tls.client_auth = "request"` needs no `ca_file`.
#[test]
fn authorization_webhook_token_and_requested_client_certificates() {
    use evgrid_actors::identity::AuthzMode;
    let c = Config::load(None, std::iter::empty()).unwrap();
    assert_eq!(c.mqtt.authorization.mode(), AuthzMode::Auto);
    assert!(c.mqtt.webhook_auth_token.is_empty());
    let c = Config::load(
        None,
        env(&[
            ("EVGRID_MQTT_AUTHORIZATION", "bindings"),
            ("EVGRID_MQTT_WEBHOOK_AUTH_TOKEN", "t0k"),
        ])
        .into_iter(),
    )
    .unwrap();
    assert_eq!(c.mqtt.authorization.mode(), AuthzMode::Bindings);
    assert_eq!(c.mqtt.webhook_auth_token, "t0k");
    let c = Config::load(
        None,
        env(&[("EVGRID_MQTT_AUTHORIZATION", "off")]).into_iter(),
    )
    .unwrap();
    assert_eq!(c.mqtt.authorization.mode(), AuthzMode::Off);
    let e = Config::load(
        None,
        env(&[("EVGRID_MQTT_AUTHORIZATION", "acl")]).into_iter(),
    )
    .and_then(|c| c.validate().map(|_| c));
    assert!(e.is_err());
    let mut c = Config::load(None, std::iter::empty()).unwrap();
    c.mqtt.tls.bind = "127.0.0.1:8883".into();
    c.mqtt.tls.cert_file = "c.pem".into();
    c.mqtt.tls.key_file = "k.pem".into();
    c.mqtt.tls.client_auth = crate::tls::ClientAuth::Request;
    c.validate().unwrap();
    c.mqtt.tls.client_auth = crate::tls::ClientAuth::Required;
    assert!(c.validate().is_err(), "required still needs ca_file");
}
