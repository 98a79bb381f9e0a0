//! One namespace's identity configuration as the data plane reads it: registered clients by
//! authentication name, CA certificates, groups, topic spaces, permission bindings and the
//! namespace's authentication settings; authentication of a CONNECT against them; a client's
//! compiled [`ClientPolicy`].
//!
//! Immutable: the grid builds a new `Directory` on every change and swaps it in whole.
//!
//! Authentication order (docs/eventgrid.md §7.4): an MQTT 5 authentication method (`CUSTOM-JWT`;
//! any other goes to the webhook when one is configured), a client certificate, a registered
//! client's user name and password (evgrid's extension), the namespace's webhook, anonymous. A
//! connection is never accepted under the authentication name of a registered client without
//! that client's own credentials (or a `CUSTOM-JWT` whose `sub` names it): not anonymously, not
//! by the webhook ([`Directory::admit_webhook`]), not by keeping a session whose name became
//! registered later ([`Directory::still_valid`]); templates substitute that name, so it would
//! borrow the client's topics. Names are compared with [`super::fold`] only.

use std::collections::HashMap;
use std::sync::Arc;

use super::cert::{CaCert, CertInfo, CertValidation, NameSource};
use super::jwt::JwtSettings;
use super::password::PasswordHash;
use super::policy::ClientPolicy;
use super::query::Query;
use super::template::Template;
use super::{Attributes, AuthMethod, AuthzMode, Identity, Permission, eq_fold};
use super::{cert, jwt, password};

/// A registered client (`clients/{c}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDef {
    /// The resource name.
    pub name: String,
    /// `authenticationName`, configured case.
    pub auth_name: String,
    /// `state` is `Enabled`.
    pub enabled: bool,
    pub attributes: Attributes,
    /// `clientCertificateAuthentication`.
    pub cert: CertValidation,
    /// evgrid's extension: a salted password hash (`properties.password` at PUT, never shown).
    pub password: Option<PasswordHash>,
}

/// `clientGroups/{g}`; `$all` is built in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDef {
    pub name: String,
    pub query: Query,
}

/// `topicSpaces/{t}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaceDef {
    pub name: String,
    pub templates: Vec<Template>,
}

/// `permissionBindings/{b}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingDef {
    pub name: String,
    /// Lowercased group name (`$all` included).
    pub group: String,
    /// Lowercased topic space name.
    pub space: String,
    pub permission: Permission,
}

/// The namespace's `topicSpacesConfiguration.clientAuthentication`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// `alternativeAuthenticationNameSources`, in order.
    pub name_sources: Vec<NameSource>,
    pub custom_jwt: Option<JwtSettings>,
    pub webhook: Option<WebhookSettings>,
}

/// `webHookAuthentication`: where the broker asks (docs/eventgrid.md §7.4 item 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub endpoint_url: String,
}

/// Quotas of a namespace (evgrid's `topicSpacesConfiguration.quotas`; off when `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Inbound PUBLISH messages per second per session.
    pub session_messages_per_sec: Option<u32>,
    /// Inbound PUBLISH payload bytes per second per session.
    pub session_bytes_per_sec: Option<u32>,
    /// CONNECTs accepted per second in the namespace.
    pub connects_per_sec: Option<u32>,
}

/// One namespace's identity configuration.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// By authentication name folded with [`super::fold`] (unique per namespace,
    /// case-insensitively); the grid must key it with that function and no other.
    pub clients: HashMap<String, Arc<ClientDef>>,
    pub ca_certs: Vec<CaCert>,
    /// Every group but `$all`, which always exists and holds every client.
    pub groups: Vec<GroupDef>,
    pub spaces: Vec<SpaceDef>,
    pub bindings: Vec<BindingDef>,
    pub auth: AuthSettings,
    /// `maximumClientSessionsPerAuthenticationName` (1–100, default 1).
    pub max_sessions_per_auth_name: u32,
    pub quotas: Quotas,
}

/// What a CONNECT presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a [u8]>,
    /// MQTT 5 Authentication Method and Data.
    pub auth_method: Option<&'a str>,
    pub auth_data: Option<&'a [u8]>,
    /// The client certificate the TLS handshake carried (its handshake signature verified).
    pub cert: Option<&'a CertInfo>,
}

