//! Custom JWTs for the identity tests: an RSA issuer and RS256 tokens, both made by openssl
//! (which `./scripts/test` installs), so no test signs with the code it checks.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An RSA key and its self-signed certificate (PEM) in `dir`, named after `tag`.
pub fn rsa_issuer(dir: &Path, tag: &str) -> (PathBuf, String) {
    rsa_self_signed(dir, tag, "issuer")
}

/// An RSA key and its self-signed certificate with common name `cn` (PEM) in `dir`, named after
/// `tag`.
pub fn rsa_self_signed(dir: &Path, tag: &str, cn: &str) -> (PathBuf, String) {
    let (key, crt) = (
        dir.join(format!("{tag}.key")),
        dir.join(format!("{tag}.pem")),
    );
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-subj", &format!("/CN={cn}")])
        .output()
        .expect("openssl (the test command installs it)");
    assert!(out.status.success(), "{out:?}");
    (key, std::fs::read_to_string(crt).unwrap())
}

/// A compact RS256 JWS over `claims`, signed by openssl with `key` (scratch file in `dir`).
pub fn token(dir: &Path, key: &Path, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        B64.encode(claims.to_string())
    );
    let file = dir.join("jwt-input");
    std::fs::write(&file, &input).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&file)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "{out:?}");
    format!("{input}.{}", B64.encode(out.stdout))
}
