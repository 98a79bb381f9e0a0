//! Password hashes for user name/password authentication (evgrid's extension, not an Event Grid
//! feature): PBKDF2-HMAC-SHA256 with a random salt, stored as one string.
//!
//! The salt is drawn by the caller (this module is pure); the iteration count is stored in the
//! hash so that it can rise later without invalidating existing hashes. Verification is constant
//! time (`ring::pbkdf2::verify`). Never logs or returns a password.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

/// Iterations of new hashes.
pub const ITERATIONS: u32 = 100_000;
/// Most iterations a stored hash may ask for (a hostile hash must not stall a CONNECT).
const MAX_ITERATIONS: u32 = 1_000_000;
const PREFIX: &str = "pbkdf2-sha256";
const HASH_LEN: usize = 32;

/// A stored hash: `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

/// The parts of a well-formed hash.
struct Parts {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn split(s: &str) -> Result<Parts, String> {
    let mut it = s.split('$');
    let (Some(prefix), Some(iter), Some(salt), Some(hash), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return Err(format!(
            "a password hash has the form {PREFIX}$<iterations>$<salt>$<hash>"
        ));
    };
    if prefix != PREFIX {
        return Err(format!("unknown password hash scheme (only {PREFIX})"));
    }
    let iterations = iter
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_ITERATIONS).contains(n))
        .and_then(NonZeroU32::new)
        .ok_or_else(|| format!("password hash iterations must be 1–{MAX_ITERATIONS}"))?;
    let salt = B64
        .decode(salt)
        .map_err(|_| "password hash salt is not base64".to_owned())?;
    if salt.len() < 8 {
        return Err("password hash salt is shorter than 8 bytes".into());
    }
    let hash = B64
        .decode(hash)
        .map_err(|_| "password hash is not base64".to_owned())?;
    if hash.len() != HASH_LEN {
        return Err(format!("password hash must be {HASH_LEN} bytes"));
    }
    Ok(Parts {
        iterations,
        salt,
        hash,
    })
}

impl PasswordHash {
    /// Hashes `password` with `salt` (16 random bytes the caller draws).
    pub fn new(password: &[u8], salt: [u8; 16]) -> PasswordHash {
        Self::with_iterations(password, salt, ITERATIONS)
    }

    /// A hash with another iteration count (tests use few: debug builds of ring are slow).
    pub(crate) fn with_iterations(
        password: &[u8],
        salt: [u8; 16],
        iterations: u32,
    ) -> PasswordHash {
        let n = NonZeroU32::new(iterations).expect("iterations are positive");
        let mut out = [0u8; HASH_LEN];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            n,
            &salt,
            password,
            &mut out,
        );
        PasswordHash(format!(
            "{PREFIX}${iterations}${}${}",
            B64.encode(salt),
            B64.encode(out)
        ))
    }

    /// A stored hash read back; `Err` says what is malformed.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        split(s)?;
        Ok(PasswordHash(s.to_owned()))
    }

    /// Constant-time check of `password`.
    pub fn verify(&self, password: &[u8]) -> bool {
        #[cfg(test)]
        VERIFIES.with(|v| v.set(v.get() + 1));
        let Ok(p) = split(&self.0) else {
            return false;
        };
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            p.iterations,
            &p.salt,
            password,
            &p.hash,
        )
        .is_ok()
    }
}

/// Spends the time one verification of a new hash takes, against a fixed dummy hash (the
/// result is ignored): a CONNECT with a password for a user name that has no hash must take as
/// long as one whose password is checked, or its timing tells which names are registered.
pub fn verify_dummy(password: &[u8]) {
    // Tests run unoptimised; the count only matters for timing, never for a decision.
    const DUMMY_ITERATIONS: u32 = if cfg!(test) { 1000 } else { ITERATIONS };
    static DUMMY: std::sync::LazyLock<PasswordHash> = std::sync::LazyLock::new(|| {
        PasswordHash::with_iterations(b"evgrid-dummy", [0x5a; 16], DUMMY_ITERATIONS)
    });
    let _ = DUMMY.verify(password);
}

#[cfg(test)]
thread_local! {
    /// Verifications run on this thread (tests check a flow spends one).
    pub(crate) static VERIFIES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = PasswordHash::new(b"s3cret", [7; 16]);
        assert!(h.0.starts_with("pbkdf2-sha256$100000$"));
        assert!(!h.0.contains('='), "no padding");
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cret "));
        assert!(!h.verify(b""));
        let back = PasswordHash::parse(&h.0).unwrap();
        assert!(back.verify(b"s3cret"));
        // Another salt, another hash.
        assert_ne!(PasswordHash::new(b"s3cret", [8; 16]), h);
    }

    #[test]
    fn stored_iteration_count_is_used() {
        let h = PasswordHash::with_iterations(b"pw", [1; 16], 1000);
        assert!(h.0.starts_with("pbkdf2-sha256$1000$"));
        assert!(PasswordHash::parse(&h.0).unwrap().verify(b"pw"));
        let changed = PasswordHash(h.0.replacen("$1000$", "$1001$", 1));
        assert!(!changed.verify(b"pw"));
    }

    #[test]
    fn malformed_hashes() {
        let good = PasswordHash::new(b"pw", [1; 16]).0;
        let parts: Vec<&str> = good.split('$').collect();
        for bad in [
            String::new(),
            "pbkdf2-sha256$1$a".into(),
            format!("bcrypt${}${}${}", parts[1], parts[2], parts[3]),
            format!("pbkdf2-sha256$0${}${}", parts[2], parts[3]),
            format!("pbkdf2-sha256$99999999999${}${}", parts[2], parts[3]),
            format!("pbkdf2-sha256$1000001${}${}", parts[2], parts[3]),
            format!("pbkdf2-sha256$x${}${}", parts[2], parts[3]),
            format!("pbkdf2-sha256$1000$!!${}", parts[3]),
            format!("pbkdf2-sha256$1000$AAAA${}", parts[3]),
            format!("pbkdf2-sha256$1000${}$AAAA", parts[2]),
            format!("{good}$extra"),
        ] {
            assert!(PasswordHash::parse(&bad).is_err(), "{bad}");
            assert!(!PasswordHash(bad).verify(b"pw"));
        }
    }
}