/// Why a CONNECT is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// Credentials that do not check out (v5 0x86, v3.1.1 0x04).
    BadCredentials(String),
    /// Not allowed to connect: unknown or disabled client, no credentials where they are
    /// required, a name the certificate does not carry (v5 0x87, v3.1.1 0x05).
    NotAuthorized(String),
    /// The authenticator could not answer (webhook timeout or error): v5 0x88, v3.1.1 0x03.
    Unavailable(String),
}

impl Denied {
    /// The reason for logs (never a secret).
    pub fn reason(&self) -> &str {
        match self {
            Denied::BadCredentials(r) | Denied::NotAuthorized(r) | Denied::Unavailable(r) => r,
        }
    }
}

/// What authentication decided without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept(Identity),
    Deny(Denied),
    /// Only the namespace's webhook can decide (no other method applies and one is configured).
    AskWebhook,
}

impl Directory {
    /// The registered client with this authentication name (case-insensitive).
    pub fn client(&self, auth_name: &str) -> Option<&Arc<ClientDef>> {
        self.clients.get(super::fold(auth_name).as_ref())
    }

    /// Authenticates a CONNECT at `now_ms` (docs/eventgrid.md §7.4). `allow_anonymous`: a client
    /// that presents no credentials at all is accepted as [`AuthMethod::Anonymous`] with the
    /// user name (or else the client id) as its authentication name. The order: `CUSTOM-JWT`
    /// (any other MQTT 5 authentication method goes to the webhook when one is configured and is
    /// refused otherwise), a client certificate, a user name with a password of a registered
    /// client, the webhook, anonymous.
    ///
    /// A user name (or, without one, a client id) that names a registered client is held to that
    /// client's own credentials and never handed to the webhook or accepted anonymously: the
    /// webhook cannot vouch for a registered client (see [`Directory::admit_webhook`]).
    pub fn authenticate(
        &self,
        creds: &Credentials<'_>,
        allow_anonymous: bool,
        now_ms: u64,
    ) -> Decision {
        self.authenticate_with(creds, allow_anonymous, now_ms, &|h, pw| h.verify(pw))
    }

    /// [`Self::authenticate`] with `verify` deciding whether a password matches a registered
    /// client's hash: the edge puts its cache of recently verified passwords in front of the
    /// slow hash. Every other step is the same.
    pub fn authenticate_with(
        &self,
        creds: &Credentials<'_>,
        allow_anonymous: bool,
        now_ms: u64,
        verify: &dyn Fn(&PasswordHash, &[u8]) -> bool,
    ) -> Decision {
        if let Some(method) = creds.auth_method {
            if method != "CUSTOM-JWT" && self.auth.webhook.is_some() {
                return self.registered_name(creds).unwrap_or(Decision::AskWebhook);
            }
            return self.custom_jwt(method, creds, now_ms);
        }
        if let Some(c) = creds.cert {
            return self.certificate(c, creds.username, now_ms);
        }
        if let (Some(user), Some(pw)) = (creds.username, creds.password)
            && let Some(client) = self.client(user)
            && let Some(hash) = &client.password
        {
            if !verify(hash, pw) {
                return deny_bad("bad user name or password");
            }
            if !client.enabled {
                return disabled(client);
            }
            return Decision::Accept(registered(client, AuthMethod::Password));
        }
        if let Some(d) = self.registered_name(creds) {
            return d;
        }
        if self.auth.webhook.is_some() {
            return Decision::AskWebhook;
        }
        if let Some(pw) = creds.password {
            password::verify_dummy(pw);
            return deny_bad("bad user name or password");
        }
        if allow_anonymous {
            return Decision::Accept(Identity {
                auth_name: creds.username.unwrap_or(creds.client_id).to_owned(),
                client: None,
                attributes: Attributes::new(),
                claims: Attributes::new(),
                method: AuthMethod::Anonymous,
                expires_ms: None,
            });
        }
        Decision::Deny(Denied::NotAuthorized("no valid credentials".into()))
    }

    /// The refusal for a CONNECT whose user name (or client id) names a registered client that
    /// it did not prove to be; `None` when the name is no registered client's. A password it
    /// brought costs one dummy verification, so the refusal takes as long as a wrong password.
    fn registered_name(&self, creds: &Credentials<'_>) -> Option<Decision> {
        let client = self.client(creds.username.unwrap_or(creds.client_id))?;
        if let Some(pw) = creds.password {
            password::verify_dummy(pw);
        }
        Some(
            if creds.username.is_some() && creds.password.is_none() && client.password.is_some() {
                deny_bad("password required")
            } else if !client.enabled {
                disabled(client)
            } else {
                Decision::Deny(Denied::NotAuthorized(format!(
                    "'{}' is a registered client; it must present its credentials",
                    escape(&client.auth_name)
                )))
            },
        )
    }

