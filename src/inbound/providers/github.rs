//! GitHub webhooks — <https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries>.
//!
//! Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`. The legacy
//! SHA-1 `X-Hub-Signature` is never accepted. No timestamp is signed, so there is no
//! tolerance: replays are caught by deduping on the delivery id.
//! Facts: id `X-GitHub-Delivery`; type `X-GitHub-Event`, plus `.{action}` when the body has
//! one (`pull_request.opened`); time `repository.pushed_at` (UNIX seconds) for a push, else
//! the `updated_at` of the object the event is named after. A `ping` (sent when a hook is
//! created) is verified like any delivery and reported as [`Handshake::Ping`]. Bodies sent
//! as `application/x-www-form-urlencoded` carry the JSON in their `payload` field.

use serde_json::Value;

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, Handshake, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
pub const EVENT_HEADER: &str = "x-github-event";
pub const DELIVERY_HEADER: &str = "x-github-delivery";

pub struct Github;

impl Verifier for Github {
    fn name(&self) -> &'static str {
        "github"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Github(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = header
            .strip_prefix("sha256=")
            .and_then(mac::from_hex)
            .ok_or_else(|| VerifyError::malformed("X-Hub-Signature-256 is not sha256=<hex>"))?;
        mac::matching_secret(&settings.secrets, &[signature], |key| {
            mac::hmac_sha256(key, &[request.body])
        })?;

        let event_name = request.header_fact(EVENT_HEADER);
        let mut verified = Verified::event(facts(request, event_name.as_deref()));
        if event_name.as_deref() == Some("ping") {
            verified.handshake = Some(Handshake::Ping);
        }
        Ok(verified)
    }
}

fn facts(request: &InboundRequest<'_>, event_name: Option<&str>) -> EventInfo {
    let body = payload(request.body);
    let action = body.as_ref().and_then(|b| extract::text(b, "/action"));
    let occurred_at = body.as_ref().and_then(|b| match event_name {
        Some("push") => extract::unix_seconds(b, "/repository/pushed_at")
            .or_else(|| extract::rfc3339(b, "/head_commit/timestamp")),
        Some(name) => extract::rfc3339(b, &format!("/{name}/updated_at")),
        None => None,
    });
    EventInfo {
        id: request.header_fact(DELIVERY_HEADER),
        event_type: extract::dotted(event_name.map(str::to_owned), action),
        occurred_at,
    }
}

fn payload(body: &[u8]) -> Option<Value> {
    extract::json(body).or_else(|| {
        let form = extract::form(body);
        extract::json(extract::form_value(&form, "payload")?.as_bytes())
    })
}
