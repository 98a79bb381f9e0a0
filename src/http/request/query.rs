//! The one query-string parser of the HTTP edge: splitting `a=1&b=2` into pairs
//! ([`raw_pairs`]), lenient percent-decoding ([`percent_decode`]), and the decoded pairs the
//! handlers look parameters up in ([`query_pairs`], [`param`]).
//!
//! Pure: no HTTP framework, no I/O. Must never panic on any input, and never fail: a malformed escape is
//! kept literally, so a bad parameter is reported by whoever reads it, with its value.

/// Query parameters as raw `(name, value)` pairs, not decoded; empty pieces (`a=1&&b`) are
/// skipped and a piece without `=` has an empty value.
pub fn raw_pairs(query: &str) -> Vec<(&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

/// The query parameters, parsed once: names and values percent-decoded (`+` stays `+`), bytes
/// that are not UTF-8 replaced.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    raw_pairs(query)
        .into_iter()
        .map(|(k, v)| (lossy(k), lossy(v)))
        .collect()
}

fn lossy(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode(s, false)).into_owned()
}

/// The first value of parameter `name` (ASCII case-insensitive).
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Lenient percent-decoding: `%XX` (either case) becomes a byte; a `%` not followed by two hex
/// digits is kept literally; `+` becomes a space only if `plus_as_space`.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => match (
                b.get(i + 1).copied().and_then(hex_val),
                b.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_as_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_is_lenient() {
        let q = query_pairs("api-version=2024-06-01&maxEvents=10&x=%2F%zz&&flag");
        assert_eq!(param(&q, "API-VERSION"), Some("2024-06-01"));
        assert_eq!(param(&q, "maxevents"), Some("10"));
        assert_eq!(param(&q, "x"), Some("/%zz"));
        assert_eq!(param(&q, "flag"), Some(""));
        assert_eq!(lossy("%"), "%");
        assert_eq!(lossy("a%4"), "a%4");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%2fc", false), b"a/b/c");
        assert_eq!(percent_decode("a+b", false), b"a+b");
        assert_eq!(percent_decode("a+b", true), b"a b");
        assert_eq!(percent_decode("%", false), b"%");
        assert_eq!(percent_decode("%4", false), b"%4");
        assert_eq!(percent_decode("%41", false), b"A");
        assert_eq!(percent_decode("x%4", false), b"x%4");
        assert_eq!(percent_decode("%zz%41%", false), b"%zzA%");
        assert_eq!(percent_decode("%FF", false), [0xff]);
        assert_eq!(percent_decode("é%", false), "é%".as_bytes());
    }
}
