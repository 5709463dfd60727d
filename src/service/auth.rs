//! API keys: random bearer tokens, stored as SHA-256 hashes (they carry 190 bits of entropy,
//! so a fast hash is enough) and compared in constant time.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Result, Service, ServiceError};
use crate::domain::Principal;

const KEY_PREFIX: &str = "hr_";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new key: `hr_` and 32 base62 characters.
pub fn generate_key() -> String {
    let mut rng = rand::rng();
    let body: String = (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{KEY_PREFIX}{body}")
}

pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl Service {
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Principal> {
        let key = bearer
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or(ServiceError::Unauthorized)?;
        let hash = hash_key(key);
        if bool::from(hash.as_bytes().ct_eq(self.admin_key_hash.as_bytes())) {
            return Ok(Principal::Admin);
        }
        match self.store.find_api_key(&hash).await? {
            Some(k) => Ok(match k.tenant_id {
                Some(tenant) => Principal::Tenant(tenant),
                None => Principal::Admin,
            }),
            None => Err(ServiceError::Unauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 35);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), hash_key(&b));
        assert!(!hash_key(&a).contains(&a[3..]));
    }
}
