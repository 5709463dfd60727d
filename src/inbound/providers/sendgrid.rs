//! Twilio SendGrid signed Event Webhook — <https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features>.
//!
//! Signature: `X-Twilio-Email-Event-Webhook-Signature: <base64 DER ECDSA P-256 SHA-256
//! signature of "{ts}{raw body}">` with `X-Twilio-Email-Event-Webhook-Timestamp` (UNIX
//! seconds), checked against the verification key SendGrid shows (base64 DER
//! SubjectPublicKeyInfo). SendGrid documents no tolerance; 300 s either way is used, as for
//! the other signed-timestamp providers (configurable).
//! Facts: the body is an array of events. Each gives id `sg_event_id`, type `event`
//! (`delivered`), time `timestamp` (UNIX seconds); they are listed in [`Verified::batch`],
//! and a one-event batch also fills [`Verified::event`].

use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-twilio-email-event-webhook-signature";
pub const TIMESTAMP_HEADER: &str = "x-twilio-email-event-webhook-timestamp";
pub const DEFAULT_TOLERANCE_S: u64 = 300;

/// The DER header of a SubjectPublicKeyInfo holding an uncompressed P-256 point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) }.
const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridSettings {
    /// Verification keys as SendGrid shows them: base64 of the DER SubjectPublicKeyInfo.
    pub public_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
}

pub struct Sendgrid;

impl Verifier for Sendgrid {
    fn name(&self) -> &'static str {
        "sendgrid"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Sendgrid(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        if settings.public_keys.is_empty() {
            return Err(VerifyError::Misconfigured(
                "no verification key is configured".into(),
            ));
        }
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let (timestamp, seconds) = request.timestamp_header(TIMESTAMP_HEADER)?;
        ctx.check_fresh(seconds, settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S))?;
        let signature = mac::from_base64(header).ok_or_else(|| {
            VerifyError::malformed("X-Twilio-Email-Event-Webhook-Signature is not base64")
        })?;
        let content = [timestamp.as_bytes(), request.body].concat();
        let mut genuine = false;
        for key in &settings.public_keys {
            let point = p256_point(key)?;
            genuine |= UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
                .verify(&content, &signature)
                .is_ok();
        }
        if !genuine {
            return Err(VerifyError::BadSignature);
        }
        Ok(batch(extract::json(request.body)))
    }
}

/// The uncompressed point inside a base64 DER P-256 SubjectPublicKeyInfo.
fn p256_point(key: &str) -> Result<Vec<u8>, VerifyError> {
    mac::from_base64(key.trim())
        .and_then(|der| der.strip_prefix(&P256_SPKI_HEADER[..]).map(<[u8]>::to_vec))
        .filter(|point| point.len() == 65 && point[0] == 0x04)
        .ok_or_else(|| {
            VerifyError::Misconfigured(
                "a SendGrid verification key must be base64 DER of a P-256 public key".into(),
            )
        })
}

fn batch(body: Option<Value>) -> Verified {
    let events: Vec<EventInfo> = body
        .as_ref()
        .and_then(Value::as_array)
        .map(|events| {
            events
                .iter()
                .map(|event| EventInfo {
                    id: extract::text(event, "/sg_event_id"),
                    event_type: extract::text(event, "/event"),
                    occurred_at: extract::unix_seconds(event, "/timestamp"),
                })
                .collect()
        })
        .unwrap_or_default();
    Verified {
        event: match events.as_slice() {
            [only] => only.clone(),
            _ => EventInfo::default(),
        },
        batch: events,
        ..Verified::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_other_than_uncompressed_p256_are_refused() {
        let p384 = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAE";
        assert_eq!(p256_point(p384).unwrap_err().code(), "misconfigured");
        assert_eq!(
            p256_point("not base64!").unwrap_err().code(),
            "misconfigured"
        );
    }
}
