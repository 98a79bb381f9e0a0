//! A namespace's identity resources as Azure's ARM documents describe them (docs/eventgrid.md
//! §7.2–§7.5): `clients/{c}`, `caCertificates/{c}`, `clientGroups/{g}`, `topicSpaces/{t}` and
//! `permissionBindings/{b}` — validation of what a PUT carries, defaults, the `properties` a GET
//! shows, the per-namespace limits, and the checks between resources (unique authentication
//! names, bindings that name existing groups and spaces, groups and spaces still bound).
//!
//! Owns those rules and their error sentences; the parsed forms are [`crate::identity`]'s types,
//! which the grid assembles into a [`Directory`]. Pure: never touches the store, an actor, the
//! clock or randomness — a password's salt comes in as an argument, and so does the directory a
//! cross-resource check reads. A client's password (evgrid's extension) is hashed here and never
//! appears in the `properties` a GET shows.

use serde_json::{Map, Value, json};

use super::{get_obj, get_str, props_obj};
use crate::identity::cert::{CaCert, CertValidation, normalize_thumbprint};
use crate::identity::directory::{BindingDef, ClientDef, Directory, GroupDef, SpaceDef};
use crate::identity::password::PasswordHash;
use crate::identity::query::Query;
use crate::identity::template::Template;
use crate::identity::{AttrValue, Attributes, Permission};
use crate::model::time::format_rfc3339_ms;

/// Most clients a namespace may have (evgrid's bound; Azure scales it with throughput units).
pub const MAX_CLIENTS: usize = 10_000;
/// Most CA certificates a namespace may have.
pub const MAX_CA_CERTS: usize = 10;
/// Most client groups a namespace may have, besides the built-in `$all`.
pub const MAX_GROUPS: usize = 10;
/// Most topic spaces a namespace may have.
pub const MAX_SPACES: usize = 10;
/// Most permission bindings a namespace may have.
pub const MAX_BINDINGS: usize = 100;
/// Most topic templates in one topic space (docs/eventgrid.md §7.5).
pub const MAX_TEMPLATES: usize = 10;
/// Attributes of a client serialize to fewer bytes than this (docs/eventgrid.md §7.3).
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// Longest `authenticationName`, in characters (docs/eventgrid.md §7.3).
pub const MAX_AUTH_NAME_CHARS: usize = 128;
/// Longest `description` (evgrid's bound).
pub const MAX_DESCRIPTION_CHARS: usize = 4096;
/// The built-in client group that holds every client.
pub const ALL_GROUP: &str = "$all";

/// The five identity collections of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Client,
    CaCertificate,
    ClientGroup,
    TopicSpace,
    PermissionBinding,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Client,
        Kind::CaCertificate,
        Kind::ClientGroup,
        Kind::TopicSpace,
        Kind::PermissionBinding,
    ];

    /// The collection's path segment (`clients`, `caCertificates`, …).
    pub fn segment(self) -> &'static str {
        match self {
            Kind::Client => "clients",
            Kind::CaCertificate => "caCertificates",
            Kind::ClientGroup => "clientGroups",
            Kind::TopicSpace => "topicSpaces",
            Kind::PermissionBinding => "permissionBindings",
        }
    }

    /// The collection a path segment names, case-insensitively.
    pub fn from_segment(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.segment().eq_ignore_ascii_case(s))
    }

    /// The resource kind in sentences (`client group`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Client => "client",
            Kind::CaCertificate => "CA certificate",
            Kind::ClientGroup => "client group",
            Kind::TopicSpace => "topic space",
            Kind::PermissionBinding => "permission binding",
        }
    }

    /// The ARM `type`.
    pub fn arm_type(self) -> &'static str {
        match self {
            Kind::Client => "Microsoft.EventGrid/namespaces/clients",
            Kind::CaCertificate => "Microsoft.EventGrid/namespaces/caCertificates",
            Kind::ClientGroup => "Microsoft.EventGrid/namespaces/clientGroups",
            Kind::TopicSpace => "Microsoft.EventGrid/namespaces/topicSpaces",
            Kind::PermissionBinding => "Microsoft.EventGrid/namespaces/permissionBindings",
        }
    }

    /// Most resources of this kind per namespace (docs/eventgrid.md §7.2; `$all` not counted).
    pub fn limit(self) -> usize {
        match self {
            Kind::Client => MAX_CLIENTS,
            Kind::CaCertificate => MAX_CA_CERTS,
            Kind::ClientGroup => MAX_GROUPS,
            Kind::TopicSpace => MAX_SPACES,
            Kind::PermissionBinding => MAX_BINDINGS,
        }
    }
}

