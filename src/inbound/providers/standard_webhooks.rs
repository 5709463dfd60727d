//! Standard Webhooks and Svix — <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.
//!
//! Headers `webhook-id`, `webhook-timestamp` (UNIX seconds), `webhook-signature`, or the same
//! with the `svix-` prefix (Svix's original names). The signature header holds
//! space-separated entries: `v1,<base64 HMAC-SHA256(key, "{id}.{ts}.{raw body}")>` where the
//! key is the base64 after `whsec_`, and `v1a,<base64 ed25519 signature>` of the same content
//! for public keys `whpk_<base64>`. Any entry matching any configured secret or key counts,
//! so both old and new secrets work during a rotation. Tolerance 300 s either way.
//! The symmetric check is [`crate::signing::verify`], the one hookrelay's own receivers use.
//! Facts: id the `webhook-id` header; type `type` and time `timestamp` (RFC 3339) from the
//! body, the payload shape the specification recommends.

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::domain::secret::{EndpointSecret, PREFIX as SECRET_PREFIX};
use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};
use crate::signing;

pub const DEFAULT_TOLERANCE_S: u64 = 300;
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardWebhooksSettings {
    /// Symmetric secrets, `whsec_<base64>`, for `v1` signatures.
    #[serde(default)]
    pub secrets: Vec<SourceSecret>,
    /// Ed25519 public keys, `whpk_<base64>`, for `v1a` signatures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
}

/// The three header names of one naming convention.
struct HeaderNames {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const STANDARD: HeaderNames = HeaderNames {
    id: signing::HEADER_ID,
    timestamp: signing::HEADER_TIMESTAMP,
    signature: signing::HEADER_SIGNATURE,
};
const SVIX: HeaderNames = HeaderNames {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

pub struct StandardWebhooks;

impl Verifier for StandardWebhooks {
    fn name(&self) -> &'static str {
        "standard_webhooks"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::StandardWebhooks(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let id = check(
            request,
            &settings.secrets,
            &settings.public_keys,
            settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
            ctx,
        )?;
        let body = extract::json(request.body);
        Ok(Verified::event(EventInfo {
            id: Some(id),
            event_type: body.as_ref().and_then(|b| extract::text(b, "/type")),
            occurred_at: body
                .as_ref()
                .and_then(|b| extract::rfc3339(b, "/timestamp")),
        }))
    }
}

/// Checks a Standard Webhooks (or Svix) signed request; answers its `webhook-id`. Shared with
/// GitLab, whose signing tokens follow the same specification.
pub(crate) fn check(
    request: &InboundRequest<'_>,
    secrets: &[SourceSecret],
    public_keys: &[String],
    tolerance_s: u64,
    ctx: &VerifyContext,
) -> Result<String, VerifyError> {
    if secrets.is_empty() && public_keys.is_empty() {
        return Err(VerifyError::Misconfigured(
            "no secret or public key is configured".into(),
        ));
    }
    let names = if request.headers.contains_key(STANDARD.signature) {
        &STANDARD
    } else if request.headers.contains_key(SVIX.signature) {
        &SVIX
    } else {
        return Err(VerifyError::MissingSignature);
    };
    let header = request.required_header(names.signature, VerifyError::MissingSignature)?;
    let (timestamp, seconds) = request.timestamp_header(names.timestamp)?;
    let id = request.required_header(
        names.id,
        VerifyError::Malformed(format!("header {} is missing", names.id)),
    )?;
    ctx.check_fresh(seconds, tolerance_s)?;

    let now = ctx.now.timestamp();
    let tolerance = i64::try_from(tolerance_s).unwrap_or(i64::MAX);
    let mut genuine = false;
    for secret in secrets {
        let secret = endpoint_secret(secret)?;
        // `|` rather than `||`: every secret is tried, whichever matches.
        genuine |=
            signing::verify(&secret, header, id, seconds, request.body, now, tolerance).is_ok();
    }
    if !public_keys.is_empty() {
        let content = [
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            request.body,
        ]
        .concat();
        let signatures: Vec<Vec<u8>> = header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1a,"))
            .filter_map(mac::from_base64)
            .collect();
        for key in public_keys {
            let key = public_key(key)?;
            let key = UnparsedPublicKey::new(&ED25519, key);
            genuine |= signatures
                .iter()
                .any(|sig| key.verify(&content, sig).is_ok());
        }
    }
    if genuine {
        Ok(id.to_owned())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// A configured secret as hookrelay's signing module takes it; `whsec_` may be left off.
fn endpoint_secret(secret: &SourceSecret) -> Result<EndpointSecret, VerifyError> {
    let text = secret.expose();
    let parsed = if text.starts_with(SECRET_PREFIX) {
        EndpointSecret::parse(text)
    } else {
        EndpointSecret::parse(&format!("{SECRET_PREFIX}{text}"))
    };
    parsed.map_err(|_| {
        VerifyError::Misconfigured(
            "a Standard Webhooks secret must be whsec_ + base64 of 24 to 64 bytes".into(),
        )
    })
}

fn public_key(key: &str) -> Result<Vec<u8>, VerifyError> {
    key.strip_prefix(PUBLIC_KEY_PREFIX)
        .and_then(mac::from_base64)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| {
            VerifyError::Misconfigured(
                "a Standard Webhooks public key must be whpk_ + base64 of 32 bytes".into(),
            )
        })
}
