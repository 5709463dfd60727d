//! A source's verification settings: one JSON document per source, tagged by provider
//! (`{"provider": "stripe", "secrets": ["whsec_..."]}`), checked when it is parsed (unknown
//! fields are refused, so a misspelt key cannot silently disable a check).
//!
//! Every secret list accepts several values at once so a secret can be rotated without
//! dropping requests. Secrets never reach a log line: [`SourceSecret`] redacts itself.

use serde::{Deserialize, Serialize};

use super::providers::{
    generic::GenericSettings, gitlab::GitlabSettings, pubsub::PubsubSettings,
    salesforce::SalesforceSettings, sendgrid::SendgridSettings, square::SquareSettings,
    standard_webhooks::StandardWebhooksSettings, zoho::ZohoSettings,
};
use super::verify::VerifyError;

/// A shared secret or token, as the provider's console shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceSecret(String);

impl std::fmt::Debug for SourceSecret {
    // Secrets never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceSecret(<redacted>)")
    }
}

impl SourceSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        SourceSecret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Per-source settings, one variant per provider, in the registry's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case")]
pub enum SourceSettings {
    Generic(GenericSettings),
    Github(SecretSettings),
    Gitlab(GitlabSettings),
    Linear(TimedSecretSettings),
    Notion(SecretSettings),
    Pubsub(PubsubSettings),
    Salesforce(SalesforceSettings),
    Sendgrid(SendgridSettings),
    Shopify(SecretSettings),
    Slack(TimedSecretSettings),
    Square(SquareSettings),
    StandardWebhooks(StandardWebhooksSettings),
    Stripe(TimedSecretSettings),
    Twilio(SecretSettings),
    Zoho(ZohoSettings),
    Zoom(TimedSecretSettings),
}

impl SourceSettings {
    /// The name of the provider these settings are for (its verifier's `name()`).
    pub fn provider(&self) -> &'static str {
        match self {
            SourceSettings::Generic(_) => "generic",
            SourceSettings::Github(_) => "github",
            SourceSettings::Gitlab(_) => "gitlab",
            SourceSettings::Linear(_) => "linear",
            SourceSettings::Notion(_) => "notion",
            SourceSettings::Pubsub(_) => "pubsub",
            SourceSettings::Salesforce(_) => "salesforce",
            SourceSettings::Sendgrid(_) => "sendgrid",
            SourceSettings::Shopify(_) => "shopify",
            SourceSettings::Slack(_) => "slack",
            SourceSettings::Square(_) => "square",
            SourceSettings::StandardWebhooks(_) => "standard_webhooks",
            SourceSettings::Stripe(_) => "stripe",
            SourceSettings::Twilio(_) => "twilio",
            SourceSettings::Zoho(_) => "zoho",
            SourceSettings::Zoom(_) => "zoom",
        }
    }

    /// The body as it may be shown (request log) or passed on (destinations): credentials
    /// that some schemes carry *inside* the body are replaced by `REDACTED` — Zoho's
    /// registered token, Salesforce's `SessionId`, Slack's legacy `token=` form field. Only
    /// for display and routing: signatures are always checked on the raw body.
    pub fn redact_body<'b>(&self, body: &'b [u8]) -> std::borrow::Cow<'b, [u8]> {
        use std::borrow::Cow;
        match self {
            SourceSettings::Zoho(z) => match &z.scheme {
                super::providers::zoho::ZohoScheme::TokenField(field) => {
                    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_slice(body)
                    else {
                        return Cow::Borrowed(body);
                    };
                    match map.get_mut(field.as_str()) {
                        Some(v) => *v = serde_json::Value::String(REDACTED.into()),
                        None => return Cow::Borrowed(body),
                    }
                    Cow::Owned(serde_json::to_vec(&map).unwrap_or_else(|_| body.to_vec()))
                }
                _ => Cow::Borrowed(body),
            },
            SourceSettings::Salesforce(_) => redact_xml_element(body, b"SessionId"),
            SourceSettings::Slack(_) => redact_form_field(body, b"token"),
            _ => Cow::Borrowed(body),
        }
    }

    /// The error a verifier answers when handed another provider's settings.
    pub(crate) fn mismatch(&self, verifier: &str) -> VerifyError {
        VerifyError::Misconfigured(format!(
            "settings are for provider `{}`, not `{verifier}`",
            self.provider()
        ))
    }
}

const REDACTED: &str = "REDACTED";