/// Resource names: 3–50 characters of letters, digits and hyphens (clients may also use colons).
pub fn check_name(kind: Kind, name: &str) -> Result<(), String> {
    if kind == Kind::ClientGroup && name.eq_ignore_ascii_case(ALL_GROUP) {
        return Err(builtin_all());
    }
    let colon = kind == Kind::Client;
    let ok = (3..=50).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (colon && b == b':'));
    if ok {
        return Ok(());
    }
    let chars = if colon {
        "letters, digits, hyphens and colons"
    } else {
        "letters, digits and hyphens"
    };
    Err(format!(
        "The {} name '{name}' is invalid: it must be 3 to 50 characters of {chars}.",
        kind.noun()
    ))
}

/// The sentence for a PUT or DELETE of `$all`.
pub fn builtin_all() -> String {
    format!("The client group '{ALL_GROUP}' is built in: it cannot be edited or deleted.")
}

/// The sentence for a creation past the limit of `kind`, which the namespace has reached.
pub fn check_limit(kind: Kind, existing: usize) -> Result<(), String> {
    let max = kind.limit();
    if existing < max {
        return Ok(());
    }
    let besides = if kind == Kind::ClientGroup {
        " besides the built-in '$all'"
    } else {
        ""
    };
    Err(format!(
        "The namespace already has {existing} {}s, the most it may have{besides} (limit {max}); delete one first.",
        kind.noun()
    ))
}

/// The `properties` a GET shows of the built-in `$all` group.
pub fn all_group_props() -> Value {
    json!({
        "provisioningState": "Succeeded",
        "description": "Every client of the namespace (built in).",
    })
}

fn description(m: &Map<String, Value>, out: &mut Value) -> Result<(), String> {
    if let Some(d) = get_str(m, "description", "properties.")? {
        // Azure states no bound; evgrid's keeps stored documents small.
        if d.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(format!(
                "properties.description may have at most {MAX_DESCRIPTION_CHARS} characters"
            ));
        }
        out["description"] = json!(d);
    }
    Ok(())
}

/// What a client PUT decided about the password (evgrid's extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordChange {
    /// `password` absent: the stored hash (if any) stays.
    Keep,
    /// `"password": null`: the stored hash is removed.
    Remove,
    /// A new password, hashed.
    Set(PasswordHash),
}

/// The password a client PUT carries (evgrid's extension), hashed with `salt`: absent keeps
/// the stored hash, `null` removes it. Separate from [`client`] so the caller can hash (slow on
/// purpose) before it takes the management lock.
pub fn password_change(props: &Value, salt: [u8; 16]) -> Result<PasswordChange, String> {
    let m = props_obj(props)?;
    Ok(match m.get("password") {
        None => PasswordChange::Keep,
        Some(Value::Null) => PasswordChange::Remove,
        Some(Value::String(s)) if s.is_empty() => {
            return Err("properties.password must not be empty (null removes it)".into());
        }
        Some(Value::String(s)) if s.len() > 1024 => {
            return Err("properties.password may have at most 1024 bytes".into());
        }
        Some(Value::String(s)) => PasswordChange::Set(PasswordHash::new(s.as_bytes(), salt)),
        Some(_) => return Err("properties.password must be a string (null removes it)".into()),
    })
}

