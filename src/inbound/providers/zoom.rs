//! Zoom webhooks — <https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events>.
//!
//! Signature: `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{ts}:{raw body}")>` with
//! `x-zm-request-timestamp` (UNIX seconds). Zoom documents no tolerance; 300 s either way is
//! used, as for Slack's identical construction.
//! Handshake: `endpoint.url_validation` (sent when the URL is saved, then every 72 h) is
//! verified like any event, then answered with `{"plainToken", "encryptedToken"}` where
//! `encryptedToken = hex(HMAC-SHA256(secret token, plainToken))`, and reported as
//! [`Handshake::Challenge`].
//! Facts, all from the body: type `event` (`meeting.started`), time `event_ts` (UNIX
//! milliseconds). Zoom sends no event id.

use serde_json::{Value, json};

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, Handshake, InboundRequest, Reply, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-zm-signature";
pub const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";
pub const DEFAULT_TOLERANCE_S: u64 = 300;
const URL_VALIDATION: &str = "endpoint.url_validation";

pub struct Zoom;

impl Verifier for Zoom {
    fn name(&self) -> &'static str {
        "zoom"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Zoom(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let (timestamp, seconds) = request.timestamp_header(TIMESTAMP_HEADER)?;
        ctx.check_fresh(seconds, settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S))?;
        let signature = header
            .strip_prefix("v0=")
            .and_then(mac::from_hex)
            .ok_or_else(|| VerifyError::malformed("x-zm-signature is not v0=<hex>"))?;
        let secret = mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[b"v0:", timestamp.as_bytes(), b":", request.body])
        })?;

        let Some(body) = extract::json(request.body) else {
            return Ok(Verified::default());
        };
        let event = EventInfo {
            id: None,
            event_type: extract::text(&body, "/event"),
            occurred_at: extract::unix_millis(&body, "/event_ts"),
        };
        if event.event_type.as_deref() == Some(URL_VALIDATION) {
            return Ok(Verified {
                event,
                reply: Some(url_validation_reply(&body, secret)?),
                handshake: Some(Handshake::Challenge),
                ..Verified::default()
            });
        }
        Ok(Verified::event(event))
    }
}

fn url_validation_reply(body: &Value, secret: &SourceSecret) -> Result<Reply, VerifyError> {
    let plain = extract::text(body, "/payload/plainToken")
        .ok_or_else(|| VerifyError::malformed("endpoint.url_validation without a plainToken"))?;
    let encrypted = mac::to_hex(&mac::hmac_sha256(secret.as_bytes(), &[plain.as_bytes()]));
    let reply = json!({ "plainToken": plain, "encryptedToken": encrypted });
    Ok(Reply {
        status: 200,
        content_type: "application/json",
        body: serde_json::to_vec(&reply).expect("a JSON value serialises"),
    })
}
