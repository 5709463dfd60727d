//! The provider presets, one file each, and the registry that names them.
//!
//! [`all`] is the one list of providers: alphabetical, explicit, and what the conformance
//! test walks. A name that is not in it is an [`UnknownProvider`] error, never a fallback to
//! some default scheme.

pub mod generic;
pub mod github;
pub mod gitlab;
pub mod linear;
pub mod notion;
pub mod pubsub;
pub mod salesforce;
pub mod sendgrid;
pub mod shopify;
pub mod slack;
pub mod square;
pub mod standard_webhooks;
pub mod stripe;
pub mod twilio;
pub mod zoho;
pub mod zoom;

use super::verify::Verifier;

/// Every provider, alphabetically by name.
pub fn all() -> &'static [&'static dyn Verifier] {
    &[
        &generic::Generic,
        &github::Github,
        &gitlab::Gitlab,
        &linear::Linear,
        &notion::Notion,
        &pubsub::Pubsub,
        &salesforce::Salesforce,
        &sendgrid::Sendgrid,
        &shopify::Shopify,
        &slack::Slack,
        &square::Square,
        &standard_webhooks::StandardWebhooks,
        &stripe::Stripe,
        &twilio::Twilio,
        &zoho::Zoho,
        &zoom::Zoom,
    ]
}

/// A provider name no preset answers to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider `{0}`")]
pub struct UnknownProvider(pub String);

impl UnknownProvider {
    pub fn code(&self) -> &'static str {
        "unknown_provider"
    }
}

/// The verifier called `name`, exactly as [`Verifier::name`] spells it.
pub fn by_name(name: &str) -> Result<&'static dyn Verifier, UnknownProvider> {
    all()
        .iter()
        .copied()
        .find(|v| v.name() == name)
        .ok_or_else(|| UnknownProvider(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::settings::SourceSettings;

    #[test]
    fn the_registry_is_alphabetical_and_unique() {
        let names: Vec<_> = all().iter().map(|v| v.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn every_provider_is_found_by_its_name_and_unknown_names_are_errors() {
        for verifier in all() {
            assert_eq!(by_name(verifier.name()).unwrap().name(), verifier.name());
        }
        let err = by_name("bitbucket").map(|v| v.name()).unwrap_err();
        assert_eq!(err, UnknownProvider("bitbucket".into()));
        assert_eq!(err.code(), "unknown_provider");
        assert!(by_name("GitHub").is_err(), "names are exact");
    }

    #[test]
    fn every_provider_has_a_settings_variant_of_the_same_name() {
        for verifier in all() {
            let doc = serde_json::json!({ "provider": verifier.name() });
            // Missing fields may be an error, but never an unknown variant.
            match serde_json::from_value::<SourceSettings>(doc) {
                Ok(settings) => assert_eq!(settings.provider(), verifier.name()),
                Err(err) => assert!(!err.to_string().contains("unknown variant"), "{err}"),
            }
        }
    }
}
