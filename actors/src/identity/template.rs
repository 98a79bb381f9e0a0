//! Topic templates (docs/eventgrid.md §7.5): MQTT topic filters with the variables
//! `${client.authenticationName}` and `${client.attributes.<key>}`, each a whole segment or part
//! of one, never spanning segments.
//!
//! A template is checked at PUT against the MQTT limits of docs/eventgrid.md §7.2 (15 segments,
//! 256 bytes) and the topic filter rules (`#` only as the whole last segment, `+` only as a whole
//! segment); shared-subscription filters (`$share/…`) are not templates. Substitution happens at
//! CONNECT and on change, never on the publish path.

use super::{AttrValue, Attributes};

/// Most segments of a topic or filter (docs/eventgrid.md §7.2).
pub const MAX_SEGMENTS: usize = 15;
/// Most bytes of a topic or filter (docs/eventgrid.md §7.2).
pub const MAX_BYTES: usize = 256;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The text as given.
    pub text: String,
    /// The segments, each a sequence of literal text and variables.
    segments: Vec<Vec<Part>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    AuthName,
    Attr(String),
}

impl Template {
    /// Parses and validates `text` (a valid MQTT topic filter once variables are substituted;
    /// known variables only; none spanning segments).
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.is_empty() {
            return Err("a topic template cannot be empty".into());
        }
        if text.len() > MAX_BYTES {
            return Err(format!(
                "the topic template is {} bytes long; at most {MAX_BYTES} are allowed",
                text.len()
            ));
        }
        if text.contains('\0') {
            return Err("a topic template cannot contain NUL".into());
        }
        if text.starts_with("$share/") || text == "$share" {
            return Err("a topic template cannot be a shared subscription filter ($share)".into());
        }
        let raw: Vec<&str> = text.split('/').collect();
        if raw.len() > MAX_SEGMENTS {
            return Err(format!(
                "the topic template has {} segments; at most {MAX_SEGMENTS} are allowed",
                raw.len()
            ));
        }
        let last = raw.len() - 1;
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.iter().enumerate() {
            let parts = parse_segment(seg)?;
            let has_var = parts.iter().any(|p| !matches!(p, Part::Lit(_)));
            for p in &parts {
                if let Part::Lit(l) = p
                    && (l.contains('+') || l.contains('#'))
                    && (has_var || l.len() != 1)
                {
                    return Err(format!(
                        "'+' and '#' must be a whole segment of the topic template, not part of '{seg}'"
                    ));
                }
            }
            if *seg == "#" && i != last {
                return Err("'#' must be the last segment of the topic template".into());
            }
            segments.push(parts);
        }
        Ok(Template {
            text: text.to_owned(),
            segments,
        })
    }

    /// The filter for a client with these values; `None` when a variable has no value (the
    /// template then grants nothing to that client) or a value would add a segment, `+` or `#`.
    pub fn substitute(&self, auth_name: &str, attrs: &Attributes) -> Option<String> {
        let mut out = String::with_capacity(self.text.len());
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            for part in seg {
                match part {
                    Part::Lit(l) => out.push_str(l),
                    Part::AuthName => push_value(&mut out, auth_name)?,
                    Part::Attr(key) => match attrs.get(key)? {
                        AttrValue::Str(s) => push_value(&mut out, s)?,
                        AttrValue::Int(n) => out.push_str(&n.to_string()),
                        AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                        AttrValue::Strs(_) => return None,
                    },
                }
            }
        }
        (out.len() <= MAX_BYTES).then_some(out)
    }
}

/// Appends a substituted value unless it is empty or would change the filter's structure. A
/// value beginning with `$` is refused wherever it stands: as a first segment it would reach
/// `$SYS/…` or build a `$share/…` filter, and no client's name or attribute may do either.
fn push_value(out: &mut String, v: &str) -> Option<()> {
    if v.is_empty() || v.starts_with('$') || v.contains(['/', '+', '#', '\0']) {
        return None;
    }
    out.push_str(v);
    Some(())
}

fn parse_segment(seg: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = seg;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Lit(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "unterminated variable '${{{after}' in the topic template (a variable ends with '}}' within its segment)"
            ));
        };
        let name = &after[..end];
        parts.push(variable(name)?);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Part::Lit(rest.to_owned()));
    }
    Ok(parts)
}

