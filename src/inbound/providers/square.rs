//! Square webhooks — <https://developer.squareup.com/docs/webhooks/step3validate>.
//!
//! Signature: `x-square-hmacsha256-signature: <base64 HMAC-SHA256(signature key,
//! notification URL + raw body)>`, the URL being the one registered with the subscription:
//! `notification_url` in the settings, else the URL the request arrived at. The legacy
//! SHA-1 `x-square-signature` is never accepted. No timestamp is signed, so there is no
//! tolerance: replays are caught by deduping on the event id.
//! Facts, all from the body: id `event_id`, type `type` (`payment.created`), time
//! `created_at` (RFC 3339).

use serde::{Deserialize, Serialize};

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-square-hmacsha256-signature";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquareSettings {
    /// Signature keys, from the subscription's page in the Square console.
    pub secrets: Vec<SourceSecret>,
    /// The notification URL exactly as registered with Square, when it differs from the URL
    /// requests arrive at (a proxy rewriting the path, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
}

pub struct Square;

impl Verifier for Square {
    fn name(&self) -> &'static str {
        "square"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Square(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = mac::from_base64(header)
            .ok_or_else(|| VerifyError::malformed("x-square-hmacsha256-signature is not base64"))?;
        let url = settings.notification_url.as_deref().unwrap_or(request.url);
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[url.as_bytes(), request.body])
        })?;
        let facts = extract::json(request.body).map(|body| EventInfo {
            id: extract::text(&body, "/event_id"),
            event_type: extract::text(&body, "/type"),
            occurred_at: extract::rfc3339(&body, "/created_at"),
        });
        Ok(Verified::event(facts.unwrap_or_default()))
    }
}
