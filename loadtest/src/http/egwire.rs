//! Event Grid wire details the HTTP modes write: the SAS token a publisher signs for itself
//! (docs/eventgrid.md §3) and the RFC 3339 UTC timestamps of `eventTime` and of a token's expiry.
//!
//! Pure functions: callers pass the time in, nothing here reads a clock, and nothing here
//! verifies a token (that is the server's job; the generator only has to sign like an SDK).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::http::h1::encode_component;

/// `r={enc resource}&e={enc expiry}&s={enc signature}`, the signature being
/// `base64(HMAC-SHA256(base64decode(key), "r=..&e=.."))` over the prefix exactly as it appears
/// in the token. Encoding is RFC 3986 (uppercase hex), as the worked example of
/// docs/eventgrid.md §3 has it.
/// Errors when the key is not base64: Event Grid keys always are, so anything else is a
/// mistyped key, which is better said here than as 401s from the server.
pub fn sas_token(resource: &str, expiry: &str, key_b64: &str) -> Result<String, String> {
    let trimmed = key_b64.trim();
    let key = STANDARD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed))
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            "--sas-key is not a base64 key (Event Grid keys are base64; to send a key as it is, use --key)"
                .to_string()
        })?;
    let unsigned = [
        "r=",
        &encode_component(resource),
        "&e=",
        &encode_component(expiry),
    ]
    .concat();
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|e| format!("cannot key HMAC-SHA256: {e}"))?
        .chain_update(unsigned.as_bytes())
        .finalize();
    let signature = STANDARD.encode(mac.into_bytes());
    Ok(unsigned + "&s=" + &encode_component(&signature))
}

fn leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` for `ns` since the Unix epoch, with `frac_digits` (0 to 9)
/// fractional digits: always the same length for a given `frac_digits`, which keeps
/// generated events at an exact size. Years are walked one by one: this runs once per
/// request, and the walk is obviously right where a closed-form date formula is not.
pub fn rfc3339_utc(ns: u64, frac_digits: usize) -> String {
    let secs = ns / 1_000_000_000;
    let mut days = secs / 86_400;
    let of_day = secs % 86_400;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 1;
    for (i, len) in [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        .into_iter()
        .enumerate()
    {
        let len = if i == 1 && leap(year) { 29 } else { len };
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    let mut out = format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}",
        days + 1,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    let digits = frac_digits.min(9);
    if digits > 0 {
        let frac = format!("{:09}", ns % 1_000_000_000);
        out.push('.');
        out.push_str(&frac[..digits]);
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test key of the worked examples in docs/eventgrid.md §3 (base64 of "this is a fake
    /// key for testing only!").
    const SPEC_KEY: &str = "dGhpcyBpcyBhIGZha2Uga2V5IGZvciB0ZXN0aW5nIG9ubHkh";

    #[test]
    fn sas_token_matches_the_spec_worked_examples() {
        assert_eq!(
            sas_token(
                "https://mytopic.westus2-1.eventgrid.azure.net/api/events",
                "2030-01-01T00:00:00Z",
                SPEC_KEY
            )
            .unwrap(),
            "r=https%3A%2F%2Fmytopic.westus2-1.eventgrid.azure.net%2Fapi%2Fevents&e=2030-01-01T00%3A00%3A00Z&s=vJRqnR50yJ548hK%2FdHpiQzWzvXBZpeEzA2KQ98oCTgQ%3D"
        );
        assert_eq!(
            sas_token(
                "https://myns.westus2-1.eventgrid.azure.net/topics/orders",
                "2030-01-01T00:00:00Z",
                SPEC_KEY
            )
            .unwrap(),
            "r=https%3A%2F%2Fmyns.westus2-1.eventgrid.azure.net%2Ftopics%2Forders&e=2030-01-01T00%3A00%3A00Z&s=H4s3w5RecVTx2oNwRyibMY8ud%2FC%2FxgsH3wyMxKMmrow%3D"
        );
        // unpadded base64 is the same key
        assert_eq!(
            sas_token("x", "y", SPEC_KEY.trim_end_matches('=')),
            sas_token("x", "y", SPEC_KEY)
        );
        let e = sas_token("x", "y", "not base64!").unwrap_err();
        assert!(e.contains("--sas-key") && e.contains("--key"), "{e}");
        assert!(sas_token("x", "y", "").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00Z");
        // 2030-01-01T00:00:00Z
        assert_eq!(
            rfc3339_utc(1_893_456_000_000_000_000, 0),
            "2030-01-01T00:00:00Z"
        );
        // a leap day, with 7 fractional digits as Azure writes them
        assert_eq!(
            rfc3339_utc(1_709_210_096_123_456_789, 7),
            "2024-02-29T12:34:56.1234567Z"
        );
        assert_eq!(
            rfc3339_utc(951_782_400_000_000_000, 3),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_utc(4_102_444_799_999_999_999, 9),
            "2099-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            rfc3339_utc(0, 7).len(),
            rfc3339_utc(4_102_444_799_000_000_000, 7).len()
        );
    }
}
