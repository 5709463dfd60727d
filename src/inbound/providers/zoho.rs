//! Zoho CRM — Notifications API (<https://www.zoho.com/crm/developer/docs/api/v8/notifications/overview.html>)
//! and workflow webhooks.
//!
//! Zoho has no single signing scheme, so the source chooses one:
//! - `{"token_field": "token"}` (the default): the token registered with the notification
//!   channel, which Zoho echoes in the body's top-level `token` field;
//! - `{"token_header": "X-Zoho-Token"}`: a token a workflow webhook sends as a custom header;
//! - `{"hmac": {"header", "algorithm", "encoding", "prefix"}}`: an HMAC of the raw body.
//!
//! Tokens are compared in constant time. A token authenticates the sender but not the body,
//! and no scheme signs a time, so there is no tolerance and only the HMAC scheme detects a
//! tampered body. Facts: type `{module}.{operation}` (`Leads.insert`), time `server_time`
//! (UNIX milliseconds); Zoho sends no event id.

use serde::{Deserialize, Serialize};

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{HmacScheme, SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoSettings {
    /// The registered tokens, or the HMAC keys.
    pub secrets: Vec<SourceSecret>,
    #[serde(default)]
    pub scheme: ZohoScheme,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ZohoScheme {
    /// The token in this top-level field of the JSON body.
    TokenField(String),
    /// The token in this header.
    TokenHeader(String),
    /// An HMAC of the raw body in a header.
    Hmac(HmacScheme),
}

impl Default for ZohoScheme {
    fn default() -> Self {
        ZohoScheme::TokenField("token".into())
    }
}

pub struct Zoho;

impl Verifier for Zoho {
    fn name(&self) -> &'static str {
        "zoho"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Zoho(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let body = extract::json(request.body);
        match &settings.scheme {
            ZohoScheme::TokenField(field) => {
                let body = body
                    .as_ref()
                    .ok_or_else(|| VerifyError::malformed("the body is not JSON"))?;
                let token = body
                    .get(field)
                    .ok_or(VerifyError::MissingToken)?
                    .as_str()
                    .ok_or_else(|| VerifyError::Malformed(format!("`{field}` is not a string")))?;
                mac::check_token(&settings.secrets, token)?;
            }
            ZohoScheme::TokenHeader(header) => {
                mac::valid_header_name(header)?;
                let token = request.required_header(header, VerifyError::MissingToken)?;
                mac::check_token(&settings.secrets, token)?;
            }
            ZohoScheme::Hmac(scheme) => {
                mac::check_header_hmac(request, scheme, &settings.secrets, &[request.body])?;
            }
        }
        let facts = body.map(|body| EventInfo {
            id: None,
            event_type: extract::dotted(
                extract::text(&body, "/module"),
                extract::text(&body, "/operation"),
            ),
            occurred_at: extract::unix_millis(&body, "/server_time"),
        });
        Ok(Verified::event(facts.unwrap_or_default()))
    }
}
