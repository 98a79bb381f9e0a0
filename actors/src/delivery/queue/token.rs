//! Lock tokens and why one fails: `base64url(sequence ‖ 64 random bits)`, opaque and not guessable; a redelivery
//! draws new random bits, so a token is stale as soon as its lock ends. Must never be parsed
//! into anything but the pair it was made from.

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub(super) fn token(seq: u64, nonce: u64) -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&seq.to_be_bytes());
    b[8..].copy_from_slice(&nonce.to_be_bytes());
    URL_SAFE_NO_PAD.encode(b)
}

pub(super) fn parse_token(t: &str) -> Option<(u64, u64)> {
    if t.len() != 22 {
        return None;
    }
    let mut b = [0u8; 16];
    let n = URL_SAFE_NO_PAD.decode_slice(t, &mut b).ok()?;
    (n == 16).then(|| {
        (
            u64::from_be_bytes(b[..8].try_into().expect("8")),
            u64::from_be_bytes(b[8..].try_into().expect("8")),
        )
    })
}

pub(super) fn nonce() -> u64 {
    // Falls back to a hash of the time only if the OS has no randomness at all; tokens are then
    // still unique, just guessable, and the failure is logged.
    getrandom::u64().unwrap_or_else(|e| {
        tracing::error!(error = %e, "no OS randomness for lock tokens");
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(Instant::now())
    })
}

/// Why a lock token failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token this server issues.
    BadToken,
    /// The lock expired, was settled, or the event was redelivered since.
    TokenLost,
    /// Renewal past the one-hour limit.
    LockAgeExceeded,
}

impl TokenError {
    pub fn code(self) -> &'static str {
        match self {
            TokenError::BadToken => "BadToken",
            TokenError::TokenLost | TokenError::LockAgeExceeded => "TokenLost",
        }
    }
    pub fn message(self) -> &'static str {
        match self {
            TokenError::BadToken => "The lock token is malformed or was not issued by this server.",
            TokenError::TokenLost => {
                "Token has expired or is no longer valid (settled, or the event was redelivered)."
            }
            TokenError::LockAgeExceeded => {
                "The lock cannot be renewed: it was first taken more than one hour ago."
            }
        }
    }
}