/// `<x:Name ...>secret</x:Name>` → `<x:Name ...>REDACTED</x:Name>`, every occurrence.
fn redact_xml_element<'b>(body: &'b [u8], name: &[u8]) -> std::borrow::Cow<'b, [u8]> {
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    let mut changed = false;
    while let Some(open) = find(rest, b"<") {
        let (head, tag) = rest.split_at(open);
        out.extend_from_slice(head);
        let Some(end) = find(tag, b">") else {
            rest = tag;
            break;
        };
        let tag_name = tag[1..end]
            .split(|c| c.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        let local = tag_name.rsplit(|c| *c == b':').next().unwrap_or_default();
        out.extend_from_slice(&tag[..=end]);
        rest = &tag[end + 1..];
        if local == name && !tag_name.starts_with(b"/") && !tag[..end].ends_with(b"/") {
            let text_end = find(rest, b"<").unwrap_or(rest.len());
            if text_end > 0 {
                out.extend_from_slice(REDACTED.as_bytes());
                changed = true;
            }
            rest = &rest[text_end..];
        }
    }
    out.extend_from_slice(rest);
    if changed {
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(body)
    }
}

/// `a=1&token=secret&b=2` → `a=1&token=REDACTED&b=2`.
fn redact_form_field<'b>(body: &'b [u8], name: &[u8]) -> std::borrow::Cow<'b, [u8]> {
    if !body
        .split(|c| *c == b'&')
        .any(|pair| pair.starts_with(name) && pair.get(name.len()) == Some(&b'='))
    {
        return std::borrow::Cow::Borrowed(body);
    }
    let pairs: Vec<Vec<u8>> = body
        .split(|c| *c == b'&')
        .map(|pair| {
            if pair.starts_with(name) && pair.get(name.len()) == Some(&b'=') {
                [name, b"=", REDACTED.as_bytes()].concat()
            } else {
                pair.to_vec()
            }
        })
        .collect();
    std::borrow::Cow::Owned(pairs.join(&b'&'))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    #[test]
    fn in_body_credentials_are_redacted_for_display() {
        let xml = b"<soapenv:Body><notifications><OrganizationId>00D</OrganizationId><SessionId>sess-secret</SessionId><sf:SessionId xsi:nil=\"true\"/></notifications></soapenv:Body>";
        let out = redact_xml_element(xml, b"SessionId");
        let text = String::from_utf8(out.into_owned()).unwrap();
        assert!(!text.contains("sess-secret"), "{text}");
        assert!(text.contains("<SessionId>REDACTED</SessionId>"), "{text}");
        assert!(
            text.contains("<OrganizationId>00D</OrganizationId>"),
            "{text}"
        );

        let form = redact_form_field(b"token=xyzz&team_id=T1&tokenized=1", b"token");
        assert_eq!(&*form, b"token=REDACTED&team_id=T1&tokenized=1");
        assert!(matches!(
            redact_form_field(b"a=1", b"token"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

/// Providers whose only setting is the shared secret (GitHub, Notion, Shopify, Twilio).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    pub secrets: Vec<SourceSecret>,
}

/// Providers that sign a timestamp with the secret (Linear, Slack, Stripe, Zoom).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedSecretSettings {
    pub secrets: Vec<SourceSecret>,
    /// How far the signed timestamp may be from now; the provider's documented value when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_s: Option<u64>,
}

/// An HMAC of the raw body carried in one header: the shape of the configurable presets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    pub header: String,
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// Text before the encoded MAC, such as `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_tagged_by_provider() {
        let settings: SourceSettings = serde_json::from_value(json!({
            "provider": "stripe", "secrets": ["whsec_a", "whsec_b"], "tolerance_s": 60
        }))
        .unwrap();
        assert_eq!(settings.provider(), "stripe");
        let SourceSettings::Stripe(stripe) = &settings else {
            panic!("{settings:?}")
        };
        assert_eq!(stripe.secrets.len(), 2);
        assert_eq!(stripe.tolerance_s, Some(60));
        let back = serde_json::to_value(&settings).unwrap();
        assert_eq!(back["provider"], "stripe");
        assert_eq!(
            serde_json::from_value::<SourceSettings>(back).unwrap(),
            settings
        );
    }

    #[test]
    fn misspelt_or_unknown_settings_are_refused() {
        for doc in [
            json!({"provider": "github", "secret": "x"}),
            json!({"provider": "github", "secrets": ["x"], "tolerance_s": 5}),
            json!({"provider": "bitbucket", "secrets": ["x"]}),
            json!({"secrets": ["x"]}),
        ] {
            assert!(
                serde_json::from_value::<SourceSettings>(doc.clone()).is_err(),
                "{doc}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let settings: SourceSettings =
            serde_json::from_value(json!({"provider": "github", "secrets": ["hunter2"]})).unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
