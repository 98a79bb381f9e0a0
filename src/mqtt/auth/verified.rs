//! Passwords this edge verified recently, so that a device fleet reconnecting after a network
//! blip or a restart of its gateway does not pay 100,000 PBKDF2 rounds per device again: a
//! reconnect storm of 10,000 password clients would otherwise take about a minute of CPU.
//!
//! What is kept is, per authentication name, an HMAC-SHA256 under a key drawn at start (never
//! stored, never logged) of the client's stored hash and the password that matched it. A hit
//! needs the same password against the same stored hash, so a changed password or a deleted
//! client misses; a wrong password is never recorded. The trade: someone who can read this
//! process's memory could test guesses against these tags at HMAC speed instead of PBKDF2's;
//! the stored hashes (in the data directory) keep their full cost.
//!
//! Never decides anything but "this password matched this hash before"; the directory still
//! checks the client's state and everything else.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use evgrid_actors::identity::password::PasswordHash;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Names remembered at most; past it the cache starts again (each name then pays one slow
/// verification more).
const CAPACITY: usize = 100_000;

pub(crate) struct Verified {
    /// `None` when the OS gave no randomness: nothing is cached then.
    key: Option<Vec<u8>>,
    tags: Mutex<HashMap<String, [u8; 32]>>,
}

impl Verified {
    pub fn new() -> Verified {
        Verified {
            key: evgrid_actors::model::keys::generate_key()
                .ok()
                .map(String::into_bytes),
            tags: Mutex::default(),
        }
    }

    fn mac(&self, hash: &PasswordHash, password: &[u8]) -> Option<Hmac<Sha256>> {
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_ref()?).ok()?;
        // The hash's length first: (hash, password) pairs cannot be shifted into one another.
        m.update(&(hash.0.len() as u64).to_be_bytes());
        m.update(hash.0.as_bytes());
        m.update(password);
        Some(m)
    }

    /// Whether `password` matched `hash` for `name` before (constant-time comparison).
    pub fn hit(&self, name: &str, hash: &PasswordHash, password: &[u8]) -> bool {
        let Some(tag) = self
            .tags
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(evgrid_actors::identity::fold(name).as_ref())
            .copied()
        else {
            return false;
        };
        self.mac(hash, password)
            .is_some_and(|m| m.verify_slice(&tag).is_ok())
    }

    /// `password` just matched `hash` for `name` by the slow check.
    pub fn record(&self, name: &str, hash: &PasswordHash, password: &[u8]) {
        let Some(m) = self.mac(hash, password) else {
            return;
        };
        let tag: [u8; 32] = m.finalize().into_bytes().into();
        let mut g = self.tags.lock().unwrap_or_else(PoisonError::into_inner);
        if g.len() >= CAPACITY {
            g.clear();
        }
        g.insert(evgrid_actors::identity::fold(name).into_owned(), tag);
    }
}
