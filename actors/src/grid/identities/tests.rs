//! The directory a namespace publishes and the watch that announces it, on a grid over the
//! in-memory store.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::delivery::PushConfig;
use crate::grid::resource::Limits;
use crate::grid::resource::identity::Kind;
use crate::grid::{Grid, GridConfig};
use crate::identity::Permission;
use crate::identity::cert::NameSource;

const ISSUER_PEM: &str = include_str!("../../identity/testdata/jwt.pem");
use crate::store::Writer;
use crate::store::mem::MemStore;

fn config() -> GridConfig {
    let d = Arc::new(vec![Duration::from_millis(100)]);
    GridConfig {
        limits: Limits { min_lock_secs: 60 },
        tick: Duration::from_millis(50),
        push: PushConfig {
            retry_schedule: d.clone(),
            namespace_retry_schedule: d,
            request_timeout: Duration::from_secs(1),
            validation_timeout: Duration::from_secs(1),
            manual_validation: Duration::from_secs(1),
            max_in_flight: 1,
            shards: 1,
            probation_after: 10,
            dead_letter_dir: None,
            public_url: "http://127.0.0.1:1".into(),
            deny_private_endpoints: false,
            tls: None,
        },
        mqtt_hostname: "mqtt.test".into(),
        backlog: Default::default(),
    }
}

#[test]
fn every_change_publishes_a_new_directory_and_moves_the_watch() {
    let writer = Writer::start(Arc::new(MemStore::new()));
    actix::System::new().block_on(async move {
        let grid = Grid::start(writer, vec![actix::Arbiter::current()], config())
            .await
            .unwrap();
        let rx = grid.identity_changes();
        let seen = *rx.borrow();
        let d0 = grid.directory("default").unwrap();
        assert!(d0.clients.is_empty());
        assert_eq!(d0.max_sessions_per_auth_name, 1);

        let put = |kind, name: &'static str, props: serde_json::Value| {
            let g = grid.clone();
            async move { g.put_identity("DEFAULT", kind, name, &props).await.unwrap() }
        };
        put(
            Kind::Client,
            "dev-1",
            json!({"authenticationName": "Sensor-A", "password": "pw", "attributes": {"t": "s"}}),
        )
        .await;
        let after_client = *rx.borrow();
        assert!(after_client > seen);
        put(Kind::ClientGroup, "sensors", json!({"query": "attributes.t = 's'"})).await;
        put(Kind::TopicSpace, "tel", json!({"topicTemplates": ["d/#"]})).await;
        put(
            Kind::PermissionBinding,
            "pub",
            json!({"clientGroupName": "Sensors", "topicSpaceName": "tel", "permission": "Publisher"}),
        )
        .await;
        let d = grid.directory("default").unwrap();
        let c = &d.clients["sensor-a"];
        assert_eq!((c.name.as_str(), c.auth_name.as_str()), ("dev-1", "Sensor-A"));
        assert!(c.password.as_ref().unwrap().verify(b"pw"));
        assert_eq!(d.groups.len(), 1);
        assert_eq!(d.spaces.len(), 1);
        assert_eq!(d.bindings[0].permission, Permission::Publisher);
        assert_eq!(d.bindings[0].group, "sensors");
        assert!(*rx.borrow() > after_client);
        // The directory held before is unchanged (swapped whole, never edited).
        assert!(d0.clients.is_empty());

        // A namespace PUT that changes the authentication settings moves the watch too; one
        // that changes nothing of them does not.
        let before = *rx.borrow();
        let auth = json!({
            "alternativeAuthenticationNameSources": ["ClientCertificateDns"],
            "customJwtAuthentication": {"tokenIssuer": "https://issuer.test",
                "issuerCertificates": [{"encodedCertificate": ISSUER_PEM}]},
            "webHookAuthentication": {"endpointUrl": "http://127.0.0.1:9/auth"},
        });
        let props = json!({"topicSpacesConfiguration": {"maximumClientSessionsPerAuthenticationName": 3,
            "quotas": {"connectsPerSecond": 7}, "clientAuthentication": auth}});
        grid.put_namespace("default", &props).await.unwrap();
        let d = grid.directory("default").unwrap();
        assert_eq!(d.max_sessions_per_auth_name, 3);
        assert_eq!(d.quotas.connects_per_sec, Some(7));
        assert_eq!(d.auth.name_sources, [NameSource::Dns]);
        let jwt = d.auth.custom_jwt.as_ref().unwrap();
        // Tokens are for the broker's host name (`mqtt.hostname`).
        assert_eq!((jwt.issuer.as_str(), jwt.audience.as_str()), ("https://issuer.test", "mqtt.test"));
        assert_eq!(d.auth.webhook.as_ref().unwrap().endpoint_url, "http://127.0.0.1:9/auth");
        assert_eq!(d.clients.len(), 1);
        let moved = *rx.borrow();
        assert!(moved > before);
        grid.put_namespace(
            "default",
            &json!({"topicSpacesConfiguration": {"maximumClientSessionsPerAuthenticationName": 3,
                "quotas": {"connectsPerSecond": 7}, "clientAuthentication": auth,
                "state": "Enabled"}}),
        )
        .await
        .unwrap();
        assert_eq!(*rx.borrow(), moved);

        // Deleting a client, then the namespace.
        assert!(grid.delete_identity("default", Kind::Client, "DEV-1").await.unwrap());
        assert!(grid.directory("default").unwrap().clients.is_empty());
        assert!(grid.delete_namespace("default").await.unwrap());
        assert!(grid.directory("default").is_err());
        assert!(*rx.borrow() > moved);
        actix::System::current().stop();
    });
}
