//! The few date and duration formats Event Grid's resources and records use: RFC 3339 UTC
//! timestamps and ISO 8601 durations. Pure functions; no clock reads here.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2024-05-01T10:00:00.123Z` for a time in ms since the epoch.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let mut b = Vec::with_capacity(24);
    write_rfc3339_ms(&mut b, ms);
    // Only ASCII digits and separators were written.
    String::from_utf8(b).unwrap_or_default()
}

/// [`format_rfc3339_ms`] appended to a buffer, without an intermediate string.
pub fn write_rfc3339_ms(b: &mut Vec<u8>, ms: u64) {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut num = |n: u64, width: u32, sep: u8| {
        let mut p = 10u64.pow(width - 1);
        while p > 0 {
            b.push(b'0' + (n / p % 10) as u8);
            p /= 10;
        }
        b.push(sep);
    };
    num(y.clamp(0, 9999) as u64, 4, b'-');
    num(mo as u64, 2, b'-');
    num(d as u64, 2, b'T');
    num((s / 3600) as u64, 2, b':');
    num((s / 60 % 60) as u64, 2, b':');
    num((s % 60) as u64, 2, b'.');
    num(ms % 1000, 3, b'Z');
}

/// Parses an RFC 3339 timestamp (`Z` or `±HH:MM`, optional fraction) to ms since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0u64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + (b[i] - b'0') as u64;
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..3 {
            frac_ms *= 10;
        }
    }
    let offset_secs: i64 = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && tz.is_ascii() && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh: i64 = tz[1..3].parse().ok()?;
            let om: i64 = tz[4..6].parse().ok()?;
            if &tz[3..4] != ":" {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if tz.starts_with('-') { -v } else { v }
        }
        _ => return None,
    };
    let secs =
        days_from_civil(y as i64, mo, d) * 86_400 + h as i64 * 3600 + mi as i64 * 60 + sec as i64
            - offset_secs;
    u64::try_from(secs).ok().map(|s| s * 1000 + frac_ms)
}

/// The shape of an RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T`/`Z` in
/// either case, with field ranges checked (leap seconds are refused: common consumers, such as
/// Python's `datetime`, cannot represent them).
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    if date_time(b).is_none() {
        return false;
    }
    let mut i = 19;
    if byte_in(b, i, b".") {
        i += 1;
        let start = i;
        while byte_in(b, i, b"0123456789") {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i..).unwrap_or_default() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => matches!(
            (digits(b, i + 1, 2), digits(b, i + 4, 2)),
            (Some(h), Some(m)) if h <= 23 && m <= 59
        ),
        _ => false,
    }
}

/// `YYYY-MM-DDTHH:MM:SS` at the start of `b`, with a real calendar date.
fn date_time(b: &[u8]) -> Option<()> {
    let year = digits(b, 0, 4)?;
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let separators = byte_in(b, 4, b"-")
        && byte_in(b, 7, b"-")
        && byte_in(b, 10, b"Tt")
        && byte_in(b, 13, b":")
        && byte_in(b, 16, b":");
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    (separators && (1..=days).contains(&day) && hour <= 23 && minute <= 59 && second <= 59)
        .then_some(())
}

/// The decimal value of the `len` ASCII digits at `at`, if they are all there.
fn digits(b: &[u8], at: usize, len: usize) -> Option<u32> {
    b.get(at..at.checked_add(len)?)?
        .iter()
        .try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
}

fn byte_in(b: &[u8], at: usize, set: &[u8]) -> bool {
    b.get(at).is_some_and(|c| set.contains(c))
}

/// Parses an ISO 8601 duration (`P1D`, `PT1M`, `P1DT12H`, `PT30S`, `P1W`) to seconds.
/// Years and months are refused: their length is not fixed.
pub fn parse_duration_secs(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0u64;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' | 't' if num.is_empty() && !in_time => in_time = true,
            _ => {
                let n: u64 = num.parse().ok()?;
                num.clear();
                let unit = match (in_time, c.to_ascii_uppercase()) {
                    (false, 'W') => 7 * 86_400,
                    (false, 'D') => 86_400,
                    (true, 'H') => 3600,
                    (true, 'M') => 60,
                    (true, 'S') => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
                any = true;
            }
        }
    }
    (num.is_empty() && any).then_some(total)
}

/// Formats seconds as an ISO 8601 duration in the form Azure echoes (`P1D`, `PT1H30M`).
pub fn format_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::from("P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if h > 0 || m > 0 || s > 0 || d == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 || (h == 0 && m == 0) {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let ms = parse_rfc3339_ms("2024-05-01T10:00:00.123Z").unwrap();
        assert_eq!(ms, 1_714_557_600_123);
        assert_eq!(format_rfc3339_ms(ms), "2024-05-01T10:00:00.123Z");
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_893_456_000_007),
            "2030-01-01T00:00:00.007Z"
        );
        let mut b = b"x".to_vec();
        write_rfc3339_ms(&mut b, 1_714_557_600_123);
        assert_eq!(b, b"x2024-05-01T10:00:00.123Z");
        assert!(is_rfc3339("2024-05-01T10:00:00.123Z"));
        assert!(!is_rfc3339("2024-02-30T10:00:00Z"));
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T12:00:00+02:00").unwrap(),
            1_714_557_600_000
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2030-01-01T00:00:00.1234567Z"),
            Some(1_893_456_000_123)
        );
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T00:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("P1D"), Some(86_400));
        assert_eq!(parse_duration_secs("PT1M"), Some(60));
        assert_eq!(parse_duration_secs("P1DT12H30M5S"), Some(131_405));
        assert_eq!(parse_duration_secs("P1W"), Some(604_800));
        for bad in ["", "P", "PT", "1D", "P1M", "PT1D", "P1.5D", "PT5"] {
            assert_eq!(parse_duration_secs(bad), None, "{bad}");
        }
        assert_eq!(format_duration(86_400), "P1D");
        assert_eq!(format_duration(5400), "PT1H30M");
        assert_eq!(format_duration(60), "PT1M");
        assert_eq!(format_duration(0), "PT0S");
    }
}
