//! Access keys: generating them and comparing secrets. The only copy of both in evgrid.
//!
//! Keys have the shape of Azure's: 32 random bytes from the OS, base64 (standard, padded). Must
//! never fall back to a weaker source of randomness (an error is returned instead), and must
//! never compare a secret in time that depends on where it differs.

use base64::Engine;

/// The OS could not provide randomness for a key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no OS randomness: {0}")]
pub struct KeyError(String);

/// A fresh access key: 32 random bytes from the OS, base64.
pub fn generate_key() -> Result<String, KeyError> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| KeyError(e.to_string()))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(b))
}

/// Constant-time byte comparison: the time depends only on the lengths, never on where the
/// bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_random_bytes_in_base64() {
        let (a, b) = (generate_key().unwrap(), generate_key().unwrap());
        assert_ne!(a, b);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
    }

    #[test]
    fn ct_eq_compares_content_and_length() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(ct_eq(b"", b""));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret1"));
        assert!(!ct_eq(b"", b"x"));
    }
}
