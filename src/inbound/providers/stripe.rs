//! Stripe webhook signatures — <https://docs.stripe.com/webhooks#verify-manually>.
//!
//! Signature: `Stripe-Signature: t=<UNIX s>,v1=<hex>[,v1=<hex>...][,v0=...]`; a request is
//! genuine when any `v1` equals hex(HMAC-SHA256(secret, "{t}.{raw body}")), the secret being
//! the `whsec_...` string used as-is (it is not base64-decoded, unlike Standard Webhooks).
//! Several `v1` appear while Stripe rolls a secret; `v0` and unknown schemes are ignored.
//! Tolerance 300 s either way.
//! Facts, all from the body: id `id` (`evt_...`), type `type`, time `created` (UNIX seconds).

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "stripe-signature";
pub const DEFAULT_TOLERANCE_S: u64 = 300;

pub struct Stripe;

impl Verifier for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Stripe(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for item in header.split(',') {
            match item.trim().split_once('=') {
                Some(("t", t)) => timestamp = Some(t),
                Some(("v1", sig)) => signatures.extend(mac::from_hex(sig)),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(VerifyError::MissingTimestamp)?;
        let seconds = timestamp
            .parse()
            .map_err(|_| VerifyError::malformed("Stripe-Signature t= is not a UNIX time"))?;
        ctx.check_fresh(seconds, settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S))?;
        if signatures.is_empty() {
            return Err(VerifyError::MissingSignature);
        }
        mac::matching_secret(&settings.secrets, &signatures, |key| {
            mac::hmac_sha256(key, &[timestamp.as_bytes(), b".", request.body])
        })?;

        let facts = extract::json(request.body).map(|body| EventInfo {
            id: extract::text(&body, "/id"),
            event_type: extract::text(&body, "/type"),
            occurred_at: extract::unix_seconds(&body, "/created"),
        });
        Ok(Verified::event(facts.unwrap_or_default()))
    }
}
