//! Why a management, lookup or publish call of the grid failed.
//!
//! Owns [`GridError`]: each variant carries the context (which kind of resource, which name)
//! and its `Display` is the sentence Event Grid answers with, which the HTTP edge puts in the
//! body unchanged. The store's failures arrive here as their own variants, so the edge maps
//! them to a status without naming the store. Must never carry a key, a token or an event body.

use crate::store::StoreError;

/// How the error of a refused validation handshake begins.
pub const HANDSHAKE_FAILED: &str = "Webhook validation handshake failed";

/// Why a call failed; the HTTP edge maps each variant to a status and code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GridError {
    /// A resource named by a management call does not exist. Azure's sentence names only the
    /// kind; `name` is kept for logs and callers.
    #[error("The {kind} was not found.")]
    NotFound { kind: &'static str, name: String },
    /// A resource named by a data-plane call does not exist; the sentence names it and, when
    /// there is one, the parent it was looked for in.
    #[error("The {kind} '{name}' was not found{}.", in_parent(.parent))]
    NotFoundIn {
        kind: &'static str,
        name: String,
        parent: Option<(&'static str, String)>,
    },
    /// A `validationUrl` was visited for a subscription that is not waiting for one.
    #[error("No event subscription is waiting for this validation.")]
    NoPendingValidation,
    /// The request is invalid; the message says why.
    #[error("{0}")]
    BadRequest(String),
    /// The endpoint of a push subscription failed its validation handshake.
    #[error("{} for {url}: {why}.{}", HANDSHAKE_FAILED, guide_sentence(.guide))]
    Handshake {
        /// Without its query (which may hold a secret).
        url: String,
        why: String,
        /// The basic tier's wording, which points at Azure's validation guide.
        guide: bool,
    },
    /// The store is shutting down; nothing was stored.
    #[error("the store is shutting down")]
    Closed,
    /// The store cannot write at the moment (an earlier commit failed); nothing was applied.
    #[error("the store cannot write at the moment ({0})")]
    Unavailable(String),
    /// The data directory is at its free-space floor: new events are refused; nothing was
    /// applied.
    #[error("{0}")]
    Full(String),
    /// The store refused or failed the change; nothing was applied.
    #[error("{0}")]
    Internal(StoreError),
}

fn guide_sentence(guide: &bool) -> &'static str {
    if *guide {
        " The attempt to validate the provided endpoint failed; see https://aka.ms/esvalidation."
    } else {
        ""
    }
}

fn in_parent(parent: &Option<(&'static str, String)>) -> String {
    match parent {
        None => String::new(),
        // Subscriptions hang on a topic; topics sit in a namespace.
        Some(("topic", name)) => format!(" on topic '{name}'"),
        Some((kind, name)) => format!(" in {kind} '{name}'"),
    }
}

impl GridError {
    pub(crate) fn not_found(kind: &'static str, name: &str) -> GridError {
        GridError::NotFound {
            kind,
            name: name.to_string(),
        }
    }
}

impl From<StoreError> for GridError {
    fn from(e: StoreError) -> GridError {
        match e {
            StoreError::Closed => GridError::Closed,
            StoreError::Unavailable(why) => GridError::Unavailable(why),
            StoreError::Full(why) => GridError::Full(why),
            other => GridError::Internal(other),
        }
    }
}

impl GridError {
    /// Back to the store's error, for start-up (which reports store errors).
    pub fn into_store_error(self) -> StoreError {
        match self {
            GridError::Closed => StoreError::Closed,
            GridError::Unavailable(why) => StoreError::Unavailable(why),
            GridError::Full(why) => StoreError::Full(why),
            GridError::Internal(s) => s,
            other => StoreError::Refused(other.to_string()),
        }
    }
}
