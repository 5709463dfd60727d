//! The contract between a receive handler and a provider preset: what a verifier is given
//! ([`InboundRequest`], [`SourceSettings`], [`VerifyContext`]), what it answers ([`Verified`]
//! or [`VerifyError`]), and the [`Verifier`] trait itself.
//!
//! A verifier must never trust a request it could not authenticate, except for the one
//! outcome that says so in its name ([`Handshake::UnconfirmedToken`]); never read the
//! process clock (the caller injects `now`); and never fail a request only because the
//! event facts could not be read once the signature holds: those are best effort.

use chrono::{DateTime, Utc};
use http::HeaderMap;

use super::settings::{SourceSecret, SourceSettings};

/// One request to a source, exactly as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    pub method: &'a str,
    /// The full public URL the provider called, query included (Twilio and Square sign it).
    pub url: &'a str,
    pub headers: &'a HeaderMap,
    /// The raw body: what every signature is checked against.
    pub body: &'a [u8],
}

impl<'a> InboundRequest<'a> {
    /// A header's value; `None` when absent. Names are case-insensitive.
    pub(crate) fn header(&self, name: &str) -> Result<Option<&'a str>, VerifyError> {
        match self.headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|v| Some(v.trim()))
                .map_err(|_| VerifyError::Malformed(format!("header {name} is not visible ASCII"))),
        }
    }

    /// A header that must be present; `missing` is the error when it is not.
    pub(crate) fn required_header(
        &self,
        name: &str,
        missing: VerifyError,
    ) -> Result<&'a str, VerifyError> {
        self.header(name)?.ok_or(missing)
    }

    /// A header carrying a UNIX time in seconds, as sent (signatures cover the text) and as
    /// a number; [`VerifyError::MissingTimestamp`] when absent.
    pub(crate) fn timestamp_header(&self, name: &str) -> Result<(&'a str, i64), VerifyError> {
        let text = self.required_header(name, VerifyError::MissingTimestamp)?;
        let seconds = text
            .parse()
            .map_err(|_| VerifyError::Malformed(format!("header {name} is not a UNIX time")))?;
        Ok((text, seconds))
    }

    /// A header's value when present and visible ASCII; for event facts, which are best effort.
    pub(crate) fn header_fact(&self, name: &str) -> Option<String> {
        self.header(name)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// What the verifier may know about the world besides the request: the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyContext {
    pub now: DateTime<Utc>,
}

impl VerifyContext {
    pub fn at(now: DateTime<Utc>) -> Self {
        VerifyContext { now }
    }

    /// Replay protection: `sent_at` (UNIX seconds) within `tolerance_s` of now, either way.
    pub(crate) fn check_fresh(&self, sent_at: i64, tolerance_s: u64) -> Result<(), VerifyError> {
        self.check_fresh_millis(sent_at.saturating_mul(1000), tolerance_s)
    }

    /// As [`Self::check_fresh`], for a time in UNIX milliseconds.
    pub(crate) fn check_fresh_millis(
        &self,
        sent_at_ms: i64,
        tolerance_s: u64,
    ) -> Result<(), VerifyError> {
        let skew_ms = self.now.timestamp_millis().abs_diff(sent_at_ms);
        if skew_ms > tolerance_s.saturating_mul(1000) {
            return Err(VerifyError::StaleTimestamp);
        }
        Ok(())
    }
}

/// What a request proved and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verified {
    /// The event the request carries, as far as the provider says (dedupe and routing keys).
    /// For a batch, the facts all its events share.
    pub event: EventInfo,
    /// One entry per event when one request carries several (SendGrid's arrays, Salesforce's
    /// notifications); empty otherwise. The caller dedupes each on its own id.
    pub batch: Vec<EventInfo>,
    /// What to answer instead of a plain 2xx, when the provider expects a particular body.
    pub reply: Option<Reply>,
    /// Set when the request is part of the provider's set-up rather than an event to route.
    pub handshake: Option<Handshake>,
}

impl Verified {
    pub(crate) fn event(event: EventInfo) -> Self {
        Verified {
            event,
            ..Verified::default()
        }
    }

    /// Whether the request carries events to store and route (handshakes do not).
    pub fn is_event(&self) -> bool {
        self.handshake.is_none()
    }
}

/// The facts a provider gives about one event. Every field is optional: providers differ,
/// and a verified request whose body cannot be read still counts as verified.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventInfo {
    /// The provider's id for the event or delivery, stable across its retries.
    pub id: Option<String>,
    pub event_type: Option<String>,
    /// When the event happened, as the provider reports it (not when it was sent).
    pub occurred_at: Option<DateTime<Utc>>,
}