    /// Admits what the webhook allowed ([`super::webhook::read_reply`]), or refuses it when the
    /// authentication name it settled on is a registered client's: the webhook may vouch for
    /// names the namespace does not know, never for a registered client (whose topics and
    /// attributes it would borrow) — the safe rule; such a client authenticates with its own
    /// credentials. The edge calls it on every webhook allow.
    pub fn admit_webhook(&self, id: Identity) -> Result<Identity, Denied> {
        match self.client(&id.auth_name) {
            Some(def) => Err(Denied::NotAuthorized(format!(
                "the webhook named a registered client ('{}')",
                escape(&def.auth_name)
            ))),
            None => Ok(id),
        }
    }

    fn custom_jwt(&self, method: &str, creds: &Credentials<'_>, now_ms: u64) -> Decision {
        let Some(settings) = self
            .auth
            .custom_jwt
            .as_ref()
            .filter(|_| method == "CUSTOM-JWT")
        else {
            let shown: String = escape(method).chars().take(64).collect();
            return deny_bad(&format!("unsupported authentication method '{shown}'"));
        };
        let claims = match jwt::verify(creds.auth_data.unwrap_or_default(), settings, now_ms) {
            Ok(c) => c,
            Err(reason) => return deny_bad(&reason),
        };
        // A registered `sub` is that client (in its configured case), its attributes under the
        // token's.
        let (auth_name, client, attributes) = match self.client(&claims.sub) {
            Some(def) if !def.enabled => return disabled(def),
            Some(def) => (
                def.auth_name.clone(),
                Some(def.name.clone()),
                merged(&def.attributes, &claims.attributes),
            ),
            None => (claims.sub, None, claims.attributes.clone()),
        };
        Decision::Accept(Identity {
            auth_name,
            client,
            attributes,
            claims: claims.attributes,
            method: AuthMethod::CustomJwt,
            expires_ms: Some(claims.expires_ms),
        })
    }

    fn certificate(&self, c: &CertInfo, username: Option<&str>, now_ms: u64) -> Decision {
        let from_cert = || {
            self.auth
                .name_sources
                .iter()
                .find_map(|&src| cert::names(c, src).into_iter().find(|n| !n.is_empty()))
        };
        let Some(name) = username.filter(|u| !u.is_empty()).or_else(from_cert) else {
            return Decision::Deny(Denied::NotAuthorized(
                "no authentication name: no user name, and no configured name source found in \
                 the certificate"
                    .into(),
            ));
        };
        let Some(client) = self.client(name) else {
            return Decision::Deny(Denied::NotAuthorized(format!(
                "no registered client has the authentication name '{}'",
                escape(name)
            )));
        };
        if !client.enabled {
            return disabled(client);
        }
        let field = match &client.cert {
            CertValidation::Thumbprints(allowed) => {
                if cert::thumbprint_matches(c, allowed) {
                    if !cert::leaf_valid_at(c, now_ms) {
                        return deny_bad("the certificate is not valid now (notBefore/notAfter)");
                    }
                    return Decision::Accept(registered(client, AuthMethod::Certificate));
                }
                return deny_bad("the certificate's thumbprint is not one the client allows");
            }
            CertValidation::SubjectMatches => NameSource::Subject,
            CertValidation::DnsMatches => NameSource::Dns,
            CertValidation::UriMatches => NameSource::Uri,
            CertValidation::IpMatches => NameSource::Ip,
            CertValidation::EmailMatches => NameSource::Email,
        };
        if !cert::chains_to(c, &self.ca_certs, now_ms) {
            return deny_bad(
                "the certificate does not chain to a registered CA certificate (or is not valid now)",
            );
        }
        if !cert::names(c, field)
            .into_iter()
            .any(|n| eq_fold(n, &client.auth_name))
        {
            return deny_bad("the certificate does not carry the client's authentication name");
        }
        Decision::Accept(registered(client, AuthMethod::Certificate))
    }

