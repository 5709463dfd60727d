//! The generic HMAC preset, for providers without a preset of their own.
//!
//! Signature: `{prefix}{hex or base64 HMAC-SHA1/256/512(secret, signed content)}` in a
//! configured header. The signed content is a template over the raw request:
//! `{body}` (the default), `{timestamp}` (the timestamp header's text), `{url}` (the full
//! URL called) and `{id}` (the id header's text), with anything else taken literally, e.g.
//! `"{timestamp}.{body}"`. When a timestamp header is configured its value (UNIX seconds)
//! must be within the tolerance (default 300 s) either way; without one nothing signs a
//! time and there is no replay protection beyond deduping on the id header.
//! Facts: id from the id header, type from the event-type header, when configured.

use serde::{Deserialize, Serialize};

use crate::inbound::mac;
use crate::inbound::settings::{
    HmacAlgorithm, HmacScheme, SignatureEncoding, SourceSecret, SourceSettings,
};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const DEFAULT_TOLERANCE_S: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSettings {
    pub secrets: Vec<SourceSecret>,
    /// The header carrying the signature.
    pub header: String,
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    #[serde(default)]
    pub encoding: SignatureEncoding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// What is signed; see the module documentation. `{body}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
}

/// One piece of a signed-content template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'t> {
    Literal(&'t str),
    Body,
    Timestamp,
    Url,
    Id,
}

pub struct Generic;

impl Verifier for Generic {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Generic(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let template = parse_template(settings.signed_content.as_deref().unwrap_or("{body}"))?;
        for header in [
            &settings.timestamp_header,
            &settings.id_header,
            &settings.event_type_header,
        ]
        .into_iter()
        .flatten()
        {
            mac::valid_header_name(header)?;
        }
        let scheme = HmacScheme {
            header: settings.header.clone(),
            algorithm: settings.algorithm,
            encoding: settings.encoding,
            prefix: settings.prefix.clone(),
        };
        mac::valid_header_name(&scheme.header)?;
        if request.header(&scheme.header)?.is_none() {
            return Err(VerifyError::MissingSignature);
        }

        let timestamp = match &settings.timestamp_header {
            Some(name) => {
                let (text, seconds) = request.timestamp_header(name)?;
                ctx.check_fresh(seconds, settings.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S))?;
                Some(text)
            }
            None => None,
        };
        let id = match &settings.id_header {
            Some(name) => request.header(name)?,
            None => None,
        };

        let mut parts: Vec<&[u8]> = Vec::with_capacity(template.len());
        for piece in &template {
            parts.push(match piece {
                Piece::Literal(text) => text.as_bytes(),
                Piece::Body => request.body,
                Piece::Url => request.url.as_bytes(),
                Piece::Timestamp => timestamp
                    .ok_or_else(|| {
                        VerifyError::Misconfigured(
                            "{timestamp} is signed but no timestamp_header is set".into(),
                        )
                    })?
                    .as_bytes(),
                Piece::Id => match (&settings.id_header, id) {
                    (None, _) => {
                        return Err(VerifyError::Misconfigured(
                            "{id} is signed but no id_header is set".into(),
                        ));
                    }
                    (Some(name), None) => {
                        return Err(VerifyError::Malformed(format!("header {name} is missing")));
                    }
                    (Some(_), Some(id)) => id.as_bytes(),
                },
            });
        }
        mac::check_header_hmac(request, &scheme, &settings.secrets, &parts)?;

        let fact = |name: &Option<String>| name.as_deref().and_then(|n| request.header_fact(n));
        Ok(Verified::event(EventInfo {
            id: fact(&settings.id_header),
            event_type: fact(&settings.event_type_header),
            occurred_at: None,
        }))
    }
}

/// Splits a template into literals and placeholders; an unknown or unclosed `{...}` is a
/// configuration error rather than text, so a typo cannot silently change what is signed.
fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, VerifyError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Literal(&rest[..open]));
        }
        let close = rest[open..].find('}').ok_or_else(|| {
            VerifyError::Misconfigured(format!("signed_content `{template}` has an unclosed {{"))
        })?;
        pieces.push(match &rest[open + 1..open + close] {
            "body" => Piece::Body,
            "timestamp" => Piece::Timestamp,
            "url" => Piece::Url,
            "id" => Piece::Id,
            other => {
                return Err(VerifyError::Misconfigured(format!(
                    "signed_content has an unknown placeholder {{{other}}}"
                )));
            }
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_literals_and_placeholders() {
        assert_eq!(parse_template("{body}").unwrap(), [Piece::Body]);
        assert_eq!(
            parse_template("v0:{timestamp}:{body}").unwrap(),
            [
                Piece::Literal("v0:"),
                Piece::Timestamp,
                Piece::Literal(":"),
                Piece::Body
            ]
        );
        assert_eq!(
            parse_template("{id}.{timestamp}.{body}{url}!").unwrap(),
            [
                Piece::Id,
                Piece::Literal("."),
                Piece::Timestamp,
                Piece::Literal("."),
                Piece::Body,
                Piece::Url,
                Piece::Literal("!")
            ]
        );
        assert_eq!(parse_template("").unwrap(), []);
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_misconfigurations() {
        for template in ["{bdy}", "{body", "x{}", "{BODY}"] {
            assert_eq!(
                parse_template(template).unwrap_err().code(),
                "misconfigured",
                "{template}"
            );
        }
    }
}