/// A body the provider expects back (status and content included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A provider's set-up exchange: answered, logged, never routed as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// A signed check that the endpoint answers (Slack `url_verification`, Zoom
    /// `endpoint.url_validation`); [`Verified::reply`] holds the answer.
    Challenge,
    /// A signed liveness ping (GitHub `ping`); a plain 2xx answers it.
    Ping,
    /// An UNSIGNED request carrying a token the provider wants the operator to paste back
    /// into the provider's console (Notion's `verification_token`). Nothing in it is
    /// authenticated: keep it for an operator to confirm, never adopt it as a secret
    /// automatically, and route nothing.
    UnconfirmedToken(SourceSecret),
}

/// Why a request was rejected. [`VerifyError::code`] is what the source log and metrics
/// record; the message is for humans and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("no configured secret or key produces this signature")]
    BadSignature,
    #[error("the token is missing")]
    MissingToken,
    #[error("the token matches no configured token")]
    BadToken,
    #[error("the timestamp is missing")]
    MissingTimestamp,
    #[error("the timestamp is outside the tolerance (a replay, or a clock far off)")]
    StaleTimestamp,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("signing algorithm `{0}` is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("the token names a key that is not in the configured key set")]
    UnknownKey,
    #[error("the token was issued by an unexpected issuer")]
    BadIssuer,
    #[error("the token is for another audience")]
    BadAudience,
    #[error("the token's email is not a configured, verified service account")]
    BadEmail,
    #[error("the organization id is not the configured one")]
    BadOrganization,
    #[error("the source is misconfigured: {0}")]
    Misconfigured(String),
}

impl VerifyError {
    /// The stable, machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature => "missing_signature",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::MissingToken => "missing_token",
            VerifyError::BadToken => "bad_token",
            VerifyError::MissingTimestamp => "missing_timestamp",
            VerifyError::StaleTimestamp => "stale_timestamp",
            VerifyError::Malformed(_) => "malformed",
            VerifyError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::BadIssuer => "bad_issuer",
            VerifyError::BadAudience => "bad_audience",
            VerifyError::BadEmail => "bad_email",
            VerifyError::BadOrganization => "bad_organization",
            VerifyError::Misconfigured(_) => "misconfigured",
        }
    }

    pub(crate) fn malformed(what: impl Into<String>) -> Self {
        VerifyError::Malformed(what.into())
    }
}

/// One provider's verification scheme. Implementations are unit structs listed in
/// [`crate::inbound::providers::all`].
pub trait Verifier: Send + Sync {
    /// The provider's name, as sources store it (`"github"`, `"standard_webhooks"`, ...).
    fn name(&self) -> &'static str;

    /// Checks that `request` comes from the provider the `settings` describe, at `ctx.now`.
    /// Settings for another provider are [`VerifyError::Misconfigured`].
    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_error_has_its_own_code() {
        let all = [
            VerifyError::MissingSignature,
            VerifyError::BadSignature,
            VerifyError::MissingToken,
            VerifyError::BadToken,
            VerifyError::MissingTimestamp,
            VerifyError::StaleTimestamp,
            VerifyError::malformed("x"),
            VerifyError::UnsupportedAlgorithm("none".into()),
            VerifyError::UnknownKey,
            VerifyError::BadIssuer,
            VerifyError::BadAudience,
            VerifyError::BadEmail,
            VerifyError::BadOrganization,
            VerifyError::Misconfigured("x".into()),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(VerifyError::code).collect();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn freshness_is_symmetric_and_inclusive() {
        let ctx = VerifyContext::at(Utc.timestamp_opt(1_000, 0).unwrap());
        assert_eq!(ctx.check_fresh(700, 300), Ok(()));
        assert_eq!(ctx.check_fresh(1_300, 300), Ok(()));
        assert_eq!(ctx.check_fresh(699, 300), Err(VerifyError::StaleTimestamp));
        assert_eq!(
            ctx.check_fresh(1_301, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(
            ctx.check_fresh(i64::MIN, 300),
            Err(VerifyError::StaleTimestamp)
        );
        assert_eq!(ctx.check_fresh_millis(940_000, 60), Ok(()));
        assert_eq!(
            ctx.check_fresh_millis(939_999, 60),
            Err(VerifyError::StaleTimestamp)
        );
    }
}