/// Validates a client's `properties` (docs/eventgrid.md §7.3). `old` is the client when it
/// exists (its `authenticationName` cannot change, and its password hash stays unless the PUT
/// sets or removes it); `password` is what [`password_change`] made of the PUT. Answers the
/// client and the `properties` a GET shows (never the password).
pub fn client(
    name: &str,
    props: &Value,
    old: Option<&ClientDef>,
    password: PasswordChange,
) -> Result<(ClientDef, Value), String> {
    let m = props_obj(props)?;
    let p = "properties.";
    let auth_name = match get_str(m, "authenticationName", p)? {
        Some(a) => a.to_string(),
        None => old.map_or_else(|| name.to_string(), |o| o.auth_name.clone()),
    };
    let n = auth_name.chars().count();
    if n == 0 || n > MAX_AUTH_NAME_CHARS || auth_name.chars().any(char::is_control) {
        return Err(format!(
            "properties.authenticationName '{auth_name}' is invalid: it must be 1 to {MAX_AUTH_NAME_CHARS} characters, none of them control characters."
        ));
    }
    if let Some(o) = old
        && o.auth_name != auth_name
    {
        return Err(format!(
            "properties.authenticationName cannot be changed once the client exists: client '{name}' authenticates as '{}'; delete the client and create it again to change it.",
            o.auth_name
        ));
    }
    let enabled = match get_str(m, "state", p)? {
        None => true,
        Some(s) if s.eq_ignore_ascii_case("Enabled") => true,
        Some(s) if s.eq_ignore_ascii_case("Disabled") => false,
        Some(s) => {
            return Err(format!(
                "properties.state must be 'Enabled' or 'Disabled', got '{s}'"
            ));
        }
    };
    let (cert, cert_out) = cert_validation(get_obj(m, "clientCertificateAuthentication", p)?)?;
    let (attributes, attrs_out) = attributes(m.get("attributes"))?;
    let password = match password {
        PasswordChange::Keep => old.and_then(|o| o.password.clone()),
        PasswordChange::Remove => None,
        PasswordChange::Set(h) => Some(h),
    };
    let mut out = json!({
        "provisioningState": "Succeeded",
        "authenticationName": auth_name,
        "state": if enabled { "Enabled" } else { "Disabled" },
        "clientCertificateAuthentication": cert_out,
        "attributes": attrs_out,
    });
    description(m, &mut out)?;
    let def = ClientDef {
        name: name.to_string(),
        auth_name,
        enabled,
        attributes,
        cert,
        password,
    };
    Ok((def, out))
}

/// The authentication name of a new or changed client must be free in the namespace
/// (case-insensitively, docs/eventgrid.md §7.3): no other client may have it.
pub fn check_auth_name_free(dir: &Directory, client: &str, auth_name: &str) -> Result<(), String> {
    match dir.client(auth_name) {
        Some(c) if !c.name.eq_ignore_ascii_case(client) => Err(format!(
            "The authenticationName '{auth_name}' is already used by client '{}' in this namespace (authentication names are unique, case-insensitively).",
            c.name
        )),
        _ => Ok(()),
    }
}

const SCHEMES: &str = "SubjectMatchesAuthenticationName, DnsMatchesAuthenticationName, \
    UriMatchesAuthenticationName, IpMatchesAuthenticationName, EmailMatchesAuthenticationName \
    or ThumbprintMatch";

/// `clientCertificateAuthentication`: the scheme (default `SubjectMatchesAuthenticationName`)
/// and, for `ThumbprintMatch` only, 1–2 `allowedThumbprints`.
fn cert_validation(m: Option<&Map<String, Value>>) -> Result<(CertValidation, Value), String> {
    let p = "properties.clientCertificateAuthentication.";
    let empty = Map::new();
    let m = m.unwrap_or(&empty);
    let scheme = get_str(m, "validationScheme", p)?.unwrap_or("SubjectMatchesAuthenticationName");
    let thumbs = match m.get("allowedThumbprints") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => return Err(format!("{p}allowedThumbprints must be an array of strings")),
    };
    let canonical = [
        (
            "SubjectMatchesAuthenticationName",
            CertValidation::SubjectMatches,
        ),
        ("DnsMatchesAuthenticationName", CertValidation::DnsMatches),
        ("UriMatchesAuthenticationName", CertValidation::UriMatches),
        ("IpMatchesAuthenticationName", CertValidation::IpMatches),
        (
            "EmailMatchesAuthenticationName",
            CertValidation::EmailMatches,
        ),
    ];
    if scheme.eq_ignore_ascii_case("ThumbprintMatch") {
        let a = thumbs.filter(|a| !a.is_empty()).ok_or_else(|| {
            format!("{p}allowedThumbprints is required with validationScheme 'ThumbprintMatch': 1 or 2 certificate thumbprints")
        })?;
        if a.len() > 2 {
            return Err(format!(
                "{p}allowedThumbprints has {} entries; at most 2 are allowed",
                a.len()
            ));
        }
        let list = a
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let s = t
                    .as_str()
                    .ok_or_else(|| format!("{p}allowedThumbprints[{i}] must be a string"))?;
                normalize_thumbprint(s).map_err(|e| format!("{p}allowedThumbprints[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = json!({"validationScheme": "ThumbprintMatch", "allowedThumbprints": list});
        return Ok((CertValidation::Thumbprints(list), out));
    }
    let Some((name, v)) = canonical
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(scheme))
    else {
        return Err(format!(
            "{p}validationScheme '{scheme}' is not supported: use one of {SCHEMES}"
        ));
    };
    if thumbs.is_some_and(|a| !a.is_empty()) {
        return Err(format!(
            "{p}allowedThumbprints is only allowed with validationScheme 'ThumbprintMatch', not '{name}'"
        ));
    }
    Ok((v, json!({"validationScheme": name})))
}

