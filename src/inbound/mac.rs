//! The cryptographic plumbing the providers share: HMACs, signature encodings, and the
//! constant-time matching of a presented signature or token against every configured secret.
//!
//! Every comparison of a secret-derived value goes through [`matching_secret`] or
//! [`check_token`]; nothing here branches on secret bytes or returns a secret in an error.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::settings::{HmacAlgorithm, HmacScheme, SignatureEncoding, SourceSecret};
use super::verify::{InboundRequest, VerifyError};

fn mac_with<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// HMAC of the concatenation of `parts`.
pub(crate) fn hmac(algorithm: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    match algorithm {
        HmacAlgorithm::Sha1 => mac_with::<Hmac<Sha1>>(key, parts),
        HmacAlgorithm::Sha256 => mac_with::<Hmac<Sha256>>(key, parts),
        HmacAlgorithm::Sha512 => mac_with::<Hmac<Sha512>>(key, parts),
    }
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    hmac(HmacAlgorithm::Sha256, key, parts)
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

/// Hex of either case; `None` when it is not hex.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    text.chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

pub(crate) fn from_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

pub(crate) fn decode(encoding: SignatureEncoding, text: &str) -> Option<Vec<u8>> {
    match encoding {
        SignatureEncoding::Hex => from_hex(text),
        SignatureEncoding::Base64 => from_base64(text),
    }
}

/// The first secret whose MAC (computed by `mac` from the secret's bytes) equals one of the
/// `presented` signatures. Every secret is tried against every signature, each comparison
/// in constant time, so how long this takes does not depend on which one matched.
pub(crate) fn matching_secret<'s>(
    secrets: &'s [SourceSecret],
    presented: &[Vec<u8>],
    mac: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<&'s SourceSecret, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::Misconfigured("no secret is configured".into()));
    }
    let mut found = None;
    for secret in secrets {
        let expected = mac(secret.as_bytes());
        let matches = presented.iter().fold(subtle::Choice::from(0), |any, sig| {
            any | expected.ct_eq(sig)
        });
        if bool::from(matches) && found.is_none() {
            found = Some(secret);
        }
    }
    found.ok_or(VerifyError::BadSignature)
}

/// Checks a configurable HMAC header: `{prefix}{encoded HMAC(secret, content)}` in
/// `scheme.header`, where `content` is the concatenation of `parts`.
pub(crate) fn check_header_hmac<'s>(
    request: &InboundRequest<'_>,
    scheme: &HmacScheme,
    secrets: &'s [SourceSecret],
    parts: &[&[u8]],
) -> Result<&'s SourceSecret, VerifyError> {
    valid_header_name(&scheme.header)?;
    let header = request.required_header(&scheme.header, VerifyError::MissingSignature)?;
    let encoded = match &scheme.prefix {
        Some(prefix) => header.strip_prefix(prefix.as_str()).ok_or_else(|| {
            VerifyError::Malformed(format!("header {} lacks its prefix", scheme.header))
        })?,
        None => header,
    };
    let signature = decode(scheme.encoding, encoded).ok_or_else(|| {
        VerifyError::Malformed(format!(
            "header {} is not {:?}-encoded",
            scheme.header, scheme.encoding
        ))
    })?;
    matching_secret(secrets, &[signature], |key| {
        hmac(scheme.algorithm, key, parts)
    })
}

/// A header name from the settings must be one HTTP allows, or no request could ever match.
pub(crate) fn valid_header_name(name: &str) -> Result<(), VerifyError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(drop)
        .map_err(|_| VerifyError::Misconfigured(format!("`{name}` is not a header name")))
}

/// A shared token compared with every configured one. Both sides are hashed first, so the
/// comparison takes the same time whatever the lengths.
pub(crate) fn check_token(secrets: &[SourceSecret], presented: &str) -> Result<(), VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::Misconfigured("no token is configured".into()));
    }
    let presented = sha256(presented.as_bytes());
    let matches = secrets.iter().fold(subtle::Choice::from(0), |any, secret| {
        any | sha256(secret.as_bytes()).ct_eq(&presented)
    });
    if bool::from(matches) {
        Ok(())
    } else {
        Err(VerifyError::BadToken)
    }
}

/// Constant-time equality of two public values derived from the body (digests).
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex("+1"), None);
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            to_hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn any_configured_secret_may_match() {
        let secrets = [SourceSecret::new("old"), SourceSecret::new("new")];
        let sig = hmac_sha256(b"new", &[b"body"]);
        let found = matching_secret(&secrets, &[vec![1, 2], sig], |k| hmac_sha256(k, &[b"body"]));
        assert_eq!(found.unwrap().expose(), "new");
        let none = matching_secret(&secrets, &[vec![1, 2]], |k| hmac_sha256(k, &[b"body"]));
        assert_eq!(none, Err(VerifyError::BadSignature));
        assert_eq!(
            matching_secret(&[], &[], |k| k.to_vec())
                .unwrap_err()
                .code(),
            "misconfigured"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        let secrets = [SourceSecret::new("token-1")];
        assert_eq!(check_token(&secrets, "token-1"), Ok(()));
        assert_eq!(check_token(&secrets, "token-"), Err(VerifyError::BadToken));
        assert_eq!(check_token(&secrets, ""), Err(VerifyError::BadToken));
    }
}