fn variable(name: &str) -> Result<Part, String> {
    if name == "client.authenticationName" {
        return Ok(Part::AuthName);
    }
    if let Some(key) = name.strip_prefix("client.attributes.")
        && !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(Part::Attr(key.to_owned()));
    }
    Err(format!(
        "unknown variable '${{{name}}}' in the topic template (known: ${{client.authenticationName}}, ${{client.attributes.<key>}})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        let mut a = Attributes::new();
        a.insert("floor".into(), AttrValue::Int(3));
        a.insert("site".into(), AttrValue::Str("berlin".into()));
        a.insert("on".into(), AttrValue::Bool(false));
        a.insert("tags".into(), AttrValue::Strs(vec!["a".into()]));
        a.insert("bad".into(), AttrValue::Str("a/b".into()));
        a.insert("plus".into(), AttrValue::Str("+".into()));
        a.insert("hash".into(), AttrValue::Str("x#".into()));
        a.insert("empty".into(), AttrValue::Str(String::new()));
        a.insert("dollar".into(), AttrValue::Str("$share".into()));
        a
    }

    fn sub(t: &str, name: &str) -> Option<String> {
        Template::parse(t).unwrap().substitute(name, &attrs())
    }

    #[test]
    fn substitutes_whole_and_partial_segments() {
        assert_eq!(
            sub("machines/${client.authenticationName}/temp", "dev-1").as_deref(),
            Some("machines/dev-1/temp")
        );
        assert_eq!(
            sub(
                "machines/${client.authenticationName}.factory1/temp",
                "dev-1"
            )
            .as_deref(),
            Some("machines/dev-1.factory1/temp")
        );
        assert_eq!(
            sub(
                "s/${client.attributes.site}-${client.attributes.floor}/${client.attributes.on}/#",
                "x"
            )
            .as_deref(),
            Some("s/berlin-3/false/#")
        );
        assert_eq!(sub("a/+/b", "x").as_deref(), Some("a/+/b"));
        assert_eq!(sub("$SYS/x", "x").as_deref(), Some("$SYS/x"));
        assert_eq!(sub("a/$x/b", "x").as_deref(), Some("a/$x/b"));
    }

    #[test]
    fn substitution_refuses_missing_arrays_and_structural_values() {
        assert_eq!(sub("a/${client.attributes.nope}", "x"), None);
        assert_eq!(sub("a/${client.attributes.tags}", "x"), None);
        assert_eq!(sub("a/${client.attributes.bad}", "x"), None);
        assert_eq!(sub("a/${client.attributes.plus}", "x"), None);
        assert_eq!(sub("a/${client.attributes.hash}", "x"), None);
        assert_eq!(sub("a/${client.attributes.empty}", "x"), None);
        assert_eq!(sub("a/${client.authenticationName}", "a/b"), None);
        assert_eq!(sub("a/${client.authenticationName}", "#"), None);
        assert_eq!(sub("a/${client.authenticationName}", "a\0"), None);
        // `$`-leading values: never `$SYS/#` or `$share/…` from a name or attribute.
        assert_eq!(sub("${client.authenticationName}/#", "$SYS"), None);
        assert_eq!(sub("${client.attributes.dollar}/g/#", "x"), None);
        assert_eq!(sub("a/${client.authenticationName}", "$x"), None);
        assert_eq!(sub("a/x${client.authenticationName}", "$x"), None);
        assert_eq!(
            sub("a/${client.authenticationName}", "x$").as_deref(),
            Some("a/x$")
        );
        let long = "x".repeat(255);
        assert_eq!(sub("a/${client.authenticationName}", &long), None);
    }

    #[test]
    fn parse_errors() {
        let e = Template::parse("a/${client.foo}/b").unwrap_err();
        assert!(e.contains("unknown variable '${client.foo}'"), "{e}");
        let e = Template::parse("a/${client.authenticationName").unwrap_err();
        assert!(e.contains("unterminated variable"), "{e}");
        let e = Template::parse("a/${client.attributes.x/y}").unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        assert!(Template::parse("a/${client.attributes.}").is_err());
        assert!(Template::parse("a/${client.attributes.a-b}").is_err());
        assert!(Template::parse("a/#/b").is_err());
        assert!(Template::parse("a/b#").is_err());
        assert!(Template::parse("a/b+").is_err());
        assert!(Template::parse("a/+${client.authenticationName}").is_err());
        assert!(Template::parse("").is_err());
        assert!(
            Template::parse("$share/g/a")
                .unwrap_err()
                .contains("$share")
        );
        assert!(Template::parse("a\0b").is_err());
        let segs = vec!["a"; 16].join("/");
        assert!(Template::parse(&segs).unwrap_err().contains("16 segments"));
        assert!(Template::parse(&vec!["a"; 15].join("/")).is_ok());
        assert!(
            Template::parse(&"a".repeat(257))
                .unwrap_err()
                .contains("257 bytes")
        );
        assert!(Template::parse("#").is_ok());
        assert!(Template::parse("+/+/#").is_ok());
        assert!(Template::parse("/a//").is_ok());
    }
}
