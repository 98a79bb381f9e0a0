//! Identity of MQTT clients (docs/eventgrid.md §7.2–§7.5): the client registry of one namespace
//! as the data plane reads it ([`Directory`](directory::Directory)), authentication of a CONNECT
//! against it, and the authorization decisions compiled per client ([`policy::ClientPolicy`]).
//!
//! Owns the parsed, validated forms of the namespace's identity resources (`clients`,
//! `caCertificates`, `clientGroups`, `topicSpaces`, `permissionBindings`, and the namespace's
//! `clientAuthentication` settings), the group query language ([`query`]), topic templates
//! ([`template`]), password hashes ([`password`]), custom JWTs ([`jwt`]) and certificate matching
//! ([`cert`]). Pure: never touches the store, an actor, the network or the clock (`now` comes in
//! as an argument). The grid validates resources with it and publishes a new
//! [`Directory`](directory::Directory) on every change; the MQTT edge authenticates and
//! authorizes with it. Must never evaluate a group query or a template on the publish path:
//! policies are compiled at CONNECT and on change.
pub mod cert;
pub mod directory;
pub mod jwt;
pub mod password;
pub mod policy;
pub mod query;
pub mod template;
pub mod webhook;

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The one case folding of authentication names (docs/eventgrid.md §7.3: unique per namespace,
/// case-insensitively): every character lowercased on its own (`char::to_lowercase`), with no
/// context rules (unlike `str::to_lowercase`, a Greek capital sigma always folds to `σ`, never
/// to the final `ς`). Directory keys ([`directory::Directory::clients`]), lookups, certificate
/// name matching, group queries and the edge's per-name session accounting must all use it, so
/// two names are the same client exactly when their folds are equal. Borrows when `s` is
/// already folded (the common all-lowercase ASCII name).
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| {
        let mut l = c.to_lowercase();
        l.next() == Some(c) && l.next().is_none()
    }) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().flat_map(char::to_lowercase).collect())
}

/// Whether `a` and `b` are equal under [`fold`], without allocating.
pub fn eq_fold(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// A client attribute value (docs/eventgrid.md §7.3: int, string, string array; bool as the API
/// text allows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Int(i64),
    Bool(bool),
    Str(String),
    Strs(Vec<String>),
}

impl AttrValue {
    /// The attribute a JSON value makes: an int32, a string, an array of strings, and a bool
    /// when `bools` (a webhook's reply may carry them, a token's claims do not); else `None`.
    pub fn from_json(v: &serde_json::Value, bools: bool) -> Option<AttrValue> {
        use serde_json::Value;
        match v {
            Value::Bool(b) if bools => Some(AttrValue::Bool(*b)),
            Value::Number(n) => n
                .as_i64()
                .filter(|i| i32::try_from(*i).is_ok())
                .map(AttrValue::Int),
            Value::String(s) => Some(AttrValue::Str(s.clone())),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(AttrValue::Strs),
            _ => None,
        }
    }
}

/// A client's attributes by key, as configured (keys are `[A-Za-z0-9_]`, case-sensitive).
pub type Attributes = BTreeMap<String, AttrValue>;

/// What a permission binding grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Publisher,
    Subscriber,
}

/// How a CONNECT proved who it is (a label of `evgrid_mqtt_auth_total{method}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// No credentials, accepted because `mqtt.allow_anonymous` is on.
    Anonymous,
    /// User name and password checked against a client's stored hash (evgrid's extension).
    Password,
    /// A client certificate: thumbprint or a chain to a registered CA certificate.
    Certificate,
    /// MQTT 5 `CUSTOM-JWT`.
    CustomJwt,
    /// The namespace's authentication webhook decided.
    Webhook,
}

impl AuthMethod {
    pub fn label(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Password => "password",
            AuthMethod::Certificate => "certificate",
            AuthMethod::CustomJwt => "custom_jwt",
            AuthMethod::Webhook => "webhook",
        }
    }
}

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The authentication name in its configured case (templates and enrichments use it).
    pub auth_name: String,
    /// The client resource's name, when the client is registered (password, certificate).
    pub client: Option<String>,
    /// The effective attributes at CONNECT (enrichments read them): the registered client's,
    /// the JWT's / webhook's, or for a JWT whose `sub` is a registered client, the client's with
    /// the token's claims over them.
    pub attributes: Attributes,
    /// The attributes the connection brought itself (JWT claims, webhook reply attributes),
    /// kept apart so that a registered JWT client's policy is recompiled from the client's
    /// current attributes with these over them; empty for password, certificate, anonymous.
    pub claims: Attributes,
    pub method: AuthMethod,
    /// When the authorization ends (JWT `exp`, webhook `expiration`), ms since the epoch.
    pub expires_ms: Option<u64>,
}

/// How authorization applies (`mqtt.authorization`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthzMode {
    /// Permission bindings decide once the namespace has at least one; a namespace with none
    /// allows everything (the quick start, as mosquitto without an ACL file).
    #[default]
    Auto,
    /// Only what permission bindings grant (Event Grid's rule): no binding, nothing allowed.
    Bindings,
    /// No authorization: every authenticated client may publish and subscribe anywhere.
    Off,
}
