//! GitLab webhooks — <https://docs.gitlab.com/user/project/integrations/webhooks/>.
//!
//! Secret token: `X-Gitlab-Token` carries the configured token itself, compared in constant
//! time. It authenticates the sender but not the body, and signs no time: a token-only source
//! cannot detect a tampered body or a replay (deduping on the delivery id catches honest
//! retries). Newer GitLab adds a signing token: `webhook-id`, `webhook-timestamp`,
//! `webhook-signature` per Standard Webhooks (tolerance 300 s), checked when
//! `signing_secrets` are configured. With both configured, both must hold.
//! Facts, from headers: id `Idempotency-Key` (stable across retries), else
//! `X-Gitlab-Event-UUID`; type `X-Gitlab-Event` (`Push Hook`), else the body's `object_kind`.
//! GitLab sends no event time.

use serde::{Deserialize, Serialize};

use super::standard_webhooks;
use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const TOKEN_HEADER: &str = "x-gitlab-token";
pub const DEFAULT_TOLERANCE_S: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabSettings {
    /// Secret tokens, expected verbatim in `X-Gitlab-Token`.
    #[serde(default)]
    pub secrets: Vec<SourceSecret>,
    /// Signing tokens (`whsec_<base64>`), for the Standard Webhooks signature.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_secrets: Vec<SourceSecret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
}

pub struct Gitlab;

impl Verifier for Gitlab {
    fn name(&self) -> &'static str {
        "gitlab"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Gitlab(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        if settings.secrets.is_empty() && settings.signing_secrets.is_empty() {
            return Err(VerifyError::Misconfigured(
                "neither a secret token nor a signing token is configured".into(),
            ));
        }
        if !settings.secrets.is_empty() {
            let token = request.required_header(TOKEN_HEADER, VerifyError::MissingToken)?;
            mac::check_token(&settings.secrets, token)?;
        }
        if !settings.signing_secrets.is_empty() {
            standard_webhooks::check(
                request,
                &settings.signing_secrets,
                &[],
                settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
                ctx,
            )?;
        }
        let event_type = request.header_fact("x-gitlab-event").or_else(|| {
            extract::json(request.body).and_then(|b| extract::text(&b, "/object_kind"))
        });
        Ok(Verified::event(EventInfo {
            id: request
                .header_fact("idempotency-key")
                .or_else(|| request.header_fact("x-gitlab-event-uuid")),
            event_type,
            occurred_at: None,
        }))
    }
}
