//! Slack request signing (v0) — <https://api.slack.com/authentication/verifying-requests-from-slack>.
//!
//! Signature: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:{ts}:{raw body}")>`
//! with `X-Slack-Request-Timestamp` (UNIX seconds); tolerance 300 s either way.
//! A `url_verification` request is verified like any other, then answered with its
//! `challenge` (text/plain) and reported as [`Handshake::Challenge`].
//! Facts: id `event_id`; type the inner `event.type` of an `event_callback` (what apps
//! subscribe to, e.g. `message`), else the top-level `type`; time `event_time` (UNIX seconds).
//! Interactivity posts are form-encoded with the JSON in `payload`; slash commands carry no
//! event facts.

use serde_json::Value;

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, Handshake, InboundRequest, Reply, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const DEFAULT_TOLERANCE_S: u64 = 300;

pub struct Slack;

impl Verifier for Slack {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Slack(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let (timestamp, seconds) = request.timestamp_header(TIMESTAMP_HEADER)?;
        ctx.check_fresh(seconds, settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S))?;
        let signature = header
            .strip_prefix("v0=")
            .and_then(mac::from_hex)
            .ok_or_else(|| VerifyError::malformed("X-Slack-Signature is not v0=<hex>"))?;
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[b"v0:", timestamp.as_bytes(), b":", request.body])
        })?;

        let Some(body) = payload(request.body) else {
            return Ok(Verified::default());
        };
        if extract::text(&body, "/type").as_deref() == Some("url_verification") {
            let challenge = extract::text(&body, "/challenge")
                .ok_or_else(|| VerifyError::malformed("url_verification without a challenge"))?;
            return Ok(Verified {
                event: EventInfo {
                    event_type: Some("url_verification".into()),
                    ..EventInfo::default()
                },
                reply: Some(Reply {
                    status: 200,
                    content_type: "text/plain; charset=utf-8",
                    body: challenge.into_bytes(),
                }),
                handshake: Some(Handshake::Challenge),
                ..Verified::default()
            });
        }
        Ok(Verified::event(facts(&body)))
    }
}

fn facts(body: &Value) -> EventInfo {
    let outer = extract::text(body, "/type");
    let event_type = if outer.as_deref() == Some("event_callback") {
        extract::text(body, "/event/type").or(outer)
    } else {
        outer
    };
    EventInfo {
        id: extract::text(body, "/event_id"),
        event_type,
        occurred_at: extract::unix_seconds(body, "/event_time"),
    }
}

/// Events API bodies are JSON; interactivity bodies are a form whose `payload` is JSON.
fn payload(body: &[u8]) -> Option<Value> {
    extract::json(body).or_else(|| {
        let form = extract::form(body);
        extract::json(extract::form_value(&form, "payload")?.as_bytes())
    })
}
