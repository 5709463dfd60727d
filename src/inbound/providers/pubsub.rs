//! Google Cloud Pub/Sub push with authentication — <https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions>.
//!
//! Credential: `Authorization: Bearer <OIDC JWT>` signed by Google for the subscription's
//! service account. Checked here: the algorithm is RS256 and nothing else (`none`, `HS256`
//! and the rest are refused before any key is looked at); the key is the configured JWKS
//! entry named by the header's `kid` (Google's keys from
//! <https://www.googleapis.com/oauth2/v3/certs>, which the caller fetches and supplies);
//! `iss` is `accounts.google.com` with or without `https://`; `aud` is the configured
//! audience; `email` is a configured service account and `email_verified` is true; `exp`
//! has not passed and `iat` is not in the future, each with a 60 s leeway by default.
//! The token does not cover the body: a push source authenticates the sender, not the
//! payload, and replays within the token's lifetime are caught by deduping on the message id.
//! Facts: id `message.messageId`, time `message.publishTime` (RFC 3339); Pub/Sub has no
//! event type.

use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::inbound::extract;
use crate::inbound::settings::SourceSettings;
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const AUTHORIZATION_HEADER: &str = "authorization";
pub const DEFAULT_LEEWAY_S: u64 = 60;
const ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubSettings {
    /// The audience set on the push subscription (by default its push endpoint URL).
    pub audience: String,
    /// The service accounts allowed to push, matched against the token's `email`.
    pub service_accounts: Vec<String>,
    /// Google's signing keys, as a JWKS document (`{"keys": [...]}`).
    pub jwks: Jwks,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One JSON Web Key; members other than these are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

pub struct Pubsub;

impl Verifier for Pubsub {
    fn name(&self) -> &'static str {
        "pubsub"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Pubsub(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        if settings.service_accounts.is_empty() {
            return Err(VerifyError::Misconfigured(
                "no service account is configured".into(),
            ));
        }
        let header = request.required_header(AUTHORIZATION_HEADER, VerifyError::MissingToken)?;
        let token = bearer_token(header)?;
        let claims = verify_jwt(token, &settings.jwks)?;
        check_claims(&claims, settings, ctx)?;

        let facts = extract::json(request.body).map(|body| EventInfo {
            id: extract::text(&body, "/message/messageId")
                .or_else(|| extract::text(&body, "/message/message_id")),
            event_type: None,
            occurred_at: extract::rfc3339(&body, "/message/publishTime")
                .or_else(|| extract::rfc3339(&body, "/message/publish_time")),
        });
        Ok(Verified::event(facts.unwrap_or_default()))
    }
}

fn bearer_token(header: &str) -> Result<&str, VerifyError> {
    let (scheme, token) = header
        .split_once(' ')
        .ok_or_else(|| VerifyError::malformed("Authorization is not `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(VerifyError::malformed(
            "Authorization is not `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// Checks the JWT's RS256 signature with the JWKS key its `kid` names; answers its claims.
fn verify_jwt(token: &str, jwks: &Jwks) -> Result<Value, VerifyError> {
    let malformed = || VerifyError::malformed("the bearer token is not a JWT");
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header: Value = decode_segment(header_b64)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(malformed)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "RS256" {
        return Err(VerifyError::UnsupportedAlgorithm(alg.to_owned()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(VerifyError::UnknownKey)?;
    let key = jwks
        .keys
        .iter()
        .find(|key| {
            key.kid.as_deref() == Some(kid)
                && key.kty == "RSA"
                && key.alg.as_deref().is_none_or(|alg| alg == "RS256")
                && key.key_use.as_deref().is_none_or(|u| u == "sig")
        })
        .ok_or(VerifyError::UnknownKey)?;
    let (Some(n), Some(e)) = (
        key.n.as_deref().and_then(decode_segment),
        key.e.as_deref().and_then(decode_segment),
    ) else {
        return Err(VerifyError::Misconfigured(format!(
            "JWKS key `{kid}` has no usable n and e"
        )));
    };
    let signature = decode_segment(signature_b64).ok_or_else(malformed)?;
    let signed = &token[..header_b64.len() + 1 + claims_b64.len()];
    RsaPublicKeyComponents { n, e }
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    decode_segment(claims_b64)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .ok_or_else(malformed)
}

fn check_claims(
    claims: &Value,
    settings: &PubsubSettings,
    ctx: &VerifyContext,
) -> Result<(), VerifyError> {
    let leeway = i64::try_from(settings.leeway_s.unwrap_or(DEFAULT_LEEWAY_S)).unwrap_or(i64::MAX);
    let now = ctx.now.timestamp();
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(VerifyError::MissingTimestamp)?;
    if now > exp.saturating_add(leeway) {
        return Err(VerifyError::StaleTimestamp);
    }
    if let Some(iat) = claims.get("iat").and_then(Value::as_i64)
        && iat > now.saturating_add(leeway)
    {
        return Err(VerifyError::StaleTimestamp);
    }

    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if !ISSUERS.contains(&iss) {
        return Err(VerifyError::BadIssuer);
    }
    let audience_matches = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == settings.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&settings.audience)),
        _ => false,
    };
    if !audience_matches {
        return Err(VerifyError::BadAudience);
    }
    let email = claims.get("email").and_then(Value::as_str);
    let email_verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
        || claims.get("email_verified").and_then(Value::as_str) == Some("true");
    let allowed = email.is_some_and(|email| settings.service_accounts.iter().any(|a| a == email));
    if !(allowed && email_verified) {
        return Err(VerifyError::BadEmail);
    }
    Ok(())
}

/// base64url without padding, as JWTs and JWKs use.
fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_authorization_is_read() {
        assert_eq!(bearer_token("Bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(bearer_token("bearer a.b.c"), Ok("a.b.c"));
        assert_eq!(
            bearer_token("Basic dXNlcg==").unwrap_err().code(),
            "malformed"
        );
        assert_eq!(bearer_token("a.b.c").unwrap_err().code(), "malformed");
    }
}
