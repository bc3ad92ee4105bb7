use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::CryptoError;

/// Decodes EncodingAESKeys: the 43rd character usually carries two non-zero
/// surplus bits, which WeChat's own SDKs ignore and strict base64 rejects.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The 32-byte AES key derived from a 43-character EncodingAESKey.
///
/// Only [`AesKey::from_encoding_aes_key`] makes one, so holding an `AesKey`
/// means the key is well-formed. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl AesKey {
    /// Parses the EncodingAESKey shown in the WeChat console.
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self, CryptoError> {
        if encoding_aes_key.len() != 43 {
            return Err(CryptoError::BadKey("must be exactly 43 characters"));
        }
        if !encoding_aes_key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(CryptoError::BadKey("must contain only letters and digits"));
        }
        let bytes = KEY_ENGINE
            .decode(encoding_aes_key)
            .map_err(|_| CryptoError::BadKey("not valid base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::BadKey("does not decode to 32 bytes"))?;
        Ok(AesKey(key))
    }

    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// WeChat's IV: the first 16 bytes of the key.
    pub fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_key_with_trailing_bits_decodes() {
        let key =
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert_eq!(
            hex::encode(key.bytes()),
            "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
        );
    }

    #[test]
    fn all_a_key_is_zero() {
        let key = AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap();
        assert_eq!(key.bytes(), &[0u8; 32]);
    }

    #[test]
    fn wrong_lengths_and_characters_are_rejected() {
        for bad in [
            "",
            "abc",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}+", "A".repeat(42)),
        ] {
            assert!(
                matches!(
                    AesKey::from_encoding_aes_key(bad),
                    Err(CryptoError::BadKey(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let key = AesKey::from_encoding_aes_key(&"B".repeat(43)).unwrap();
        assert_eq!(format!("{key:?}"), "AesKey(<redacted>)");
    }
}
