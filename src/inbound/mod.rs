//! Inbound webhook verification: for each provider hookrelay receives from, the check that a
//! request really comes from that provider, and what the request says about its event (id,
//! type, time) so the caller can dedupe and route it.
//!
//! This is a pure library. A verifier looks at the raw request bytes, the source's settings
//! and an injected clock, and answers [`Verified`] or a [`VerifyError`] with a
//! machine-readable code. It never does I/O: no HTTP, no store, no reading the process clock,
//! no fetching keys (Pub/Sub's JWKS is configuration the caller supplies). It never
//! re-serialises a body before verifying it, compares every secret-derived value in constant
//! time, and never puts a secret in an error or a `Debug` line.
//!
//! Map: [`verify`] holds the [`Verifier`] trait and the request/outcome types, [`settings`]
//! the per-source configuration, [`providers`] one file per provider with the `all()`
//! registry. `mac` (HMAC, encodings, constant-time matching) and `extract` (reading event
//! facts out of JSON and form bodies) are private helpers.

mod extract;
mod mac;
pub mod providers;
pub mod settings;
pub mod verify;

pub use providers::{UnknownProvider, all, by_name};
pub use settings::{
    HmacAlgorithm, HmacScheme, SecretSettings, SignatureEncoding, SourceSecret, SourceSettings,
    TimedSecretSettings,
};
pub use verify::{
    EventInfo, Handshake, InboundRequest, Reply, Verified, Verifier, VerifyContext, VerifyError,
};

/// Verifies `request` with the provider the settings name: the one call a receive handler
/// needs.
pub fn verify_request(
    request: &InboundRequest<'_>,
    settings: &SourceSettings,
    ctx: &VerifyContext,
) -> Result<Verified, VerifyError> {
    let verifier = by_name(settings.provider())
        .map_err(|unknown| VerifyError::Misconfigured(unknown.to_string()))?;
    verifier.verify(request, settings, ctx)
}
