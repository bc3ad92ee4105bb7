//! Feishu/Lark event crypto, pure (no I/O): the AES envelope of encrypted
//! event bodies and the `X-Lark-Signature` of signed ones
//! (docs/platforms/feishu.md, with the vectors in tests/fixtures/feishu/).
//!
//! - Encrypted body: `{"encrypt": base64(iv ‖ AES-256-CBC(PKCS#7(plain)))}`
//!   with key = SHA-256(Encrypt Key) and a random 16-byte iv in front.
//! - Signature: hex(SHA-256(timestamp ‖ nonce ‖ Encrypt Key ‖ raw body)),
//!   over the body exactly as received.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::secret::Secret;

type Encryptor = cbc::Encryptor<Aes256>;
type Decryptor = cbc::Decryptor<Aes256>;

/// Why an encrypted body or a signature is refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeishuCryptoError {
    /// `encrypt` is not base64.
    #[error("encrypt is not base64")]
    Base64,
    /// Too short to hold an iv and one block, or not whole blocks.
    #[error("ciphertext of {0} bytes is not an iv and whole AES blocks")]
    Length(usize),
    /// The padding is wrong: another key, or a damaged ciphertext.
    #[error("bad padding (another Encrypt Key?)")]
    Padding,
    /// The plaintext is not UTF-8.
    #[error("plaintext is not UTF-8")]
    Utf8,
    /// The signature does not match.
    #[error("signature mismatch")]
    Signature,
}

/// The cipher of one Encrypt Key. Holds the derived key only.
#[derive(Clone)]
pub struct EventCipher {
    key: [u8; 32],
}

impl std::fmt::Debug for EventCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventCipher(***)")
    }
}

impl EventCipher {
    /// The cipher of `encrypt_key` (the console's Encrypt Key).
    pub fn new(encrypt_key: &Secret) -> Self {
        EventCipher {
            key: Sha256::digest(encrypt_key.expose().as_bytes()).into(),
        }
    }

    /// Decrypts the `encrypt` field of a body.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, FeishuCryptoError> {
        let raw = STANDARD
            .decode(encrypt.trim().as_bytes())
            .map_err(|_| FeishuCryptoError::Base64)?;
        if raw.len() < 32 || raw.len() % 16 != 0 {
            return Err(FeishuCryptoError::Length(raw.len()));
        }
        let (iv, ciphertext) = raw.split_at(16);
        let mut buf = ciphertext.to_vec();
        let iv: [u8; 16] = iv
            .try_into()
            .map_err(|_| FeishuCryptoError::Length(raw.len()))?;
        let plain = Decryptor::new(&self.key.into(), &iv.into())
            .decrypt_padded_mut::<Pkcs7>(&mut buf)
            .map_err(|_| FeishuCryptoError::Padding)?;
        String::from_utf8(plain.to_vec()).map_err(|_| FeishuCryptoError::Utf8)
    }

    /// Encrypts `plain` with `iv` as Feishu does (for the simulator and tests).
    pub fn encrypt(&self, plain: &str, iv: [u8; 16]) -> String {
        let len = plain.len();
        let mut buf = vec![0u8; len + 16];
        buf[..len].copy_from_slice(plain.as_bytes());
        let ciphertext = Encryptor::new(&self.key.into(), &iv.into())
            .encrypt_padded_mut::<Pkcs7>(&mut buf, len)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let mut out = iv.to_vec();
        out.extend_from_slice(&ciphertext);
        STANDARD.encode(out)
    }
}

/// `X-Lark-Signature` of a body: hex(SHA-256(timestamp ‖ nonce ‖ key ‖ body)).
pub fn signature(timestamp: &str, nonce: &str, encrypt_key: &Secret, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(timestamp.as_bytes());
    hash.update(nonce.as_bytes());
    hash.update(encrypt_key.expose().as_bytes());
    hash.update(body);
    hex::encode(hash.finalize())
}

/// Checks `X-Lark-Signature` in constant time (hex case ignored).
pub fn verify_signature(
    timestamp: &str,
    nonce: &str,
    encrypt_key: &Secret,
    body: &[u8],
    given: &str,
) -> Result<(), FeishuCryptoError> {
    let want = signature(timestamp, nonce, encrypt_key, body);
    let given = given.trim().to_ascii_lowercase();
    if want.as_bytes().ct_eq(given.as_bytes()).into() {
        Ok(())
    } else {
        Err(FeishuCryptoError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors scripts/gen_feishu_vectors.py writes (and checks with
    /// Python's `cryptography`).
    const VECTORS: &str = include_str!("../../../tests/fixtures/feishu/vectors.json");

    fn vectors() -> serde_json::Value {
        serde_json::from_str(VECTORS).expect("vectors.json is JSON")
    }

    fn s(v: &serde_json::Value, key: &str) -> String {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing"))
            .to_owned()
    }

    #[test]
    fn the_recorded_ciphertexts_decrypt_and_encrypt_back() {
        let all = vectors();
        let cases = all["decrypt"].as_array().expect("decrypt cases");
        assert!(!cases.is_empty());
        for case in cases {
            let key = Secret::new(s(case, "encrypt_key"));
            let cipher = EventCipher::new(&key);
            assert_eq!(hex::encode(cipher.key), s(case, "aes_key_hex"));
            let plain = cipher.decrypt(&s(case, "encrypt")).expect("decrypts");
            assert_eq!(plain, s(case, "plaintext"));
            let iv: [u8; 16] = hex::decode(s(case, "iv_hex")).unwrap().try_into().unwrap();
            assert_eq!(cipher.encrypt(&plain, iv), s(case, "encrypt"));
        }
    }

    #[test]
    fn the_recorded_signatures_hold_and_a_changed_byte_breaks_them() {
        let all = vectors();
        let cases = all["signature"].as_array().expect("signature cases");
        assert!(!cases.is_empty());
        for case in cases {
            let key = Secret::new(s(case, "encrypt_key"));
            let (ts, nonce, body) = (s(case, "timestamp"), s(case, "nonce"), s(case, "body"));
            let want = s(case, "signature");
            assert_eq!(signature(&ts, &nonce, &key, body.as_bytes()), want);
            assert!(
                verify_signature(&ts, &nonce, &key, body.as_bytes(), &want.to_uppercase()).is_ok()
            );
            let tampered = format!("{body} ");
            assert_eq!(
                verify_signature(&ts, &nonce, &key, tampered.as_bytes(), &want),
                Err(FeishuCryptoError::Signature)
            );
        }
    }

    #[test]
    fn another_key_or_a_damaged_body_is_refused_without_panicking() {
        let cipher = EventCipher::new(&Secret::new("right"));
        let sealed = cipher.encrypt("{\"a\":1}", [7; 16]);
        let other = EventCipher::new(&Secret::new("wrong"));
        assert!(other.decrypt(&sealed).is_err());
        assert_eq!(
            cipher.decrypt("not base64!"),
            Err(FeishuCryptoError::Base64)
        );
        assert_eq!(
            cipher.decrypt(&STANDARD.encode([0u8; 20])),
            Err(FeishuCryptoError::Length(20))
        );
        assert_eq!(cipher.decrypt(""), Err(FeishuCryptoError::Length(0)));
        for cut in 0..sealed.len() {
            let _ = cipher.decrypt(&sealed[..cut]);
        }
        assert_eq!(cipher.decrypt(&sealed).unwrap(), "{\"a\":1}");
    }
}
