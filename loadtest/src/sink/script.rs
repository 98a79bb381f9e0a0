//! The statuses webhook-sink answers deliveries with: one status, a script of steps
//! (`503*3,200`), and every Nth delivery failing (`--fail-every`). Pure: the caller numbers the
//! deliveries; nothing here counts, sleeps or touches a socket.

/// Which status delivery `n` (1-based, in arrival order over all connections) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responder {
    /// (status, how many deliveries), in turn
    steps: Vec<(u16, u64)>,
    /// the status once the steps are used up
    rest: u16,
    /// (every, status): deliveries N, 2N, ... get this status instead
    fail_every: Option<(u64, u16)>,
}

/// A status a webhook may answer with; 1xx are interim answers, not answers.
fn status_code(s: &str, flag: &str) -> Result<u16, String> {
    let s = s.trim();
    match s.parse::<u16>() {
        Ok(c) if (200..=599).contains(&c) => Ok(c),
        _ => Err(format!(
            "{flag}: status '{s}' must be a number from 200 to 599"
        )),
    }
}

/// Parses `CODE[*N],...`: steps with a count in turn; the last may go without one and then
/// answers every delivery after the others; when all have a count the rest get 200.
pub fn parse_script(s: &str) -> Result<(Vec<(u16, u64)>, u16), String> {
    let flag = "--script";
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.iter().all(|p| p.is_empty()) {
        return Err(format!("{flag} is empty (example: \"503*3,200\")"));
    }
    let mut steps = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part.split_once('*') {
            Some((code, count)) => {
                let n = count
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        format!(
                            "{flag}: '{part}': the count after '*' must be a whole number above 0"
                        )
                    })?;
                steps.push((status_code(code, flag)?, n));
            }
            None if i + 1 == parts.len() => return Ok((steps, status_code(part, flag)?)),
            None => {
                return Err(format!(
                    "{flag}: '{part}' has no '*N' but is not the last step (only the last step can answer all the rest)"
                ));
            }
        }
    }
    Ok((steps, 200))
}

impl Responder {
    pub fn new(
        status: Option<u16>,
        script: Option<&str>,
        fail_every: Option<u64>,
        fail_status: u16,
    ) -> Result<Responder, String> {
        let (steps, rest) = match (status, script) {
            (_, Some(s)) => parse_script(s)?,
            (Some(c), None) => (Vec::new(), status_code(&c.to_string(), "--status")?),
            (None, None) => (Vec::new(), 200),
        };
        let fail_every = match fail_every {
            Some(0) => return Err("--fail-every must be at least 1".into()),
            Some(n) => Some((n, status_code(&fail_status.to_string(), "--fail-status")?)),
            None => None,
        };
        Ok(Responder {
            steps,
            rest,
            fail_every,
        })
    }

    /// The status of delivery `n` (1-based).
    pub fn status(&self, n: u64) -> u16 {
        if let Some((every, code)) = self.fail_every
            && n.is_multiple_of(every)
        {
            return code;
        }
        let mut k = n;
        for &(code, count) in &self.steps {
            if k <= count {
                return code;
            }
            k -= count;
        }
        self.rest
    }

    /// "503*3,200; every 10th 500" as the summary shows it.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.steps.iter().map(|(c, n)| format!("{c}*{n}")).collect();
        parts.push(self.rest.to_string());
        let mut s = parts.join(",");
        if let Some((every, code)) = self.fail_every {
            s.push_str(&format!("; every {every}th {code}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(r: &Responder, n: u64) -> Vec<u16> {
        (1..=n).map(|i| r.status(i)).collect()
    }

    #[test]
    fn scripts_parse() {
        assert_eq!(parse_script("503*3,200").unwrap(), (vec![(503, 3)], 200));
        assert_eq!(
            parse_script(" 500*2 , 429*1 ,204 ").unwrap(),
            (vec![(500, 2), (429, 1)], 204)
        );
        // all steps counted: the rest is 200
        assert_eq!(parse_script("503*2").unwrap(), (vec![(503, 2)], 200));
        assert_eq!(parse_script("404").unwrap(), (vec![], 404));
        for (bad, says) in [
            ("", "empty"),
            (" , ", "empty"),
            ("503*0,200", "above 0"),
            ("503*x", "above 0"),
            ("503*-1", "above 0"),
            ("200,503*3", "not the last step"),
            ("99", "200 to 599"),
            ("600", "200 to 599"),
            ("ok", "200 to 599"),
            ("503*3,", "200 to 599"),
        ] {
            let e = parse_script(bad).unwrap_err();
            assert!(
                e.contains(says) && e.starts_with("--script"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn answers_in_turn_with_every_nth_failing() {
        let r = Responder::new(None, Some("503*3,200"), None, 500).unwrap();
        assert_eq!(statuses(&r, 5), [503, 503, 503, 200, 200]);
        assert_eq!(r.describe(), "503*3,200");
        let r = Responder::new(None, Some("500*1,429*2"), Some(4), 503).unwrap();
        assert_eq!(statuses(&r, 8), [500, 429, 429, 503, 200, 200, 200, 503]);
        assert_eq!(r.describe(), "500*1,429*2,200; every 4th 503");
        let r = Responder::new(Some(202), None, None, 500).unwrap();
        assert_eq!(statuses(&r, 3), [202, 202, 202]);
        let r = Responder::new(None, None, Some(1), 500).unwrap();
        assert_eq!(statuses(&r, 2), [500, 500]);
        assert!(Responder::new(None, None, Some(0), 500).is_err());
        assert!(
            Responder::new(Some(100), None, None, 500)
                .unwrap_err()
                .contains("--status")
        );
        assert!(
            Responder::new(None, None, Some(3), 42)
                .unwrap_err()
                .contains("--fail-status")
        );
    }
}
