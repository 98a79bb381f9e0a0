//! `http://` and `https://` URLs as the flags give them: parsing (no query except in a
//! validation URL), the `Host` authority, and percent-encoding of path segments and query
//! values. Pure: no socket, no name resolution (that is `net::resolve`).

/// A parsed `http[s]://HOST[:PORT][/PATH]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// https: TLS (and port 443 unless given)
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `Host` header value: the host as given, with the port unless it is the scheme's default.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub base_path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.base_path)
    }
}

/// The URL without its scheme, and whether the scheme is https (no scheme: http).
fn split_scheme(s: &str) -> (bool, &str) {
    if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else {
        (false, s.strip_prefix("http://").unwrap_or(s))
    }
}

/// Parses `http[s]://HOST[:PORT][/PATH]` given to `flag` (named in the messages); no query.
pub fn parse_url(flag: &str, s: &str) -> Result<Url, String> {
    let s = s.trim();
    let (tls, rest) = split_scheme(s);
    if rest.contains("://") {
        return Err(format!(
            "{flag} {s}: only http:// and https:// URLs are supported"
        ));
    }
    let (hostport, path) = match rest.find(['/', '?', '#']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(_) => return Err(format!("{flag} {s}: no query or fragment allowed")),
        None => (rest, ""),
    };
    if path.contains(['?', '#']) {
        return Err(format!("{flag} {s}: no query or fragment allowed"));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{flag} {s}: unclosed '[' in the host"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(format!("{flag} {s}: bad host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{flag} {s}: no host"));
    }
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{flag} {s}: bad port '{p}'"))?,
        None if tls => 443,
        None => 80,
    };
    let default_port = if tls { 443 } else { 80 };
    let host_in_header = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    Ok(Url {
        tls,
        host: host.to_string(),
        port,
        authority: if port == default_port {
            host_in_header
        } else {
            format!("{host_in_header}:{port}")
        },
        base_path: path.trim_end_matches('/').to_string(),
    })
}

/// A URL that may carry a query (a webhook validation URL): the URL without it, and the
/// request target to send (path and query as given; a fragment is dropped).
pub fn parse_target(flag: &str, s: &str) -> Result<(Url, String), String> {
    let s = s.trim();
    let s = s.split_once('#').map_or(s, |(a, _)| a);
    let (base, query) = match s.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (s, None),
    };
    let url = parse_url(flag, base)?;
    let after_scheme = split_scheme(base).1;
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    Ok(match query {
        Some(q) => (url, format!("{path}?{q}")),
        None => (url, path.to_string()),
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters, with uppercase hex: a URL
/// path segment or query value, and the `r` and `e` fields of a SAS token (docs/eventgrid.md §3).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
