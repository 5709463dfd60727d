//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): `webhook-signature` is
//! `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), several space-separated
//! during a secret rotation. This module never logs and never returns a secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::secret::EndpointSecret;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// One `v1,<base64>` signature.
pub fn sign(secret: &EndpointSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    sign_with_key(&secret.key(), id, timestamp, body)
}

fn sign_with_key(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&EndpointSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no signature matches")]
    NoMatch,
    #[error("timestamp outside the tolerance")]
    StaleTimestamp,
}

/// Checks a `webhook-signature` header the way a receiver does: any `v1` entry matching
/// counts, compared in constant time; the timestamp must be within `tolerance_s` of `now`.
pub fn verify(
    secret: &EndpointSecret,
    header: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    if (now - timestamp).abs() > tolerance_s {
        return Err(VerifyError::StaleTimestamp);
    }
    let expected = sign(secret, id, timestamp, body);
    let expected = expected.as_bytes();
    let found = header
        .split(' ')
        .filter(|s| s.starts_with("v1,"))
        .any(|s| bool::from(s.as_bytes().ct_eq(expected)));
    if found {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_header_carries_both_signatures() {
        let a = EndpointSecret::generate();
        let b = EndpointSecret::generate();
        let header = signature_header(&[&a, &b], "msg_1", 100, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(verify(&a, &header, "msg_1", 100, b"{}", 100, 300).is_ok());
        assert!(verify(&b, &header, "msg_1", 100, b"{}", 100, 300).is_ok());
    }

    #[test]
    fn verify_rejects_tampering_and_staleness() {
        let s = EndpointSecret::generate();
        let header = sign(&s, "msg_1", 100, b"{}");
        assert_eq!(
            verify(&s, &header, "msg_1", 100, b"{ }", 100, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&s, &header, "msg_2", 100, b"{}", 100, 300),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(&s, &header, "msg_1", 100, b"{}", 1000, 300),
            Err(VerifyError::StaleTimestamp)
        );
    }
}
