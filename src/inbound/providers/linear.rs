//! Linear webhooks — <https://linear.app/developers/webhooks#securing-webhooks>.
//!
//! Signature: `Linear-Signature: <hex HMAC-SHA256(signing secret, raw body)>`. The signed
//! time is inside the body, `webhookTimestamp` (UNIX milliseconds), so the signature is
//! checked before the body is read; tolerance 60 s either way, as Linear recommends.
//! Facts: id `Linear-Delivery` header (the body's `webhookId` names the webhook, not the
//! delivery); type `{type}.{action}` (`Comment.create`); time `createdAt` (RFC 3339).

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "linear-signature";
pub const DELIVERY_HEADER: &str = "linear-delivery";
pub const DEFAULT_TOLERANCE_S: u64 = 60;

pub struct Linear;

impl Verifier for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Linear(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = mac::from_hex(header)
            .ok_or_else(|| VerifyError::malformed("Linear-Signature is not hex"))?;
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[request.body])
        })?;

        let body = extract::json(request.body)
            .ok_or_else(|| VerifyError::malformed("the body is not JSON"))?;
        let sent_at_ms = body
            .get("webhookTimestamp")
            .ok_or(VerifyError::MissingTimestamp)?
            .as_i64()
            .ok_or_else(|| VerifyError::malformed("webhookTimestamp is not UNIX milliseconds"))?;
        ctx.check_fresh_millis(
            sent_at_ms,
            settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
        )?;
        Ok(Verified::event(EventInfo {
            id: request.header_fact(DELIVERY_HEADER),
            event_type: extract::dotted(
                extract::text(&body, "/type"),
                extract::text(&body, "/action"),
            ),
            occurred_at: extract::rfc3339(&body, "/createdAt"),
        }))
    }
}
