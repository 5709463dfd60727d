//! Endpoint signing secrets in the Standard Webhooks format: `whsec_` + base64 of 24–64
//! random bytes. A rotation keeps the previous secret signing until its grace ends.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::Invalid;

pub const PREFIX: &str = "whsec_";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EndpointSecret(String);

impl std::fmt::Debug for EndpointSecret {
    // Secrets never reach a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointSecret(<redacted>)")
    }
}

impl EndpointSecret {
    pub fn generate() -> Self {
        let mut key = [0u8; 24];
        rand::rng().fill_bytes(&mut key);
        EndpointSecret(format!("{PREFIX}{}", STANDARD.encode(key)))
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || {
            Invalid::new(
                "invalid_secret",
                "secret must be `whsec_` followed by base64 of 24 to 64 bytes",
            )
        };
        let body = s.strip_prefix(PREFIX).ok_or_else(bad)?;
        let key = STANDARD.decode(body).map_err(|_| bad())?;
        if !(24..=64).contains(&key.len()) {
            return Err(bad());
        }
        Ok(EndpointSecret(s.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key bytes.
    pub fn key(&self) -> Vec<u8> {
        STANDARD
            .decode(self.0.strip_prefix(PREFIX).unwrap_or(&self.0))
            .unwrap_or_default()
    }
}

/// The secret that signs now, and those still in their rotation grace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSet {
    pub current: EndpointSecret,
    #[serde(default)]
    pub previous: Vec<RetiredSecret>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredSecret {
    pub secret: EndpointSecret,
    pub expires_at: DateTime<Utc>,
}

impl SecretSet {
    pub fn new(current: EndpointSecret) -> Self {
        SecretSet {
            current,
            previous: Vec::new(),
        }
    }

    /// Every secret that signs at `now`: the current one first.
    pub fn signing(&self, now: DateTime<Utc>) -> Vec<&EndpointSecret> {
        std::iter::once(&self.current)
            .chain(
                self.previous
                    .iter()
                    .filter(|r| r.expires_at > now)
                    .map(|r| &r.secret),
            )
            .collect()
    }

    /// Makes `next` current; the old current signs alongside it until `now + grace`.
    /// A rotation without grace is an emergency (a leaked secret): every older secret stops
    /// signing at once.
    pub fn rotate(&mut self, next: EndpointSecret, now: DateTime<Utc>, grace: chrono::Duration) {
        let old = std::mem::replace(&mut self.current, next);
        if grace <= chrono::Duration::zero() {
            self.previous.clear();
            return;
        }
        self.previous.retain(|r| r.expires_at > now);
        self.previous.push(RetiredSecret {
            secret: old,
            expires_at: now + grace,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse() {
        let s = EndpointSecret::generate();
        assert!(s.expose().starts_with(PREFIX));
        assert_eq!(s.key().len(), 24);
        assert_eq!(EndpointSecret::parse(s.expose()).unwrap(), s);
    }

    #[test]
    fn rejects_malformed_secrets() {
        for bad in ["abc", "whsec_", "whsec_!!!", "whsec_c2hvcnQ="] {
            assert!(EndpointSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = EndpointSecret::generate();
        assert!(!format!("{s:?}").contains(s.expose()));
    }

    #[test]
    fn rotation_keeps_the_old_secret_for_the_grace_only() {
        let now = Utc::now();
        let first = EndpointSecret::generate();
        let mut set = SecretSet::new(first.clone());
        let second = EndpointSecret::generate();
        set.rotate(second.clone(), now, chrono::Duration::seconds(60));
        assert_eq!(set.signing(now), vec![&second, &first]);
        assert_eq!(
            set.signing(now + chrono::Duration::seconds(61)),
            vec![&second]
        );
    }
}