    /// Whether a client that authenticated as `id` is still allowed to connect under this
    /// directory: a registered client must still exist, with the same authentication name, and
    /// be enabled; an identity of no registered client loses its connection when its name
    /// becomes a registered client's (it would gain that client's topics), except a `CUSTOM-JWT`
    /// one, whose `sub` naming a registered client makes it that client as at CONNECT (while the
    /// client is enabled). `Err` names why not (for the disconnect log).
    pub fn still_valid(&self, id: &Identity) -> Result<(), String> {
        let Some(name) = &id.client else {
            return match self.client(&id.auth_name) {
                None => Ok(()),
                Some(def) if id.method == AuthMethod::CustomJwt && !def.enabled => {
                    Err(format!("client '{}' is disabled", escape(&def.name)))
                }
                Some(_) if id.method == AuthMethod::CustomJwt => Ok(()),
                Some(def) => Err(format!(
                    "the authentication name '{}' is now a registered client's ('{}')",
                    escape(&id.auth_name),
                    escape(&def.name)
                )),
            };
        };
        match self.client(&id.auth_name) {
            None => Err(format!(
                "no client has the authentication name '{}' any more",
                escape(&id.auth_name)
            )),
            Some(def) if def.name != *name => Err(format!(
                "the authentication name '{}' now belongs to client '{}'",
                escape(&id.auth_name),
                escape(&def.name)
            )),
            Some(def) if !def.enabled => Err(format!("client '{}' is disabled", escape(&def.name))),
            Some(_) => Ok(()),
        }
    }

    /// The decisions for `id`, compiled: the groups it belongs to, the templates of the spaces
    /// bound to them substituted with its values.
    pub fn policy(&self, id: &Identity, mode: AuthzMode) -> ClientPolicy {
        match mode {
            AuthzMode::Off => return ClientPolicy::allow_all(),
            AuthzMode::Auto if self.bindings.is_empty() => return ClientPolicy::allow_all(),
            _ => {}
        }
        // A registered client is evaluated with its current attributes (the policy is
        // recompiled when the directory changes), a JWT's claims over them; others with what
        // they brought. A JWT whose `sub` became a registered client's is that client, as it
        // would be at CONNECT (see `still_valid`).
        let current = self
            .client(&id.auth_name)
            .filter(|d| id.client.as_ref().is_none_or(|n| d.name == *n));
        let jwt_merged;
        let attrs = match (current, &id.client, id.method) {
            (Some(d), Some(_), AuthMethod::Password | AuthMethod::Certificate) => &d.attributes,
            (Some(d), _, AuthMethod::CustomJwt) => {
                jwt_merged = merged(&d.attributes, &id.claims);
                &jwt_merged
            }
            _ => &id.attributes,
        };
        let member = |group: &str| {
            group == "$all"
                || self.groups.iter().any(|g| {
                    g.name.eq_ignore_ascii_case(group) && g.query.matches(&id.auth_name, attrs)
                })
        };
        let mut publish: Vec<String> = Vec::new();
        let mut subscribe: Vec<String> = Vec::new();
        for b in &self.bindings {
            if !member(&b.group) {
                continue;
            }
            let Some(space) = self
                .spaces
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&b.space))
            else {
                continue;
            };
            let out = match b.permission {
                Permission::Publisher => &mut publish,
                Permission::Subscriber => &mut subscribe,
            };
            for t in &space.templates {
                if let Some(f) = t.substitute(&id.auth_name, attrs)
                    && !out.contains(&f)
                {
                    out.push(f);
                }
            }
        }
        ClientPolicy::new(publish, subscribe)
    }
}

/// `s` with control characters escaped (`\u{..}`) and at most 128 characters: names reach
/// refusal reasons, and those reach log lines.
pub(crate) fn escape(s: &str) -> String {
    escape_max(s, 128)
}

/// [`escape`] keeping at most `max` characters of `s`.
pub(crate) fn escape_max(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max + 32));
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A registered client's attributes with a token's claims over them.
fn merged(client: &Attributes, claims: &Attributes) -> Attributes {
    let mut attrs = client.clone();
    attrs.extend(claims.iter().map(|(k, v)| (k.clone(), v.clone())));
    attrs
}

fn deny_bad(reason: &str) -> Decision {
    Decision::Deny(Denied::BadCredentials(reason.to_owned()))
}

fn disabled(client: &ClientDef) -> Decision {
    Decision::Deny(Denied::NotAuthorized(format!(
        "client '{}' is disabled",
        escape(&client.name)
    )))
}

fn registered(client: &ClientDef, method: AuthMethod) -> Identity {
    Identity {
        auth_name: client.auth_name.clone(),
        client: Some(client.name.clone()),
        attributes: client.attributes.clone(),
        claims: Attributes::new(),
        method,
        expires_ms: None,
    }
}

#[cfg(test)]
mod tests;