/// `attributes`: keys `[A-Za-z0-9_]`, values an integer, a string, an array of strings or a
/// boolean; fewer than [`MAX_ATTRIBUTES_BYTES`] serialized (docs/eventgrid.md §7.3).
fn attributes(v: Option<&Value>) -> Result<(Attributes, Value), String> {
    let p = "properties.attributes";
    let m = match v {
        None | Some(Value::Null) => return Ok((Attributes::new(), json!({}))),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(format!("{p} must be a JSON object")),
    };
    let mut out = Attributes::new();
    for (k, v) in m {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!(
                "{p} key '{k}' is invalid: attribute names are letters, digits and underscores"
            ));
        }
        let bad = || {
            format!(
                "{p}.{k} must be an integer, a string, an array of strings or a boolean, got {v}"
            )
        };
        let val = match v {
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::String(s) => AttrValue::Str(s.clone()),
            Value::Number(n) => AttrValue::Int(n.as_i64().ok_or_else(bad)?),
            Value::Array(a) => AttrValue::Strs(
                a.iter()
                    .map(|s| s.as_str().map(str::to_string).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad()),
        };
        out.insert(k.clone(), val);
    }
    let size = Value::Object(m.clone()).to_string().len();
    if size >= MAX_ATTRIBUTES_BYTES {
        return Err(format!(
            "{p} is {size} bytes serialized; a client's attributes must be smaller than {MAX_ATTRIBUTES_BYTES} bytes"
        ));
    }
    Ok((out, Value::Object(m.clone())))
}

/// Validates a CA certificate's `properties` (`encodedCertificate`, PEM or base64 DER); a GET
/// shows the certificate's `expiryTimeInUtc` (read-only) too.
pub fn ca_certificate(name: &str, props: &Value) -> Result<(CaCert, Value), String> {
    let m = props_obj(props)?;
    let enc = get_str(m, "encodedCertificate", "properties.")?.ok_or_else(|| {
        "properties.encodedCertificate is required: the CA certificate, PEM or base64 DER"
            .to_string()
    })?;
    let ca = CaCert::parse(name, enc).map_err(|e| format!("properties.encodedCertificate: {e}"))?;
    let mut out = json!({"provisioningState": "Succeeded", "encodedCertificate": enc});
    if let Some(t) = ca.not_after_ms() {
        out["expiryTimeInUtc"] = json!(format_rfc3339_ms(t));
    }
    description(m, &mut out)?;
    Ok((ca, out))
}

/// Validates a client group's `properties`: its `query` must parse (docs/eventgrid.md §7.5).
pub fn client_group(name: &str, props: &Value) -> Result<(GroupDef, Value), String> {
    let m = props_obj(props)?;
    let text = get_str(m, "query", "properties.")?.ok_or_else(|| {
        "properties.query is required: a query over the clients' attributes, such as \"attributes.type IN ['sensor']\"".to_string()
    })?;
    let query = Query::parse(text).map_err(|e| format!("properties.query is invalid: {e}"))?;
    let mut out = json!({"provisioningState": "Succeeded", "query": text});
    description(m, &mut out)?;
    let def = GroupDef {
        name: name.to_string(),
        query,
    };
    Ok((def, out))
}

