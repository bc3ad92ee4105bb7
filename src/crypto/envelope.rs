//! The signed envelope: a ciphertext together with its `msg_signature`,
//! checked and opened, or sealed, in one step. WeCom, the WeCom bot and
//! DingTalk's event callbacks all send `encrypt` with a SHA-1 signature
//! over the sorted token, timestamp, nonce and ciphertext.

use super::{msg_signature, verify_msg_signature, CryptoError, MessageCrypto, Signature};

/// A message sealed for the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The Base64 ciphertext.
    pub encrypt: String,
    /// Its `msg_signature`.
    pub signature: Signature,
}

impl MessageCrypto {
    /// Checks `received` (the `msg_signature`) over `encrypt` with
    /// `token`, `timestamp` and `nonce`, then decrypts and checks the
    /// receive id. The signature is checked first: nothing unauthenticated
    /// is decrypted.
    pub fn open_signed(
        &self,
        token: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
        received: &str,
    ) -> Result<String, CryptoError> {
        verify_msg_signature(token, timestamp, nonce, encrypt, received)?;
        self.decrypt(encrypt)
    }

    /// Encrypts `msg` with a fresh random prefix and signs the ciphertext.
    pub fn seal_signed(&self, token: &str, timestamp: &str, nonce: &str, msg: &str) -> Sealed {
        self.seal_signed_with_random(token, timestamp, nonce, &rand::random(), msg)
    }

    /// As [`MessageCrypto::seal_signed`] with a caller-chosen random prefix
    /// (reproduces recorded vectors).
    pub fn seal_signed_with_random(
        &self,
        token: &str,
        timestamp: &str,
        nonce: &str,
        random: &[u8; 16],
        msg: &str,
    ) -> Sealed {
        let encrypt = self.encrypt_with_random(random, msg);
        let signature = msg_signature(token, timestamp, nonce, &encrypt);
        Sealed { encrypt, signature }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AesKey;

    fn crypto() -> MessageCrypto {
        let key =
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        MessageCrypto::new(key, "dingreceiver")
    }

    #[test]
    fn sealed_opens_and_tampering_does_not() {
        let c = crypto();
        let sealed = c.seal_signed("tok", "1700000000000", "n1", "success");
        assert_eq!(
            c.open_signed(
                "tok",
                "1700000000000",
                "n1",
                &sealed.encrypt,
                sealed.signature.as_str()
            ),
            Ok("success".to_owned())
        );
        assert_eq!(
            c.open_signed(
                "tok",
                "1700000000001",
                "n1",
                &sealed.encrypt,
                sealed.signature.as_str()
            ),
            Err(CryptoError::BadSignature)
        );
        let other = MessageCrypto::new(c.key().clone(), "someone-else");
        assert_eq!(
            other.open_signed(
                "tok",
                "1700000000000",
                "n1",
                &sealed.encrypt,
                sealed.signature.as_str()
            ),
            Err(CryptoError::AppIdMismatch)
        );
    }
}
