use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use super::CryptoError;

/// A SHA-1 signature as WeChat writes it: 40 lowercase hex digits.
///
/// Kept as a fixed-size array so that signing allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 40]);

impl Signature {
    /// The signature as text.
    pub fn as_str(&self) -> &str {
        // Only ever filled by `hex::encode_to_slice`, which writes ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Compares with a signature received from the network, in constant time
    /// and case-insensitively (WeChat sends lowercase; some proxies do not).
    pub fn matches(&self, received: &str) -> bool {
        let received = received.as_bytes();
        if received.len() != 40 {
            return false;
        }
        let mut lowered = [0u8; 40];
        for (dst, src) in lowered.iter_mut().zip(received) {
            *dst = src.to_ascii_lowercase();
        }
        self.0.ct_eq(&lowered).into()
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", self.as_str())
    }
}

/// SHA-1 over the parts sorted as byte strings and joined with nothing.
fn sorted_sha1(parts: &mut [&str]) -> Signature {
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts.iter() {
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 40];
    // A 20-byte digest always fits 40 hex digits.
    let _ = hex::encode_to_slice(digest, &mut out);
    Signature(out)
}

/// The plaintext-mode `signature`: sha1 of sorted token, timestamp, nonce.
pub fn signature(token: &str, timestamp: &str, nonce: &str) -> Signature {
    sorted_sha1(&mut [token, timestamp, nonce])
}

/// The `msg_signature` of safe and compatible mode and of WeCom:
/// sha1 of sorted token, timestamp, nonce and the base64 ciphertext.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> Signature {
    sorted_sha1(&mut [token, timestamp, nonce, encrypt])
}

/// Checks a plaintext-mode `signature` in constant time.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    received: &str,
) -> Result<(), CryptoError> {
    if signature(token, timestamp, nonce).matches(received) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

/// Checks a `msg_signature` in constant time.
pub fn verify_msg_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    received: &str,
) -> Result<(), CryptoError> {
    if msg_signature(token, timestamp, nonce, encrypt).matches(received) {
        Ok(())
    } else {
        Err(CryptoError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_doc_signature() {
        let sig = signature("AAAAA", "1714037059", "486452656");
        assert_eq!(sig.as_str(), "899cf89e464efb63f54ddac96b0a0a235f53aa78");
        assert!(verify_signature("AAAAA", "1714037059", "486452656", sig.as_str()).is_ok());
    }

    #[test]
    fn uppercase_hex_is_accepted_and_wrong_length_is_not() {
        let sig = signature("test", "1410685589", "test");
        assert_eq!(sig.as_str(), "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff");
        assert!(sig.matches(&sig.as_str().to_uppercase()));
        assert!(!sig.matches(&sig.as_str()[..39]));
        assert!(!sig.matches(""));
        assert_eq!(
            verify_signature(
                "test",
                "1410685589",
                "test",
                "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
            ),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn msg_signature_covers_the_ciphertext() {
        let a = msg_signature("t", "1", "2", "AAAA");
        let b = msg_signature("t", "1", "2", "AAAB");
        assert_ne!(a, b);
        assert!(verify_msg_signature("t", "1", "2", "AAAA", a.as_str()).is_ok());
        assert!(verify_msg_signature("t", "1", "2", "AAAB", a.as_str()).is_err());
    }
}
