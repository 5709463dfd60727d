//! Test-only asymmetric keys, shared by the verifier tests (`inbound_vectors.rs`) and the
//! receive-path tests (`inbound_providers.rs`): an RSA key that signs Pub/Sub-style RS256
//! tokens, and ECDSA P-256 keys that sign like SendGrid.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde_json::Value;

/// A 2048-bit RSA key made for these tests only (PKCS#1 DER), and its public JWK members.
pub const TEST_RSA_DER: &str = concat!(
    "MIIEpAIBAAKCAQEA17EOygXB+LYrnkb3cHiQp97+EiBOo1w12oHB0M8YOfiBoKxUxU1JLbW0MEQM",
    "XinpKdL3BNRBTGk0YdM6PazMOlrtoPHZW0ym3jhmWviJG0qK0HuDuxiuqdk1Ebags4F+HmbRw6Qh",
    "SQQmfmDv1D9HwSQNlUeGRh2TEvh2loWIva2l1LNJc6dJVdim/BIF5f1bYtKa693wkjH6p48ukvAv",
    "6TgFcy+6goR5MEnk1UMQfl1fr6d8h4yZGNcQwKJxlY0MLaH82W0O3YhEJpc8eXfvw362H7EbJJi6",
    "kZytRwlqoG3S3lzY+FTlrHe1y8qr3IVQu5+DtxOr68rmexZVKyZlUwIDAQABAoIBAAGhVZ/ymdwM",
    "CcRb0PRJVP6P0ZJy1WVSsG2DBuNRzWMSx8Kzyr2QWfnod6uDDXzgtYxwCxc+63IXvCJJJcA1lXg+",
    "G7Gtt5uDDCJ91qLgDK6SH6kiZdp800UhXnn7IWJ58L7AvtvLBR1iKfr74el+w5y9ba+FJ4n8IJJy",
    "Ik388GL5RiD3doBk/cZYtd1CBohwqiiNqdFfqUbZErtN9QN72aPicviCFwOG/QNia5m+MI7WY16B",
    "tqaHY1Cb+UE4rP4/MEvnLEiIO5nC27T6lxfJkrCdR8uQN15goDqeEjXDOMFh2Lpv7Gb05bsgdl2T",
    "wgCHnsVwDTsGYbpKN81A7kdwg5ECgYEA89crQv8RtrSQyqpdcKM0hErqRDH52PxN3Nxw4TduavYG",
    "xh9+uNUPs7PGs6tfDhMW3Yh3P54kc3kgt5IlG651nIBurci+Q5d7Ss1ef94sECOrrFCfcehCBv/s",
    "xYtY1C9rqhlyXuPnfsbprNy22Aq/m4V1fhqtQ+cykNUiihfmzh8CgYEA4nKLZqiHW9goZc+F1Rs7",
    "RAfOTkP61zx41ZZkFMu6YjOTsODAwiJB1+Y8vU+OD6uPymP1aTu79AKe/UIqMDbu19r0gS1bsGbj",
    "5yvunx/yu7HBmWTxIuY0RxUmWNTKgXTU91odCU1LoBRQR0bfrGRmoQaJHdyvwDhONYihsAJM2k0C",
    "gYEAlyuQgIqNus2a7mpMX6Zuyo1/SyQIl4Nj6kcoHBg3dkxsyqt/7qr4fxo3V/AokBs5k8Ik2+X5",
    "BzXTGLucEdtIwuvEsiy/+DuTjj5gFbnxa1gR+FRLZVzuglRrv9SyD2oOv3fjNfzo6en7uNVk7e9L",
    "9uj4fGOhg3V0HeJk9WP4DVUCgYARA4ItyGPDJs6CN8FabZ1aUyvQ/ZKPMV/yzEXguh3a2v0xwPE6",
    "pNBFpGrT3nJSAxXeovwBWBebEcdYR+xbiwUO+sh8HChTbKea6tYW5pOaPpTJLahgcuNio9gpvHMq",
    "ntiRbRfZZxFTibMuZ8jObwy29ILA15/s1U4q/4UGcGXN0QKBgQCHIDh+G/q4pCAZeisPHR7Z4nN3",
    "LvSOXCr/2AnJ7jxdkfOtq8pYWr5+Mz0pUpojodNAyAzdX5wu9X4YVUsHyBnUuOzX6jwVCMO6PDUC",
    "JZlHdk+v+qwtN5DZGamcASAFCrdBxiAvR0qfYCIXu/3YcAzfMHjv6xl1MEEe3Zo3l0A0GQ==",
);
pub const TEST_RSA_N: &str = concat!(
    "17EOygXB-LYrnkb3cHiQp97-EiBOo1w12oHB0M8YOfiBoKxUxU1JLbW0MEQMXinpKdL3BNRBTGk0",
    "YdM6PazMOlrtoPHZW0ym3jhmWviJG0qK0HuDuxiuqdk1Ebags4F-HmbRw6QhSQQmfmDv1D9HwSQN",
    "lUeGRh2TEvh2loWIva2l1LNJc6dJVdim_BIF5f1bYtKa693wkjH6p48ukvAv6TgFcy-6goR5MEnk",
    "1UMQfl1fr6d8h4yZGNcQwKJxlY0MLaH82W0O3YhEJpc8eXfvw362H7EbJJi6kZytRwlqoG3S3lzY",
    "-FTlrHe1y8qr3IVQu5-DtxOr68rmexZVKyZlUw",
);
pub const TEST_KID: &str = "hookrelay-test-rsa";
pub const PUSH_ACCOUNT: &str = "push@my-project.iam.gserviceaccount.com";

/// A JWT with `header` and `claims`, RS256-signed with the test RSA key (whatever `kid` the
/// header names).
pub fn rs256_jwt(header: &Value, claims: &Value) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = RsaKeyPair::from_der(&STANDARD.decode(TEST_RSA_DER).unwrap()).unwrap();
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub struct EcKey(EcdsaKeyPair);

impl EcKey {
    pub fn generate() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        EcKey(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    /// base64 DER SubjectPublicKeyInfo, the form SendGrid shows.
    pub fn spki_base64(&self) -> String {
        const HEADER: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        STANDARD.encode([&HEADER[..], self.0.public_key().as_ref()].concat())
    }

    /// SendGrid's signature: base64 DER ECDSA P-256 SHA-256 of `{timestamp}{body}`.
    pub fn sign_sendgrid(&self, timestamp: i64, body: &[u8]) -> String {
        let content = [timestamp.to_string().as_bytes(), body].concat();
        let sig = self.0.sign(&SystemRandom::new(), &content).unwrap();
        STANDARD.encode(sig.as_ref())
    }
}