/// Validates a topic space's `properties`: 1–10 `topicTemplates` that parse.
pub fn topic_space(name: &str, props: &Value) -> Result<(SpaceDef, Value), String> {
    let m = props_obj(props)?;
    let p = "properties.topicTemplates";
    let list = match m.get("topicTemplates") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        None | Some(Value::Null) | Some(Value::Array(_)) => {
            return Err(format!(
                "{p} is required: 1 to {MAX_TEMPLATES} topic templates, such as \"devices/${{client.authenticationName}}/telemetry\""
            ));
        }
        Some(_) => return Err(format!("{p} must be an array of strings")),
    };
    if list.len() > MAX_TEMPLATES {
        return Err(format!(
            "{p} has {} templates; a topic space may have at most {MAX_TEMPLATES}",
            list.len()
        ));
    }
    let templates = list
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s = t
                .as_str()
                .ok_or_else(|| format!("{p}[{i}] must be a string"))?;
            Template::parse(s).map_err(|e| format!("{p}[{i}] '{s}' is invalid: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = json!({"provisioningState": "Succeeded", "topicTemplates": list});
    description(m, &mut out)?;
    let def = SpaceDef {
        name: name.to_string(),
        templates,
    };
    Ok((def, out))
}

/// Validates a permission binding's `properties`. The group and space it names are checked
/// against the namespace with [`check_binding_refs`].
pub fn permission_binding(name: &str, props: &Value) -> Result<(BindingDef, Value), String> {
    let m = props_obj(props)?;
    let p = "properties.";
    let group = get_str(m, "clientGroupName", p)?
        .ok_or("properties.clientGroupName is required: the client group the binding grants to")?;
    let space = get_str(m, "topicSpaceName", p)?
        .ok_or("properties.topicSpaceName is required: the topic space the binding grants on")?;
    let permission = match get_str(m, "permission", p)? {
        Some(s) if s.eq_ignore_ascii_case("Publisher") => Permission::Publisher,
        Some(s) if s.eq_ignore_ascii_case("Subscriber") => Permission::Subscriber,
        None => {
            return Err("properties.permission is required: 'Publisher' or 'Subscriber'".into());
        }
        Some(s) => {
            return Err(format!(
                "properties.permission must be 'Publisher' or 'Subscriber', got '{s}'"
            ));
        }
    };
    let mut out = json!({
        "provisioningState": "Succeeded",
        "clientGroupName": group,
        "topicSpaceName": space,
        "permission": match permission {
            Permission::Publisher => "Publisher",
            Permission::Subscriber => "Subscriber",
        },
    });
    description(m, &mut out)?;
    let def = BindingDef {
        name: name.to_string(),
        group: group.to_ascii_lowercase(),
        space: space.to_ascii_lowercase(),
        permission,
    };
    Ok((def, out))
}

/// The client group and topic space a binding names must exist in the namespace.
pub fn check_binding_refs(dir: &Directory, b: &BindingDef) -> Result<(), String> {
    if b.group != ALL_GROUP
        && !dir
            .groups
            .iter()
            .any(|g| g.name.eq_ignore_ascii_case(&b.group))
    {
        return Err(format!(
            "properties.clientGroupName names the client group '{}', which does not exist in this namespace; create it first.",
            b.group
        ));
    }
    if !dir
        .spaces
        .iter()
        .any(|s| s.name.eq_ignore_ascii_case(&b.space))
    {
        return Err(format!(
            "properties.topicSpaceName names the topic space '{}', which does not exist in this namespace; create it first.",
            b.space
        ));
    }
    Ok(())
}

/// A client group or topic space cannot be deleted while a permission binding names it.
pub fn check_unbound(dir: &Directory, kind: Kind, name: &str) -> Result<(), String> {
    let lc = name.to_ascii_lowercase();
    let bound = dir.bindings.iter().find(|b| match kind {
        Kind::ClientGroup => b.group == lc,
        Kind::TopicSpace => b.space == lc,
        _ => false,
    });
    match bound {
        Some(b) => Err(format!(
            "The {} '{name}' is used by the permission binding '{}'; delete or change the binding first.",
            kind.noun(),
            b.name
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
