//! Shopify webhooks — <https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook>.
//!
//! Signature: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(app client secret, raw body)>`.
//! No timestamp is signed (`X-Shopify-Triggered-At` is not covered), so there is no
//! tolerance: replays are caught by deduping on the webhook id.
//! Facts, all from headers: id `X-Shopify-Webhook-Id` (one per delivery; `X-Shopify-Event-Id`
//! is shared by every delivery of one merchant action), type `X-Shopify-Topic`
//! (`orders/create`), time `X-Shopify-Triggered-At` (RFC 3339).

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-shopify-hmac-sha256";

pub struct Shopify;

impl Verifier for Shopify {
    fn name(&self) -> &'static str {
        "shopify"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Shopify(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = mac::from_base64(header)
            .ok_or_else(|| VerifyError::malformed("X-Shopify-Hmac-Sha256 is not base64"))?;
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[request.body])
        })?;
        Ok(Verified::event(EventInfo {
            id: request.header_fact("x-shopify-webhook-id"),
            event_type: request.header_fact("x-shopify-topic"),
            occurred_at: request
                .header_fact("x-shopify-triggered-at")
                .as_deref()
                .and_then(extract::parse_rfc3339),
        }))
    }
}
