//! Notion webhooks — <https://developers.notion.com/reference/webhooks>.
//!
//! Signature: `X-Notion-Signature: sha256=<hex HMAC-SHA256(verification_token, raw body)>`.
//! No timestamp is signed, so there is no tolerance: replays are caught by deduping on the
//! event id (which stays the same across Notion's retries).
//! Handshake: when a subscription is created Notion POSTs `{"verification_token": "..."}`
//! and the operator pastes that token back into Notion's console; the token then becomes the
//! signing secret. That request proves nothing (anyone can send one), so it is answered as
//! [`Handshake::UnconfirmedToken`], whatever its signature says, and never adopted as a
//! secret here.
//! Facts, all from the body: id `id`, type `type` (`page.created`), time `timestamp`
//! (RFC 3339).

use serde_json::Value;

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, Handshake, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-notion-signature";

pub struct Notion;

impl Verifier for Notion {
    fn name(&self) -> &'static str {
        "notion"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Notion(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let body = extract::json(request.body);
        if let Some(token) = body.as_ref().and_then(verification_token) {
            return Ok(Verified {
                handshake: Some(Handshake::UnconfirmedToken(SourceSecret::new(token))),
                ..Verified::default()
            });
        }
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = header
            .strip_prefix("sha256=")
            .and_then(mac::from_hex)
            .ok_or_else(|| VerifyError::malformed("X-Notion-Signature is not sha256=<hex>"))?;
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[request.body])
        })?;
        let facts = body.map(|body| EventInfo {
            id: extract::text(&body, "/id"),
            event_type: extract::text(&body, "/type"),
            occurred_at: extract::rfc3339(&body, "/timestamp"),
        });
        Ok(Verified::event(facts.unwrap_or_default()))
    }
}

/// The token of a verification request: an object whose only field is `verification_token`.
fn verification_token(body: &Value) -> Option<String> {
    let object = body.as_object()?;
    if object.len() != 1 {
        return None;
    }
    Some(object.get("verification_token")?.as_str()?.to_owned())
}
