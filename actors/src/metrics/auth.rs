//! The counters of MQTT authentication and authorization (docs/eventgrid.md §7.4, §7.5):
//! CONNECTs by authentication method and outcome, authorization denials by kind, connections
//! closed because their authentication or authorization no longer holds. Like every counter,
//! must never block or allocate on the bump path.

use std::fmt::Write;

use super::{Counter, header};

/// The `method` label: [`crate::identity::AuthMethod::label`]'s values, then `none` (refused
/// before a method was known).
const METHODS: [&str; 6] = [
    "anonymous",
    "password",
    "certificate",
    "custom_jwt",
    "webhook",
    "none",
];

/// What became of a CONNECT, as far as authentication goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    Accepted = 0,
    /// v5 0x86, v3.1.1 0x04.
    BadCredentials = 1,
    /// v5 0x87, v3.1.1 0x05 (also a will the client may not publish).
    NotAuthorized = 2,
    /// The authenticator could not answer: v5 0x88, v3.1.1 0x03.
    Unavailable = 3,
    /// `maximumClientSessionsPerAuthenticationName` reached: v5 0x97, v3.1.1 0x03.
    Quota = 4,
}

const OUTCOMES: [&str; 5] = [
    "accepted",
    "bad_credentials",
    "not_authorized",
    "unavailable",
    "quota",
];

/// What an authorization denial refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    Publish = 0,
    Subscribe = 1,
    Will = 2,
}

const KINDS: [&str; 3] = ["publish", "subscribe", "will"];

/// Why a connected client was disconnected by the broker for its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeKind {
    /// Its client was disabled or deleted.
    Revoked = 0,
    /// Its permissions no longer cover a subscription it holds.
    Narrowed = 1,
    /// Its token's (or webhook answer's) expiry passed without re-authentication.
    Expired = 2,
    /// MQTT 5 re-authentication failed.
    Reauth = 3,
}

const REVOKES: [&str; 4] = ["revoked", "narrowed", "expired", "reauth_failed"];

/// `evgrid_mqtt_connects_total{method,outcome}`,
/// `evgrid_mqtt_authorization_denials_total{kind}`, `evgrid_mqtt_auth_disconnects_total{reason}`.
#[derive(Debug)]
pub struct AuthMetrics {
    connects: [[Counter; 5]; 6],
    denials: [Counter; 3],
    disconnects: [Counter; 4],
}

// Only array-repeat initialisers of the static below: each use is a fresh counter.
#[allow(clippy::declare_interior_mutable_const)]
const C: Counter = Counter::new();
#[allow(clippy::declare_interior_mutable_const)]
const ROW: [Counter; 5] = [C; 5];

pub static AUTH: AuthMetrics = AuthMetrics {
    connects: [ROW; 6],
    denials: [C; 3],
    disconnects: [C; 4],
};

fn method_index(method: Option<&str>) -> usize {
    let m = method.unwrap_or("none");
    METHODS.iter().position(|x| *x == m).unwrap_or(5)
}

impl AuthMetrics {
    /// A CONNECT decided; `method` is an [`crate::identity::AuthMethod::label`], `None` when no
    /// method was established.
    pub fn connect(&self, method: Option<&str>, outcome: ConnectOutcome) {
        self.connects[method_index(method)][outcome as usize].inc();
    }

    pub fn connects(&self, method: Option<&str>, outcome: ConnectOutcome) -> u64 {
        self.connects[method_index(method)][outcome as usize].get()
    }

    /// `n` packets (or filters) refused.
    pub fn denied(&self, kind: DenialKind, n: u64) {
        self.denials[kind as usize].add(n);
    }

    pub fn denials(&self, kind: DenialKind) -> u64 {
        self.denials[kind as usize].get()
    }

    pub fn disconnected(&self, why: RevokeKind) {
        self.disconnects[why as usize].inc();
    }

    pub fn disconnects(&self, why: RevokeKind) -> u64 {
        self.disconnects[why as usize].get()
    }

    pub(super) fn render(&self, s: &mut String) {
        let name = "evgrid_mqtt_connects_total";
        header(
            s,
            "counter",
            name,
            "MQTT CONNECTs decided by authentication, by method and outcome.",
        );
        for (m, row) in METHODS.iter().zip(&self.connects) {
            for (o, c) in OUTCOMES.iter().zip(row) {
                let _ = writeln!(s, "{name}{{method=\"{m}\",outcome=\"{o}\"}} {}", c.get());
            }
        }
        let name = "evgrid_mqtt_authorization_denials_total";
        header(
            s,
            "counter",
            name,
            "PUBLISH packets, subscription filters and wills refused by authorization, by kind.",
        );
        for (k, c) in KINDS.iter().zip(&self.denials) {
            let _ = writeln!(s, "{name}{{kind=\"{k}\"}} {}", c.get());
        }
        let name = "evgrid_mqtt_auth_disconnects_total";
        header(
            s,
            "counter",
            name,
            "Connections the broker closed because their authentication or authorization no longer held, by reason.",
        );
        for (r, c) in REVOKES.iter().zip(&self.disconnects) {
            let _ = writeln!(s, "{name}{{reason=\"{r}\"}} {}", c.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_match_the_identity_labels_and_render() {
        use crate::identity::AuthMethod as M;
        for m in [
            M::Anonymous,
            M::Password,
            M::Certificate,
            M::CustomJwt,
            M::Webhook,
        ] {
            assert_eq!(METHODS[method_index(Some(m.label()))], m.label());
        }
        assert_eq!(method_index(None), 5);
        let before = AUTH.connects(Some("webhook"), ConnectOutcome::Unavailable);
        AUTH.connect(Some("webhook"), ConnectOutcome::Unavailable);
        assert_eq!(
            AUTH.connects(Some("webhook"), ConnectOutcome::Unavailable),
            before + 1
        );
        let mut s = String::new();
        AUTH.render(&mut s);
        assert!(s.contains("evgrid_mqtt_connects_total{method=\"none\",outcome=\"quota\"}"));
        assert!(s.contains("evgrid_mqtt_authorization_denials_total{kind=\"will\"}"));
        assert!(s.contains("evgrid_mqtt_auth_disconnects_total{reason=\"narrowed\"}"));
    }
}
