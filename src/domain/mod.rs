//! Domain types and rules: what a tenant, an endpoint, an event or a delivery *is*, and the
//! pure rules about them (filter matching, retry timing, health). Nothing here knows about
//! HTTP frameworks, SQL or the clock of the process: callers pass `now`.

pub mod duration;
pub mod filter;
pub mod health;
pub mod ids;
pub mod model;
pub mod names;
pub mod retry;
pub mod secret;
pub mod source;
pub mod url;

pub use model::*;

/// A rule a request broke: a machine-readable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            code,
            message: message.into(),
        }
    }
}
