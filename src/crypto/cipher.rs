use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{AesKey, CryptoError};

type Encryptor = cbc::Encryptor<Aes256>;
type Decryptor = cbc::Decryptor<Aes256>;

/// WeChat pads to 32-byte blocks, not AES's 16 (PROTOCOL §3.3).
const PAD_BLOCK: usize = 32;
/// 16 random bytes, then a 4-byte big-endian message length.
const HEADER_LEN: usize = 20;

/// Encrypts and decrypts WeChat message payloads for one account.
///
/// Plaintext layout: `random(16) | len(u32 BE) | msg | receive_id`, PKCS#7
/// padded to 32 bytes, AES-256-CBC with IV = first 16 key bytes, base64.
#[derive(Clone)]
pub struct MessageCrypto {
    key: AesKey,
    /// The expanded AES key (both directions), computed once: expanding it
    /// costs about as much as encrypting a short message.
    cipher: Aes256,
    receive_id: String,
}

impl std::fmt::Debug for MessageCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageCrypto")
            .field("key", &self.key)
            .field("receive_id", &self.receive_id)
            .finish()
    }
}

/// A decrypted, unpadded plaintext: `random(16) | len | msg | receive_id`,
/// with `msg` at `HEADER_LEN..msg_end`.
struct Opened {
    content: Vec<u8>,
    msg_end: usize,
}

impl MessageCrypto {
    /// `receive_id` is the Official Account app id (or the WeCom corp id).
    pub fn new(key: AesKey, receive_id: impl Into<String>) -> Self {
        MessageCrypto {
            cipher: Aes256::new(key.bytes().into()),
            key,
            receive_id: receive_id.into(),
        }
    }

    /// The key in use.
    pub fn key(&self) -> &AesKey {
        &self.key
    }

    /// The receive id this crypto writes and expects.
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// Encrypts with a fresh random prefix from the thread-local CSPRNG.
    pub fn encrypt(&self, msg: &str) -> String {
        let random: [u8; 16] = rand::random();
        self.encrypt_with_random(&random, msg)
    }

    /// Encrypts with a caller-chosen random prefix (reproduces WeChat's vectors).
    pub fn encrypt_with_random(&self, random: &[u8; 16], msg: &str) -> String {
        let body_len = HEADER_LEN + msg.len() + self.receive_id.len();
        let pad = PAD_BLOCK - body_len % PAD_BLOCK;
        let mut buf = Vec::with_capacity(body_len + pad);
        buf.extend_from_slice(random);
        // WeChat messages are far below 4 GiB; the body limit guarantees it.
        buf.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(self.receive_id.as_bytes());
        buf.resize(body_len + pad, pad as u8);
        let len = buf.len();
        // The buffer length is a multiple of 32, so NoPadding cannot fail.
        let ciphertext = Encryptor::inner_iv_init(self.cipher.clone(), &self.key.iv().into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .expect("BUG: buffer is a whole number of blocks");
        // Straight into a String of the right size (`encode` would check
        // the UTF-8 of its output once more).
        let mut out = String::with_capacity(ciphertext.len().div_ceil(3) * 4);
        STANDARD.encode_string(ciphertext, &mut out);
        out
    }

    /// Decrypts a base64 `Encrypt` value and checks the receive id.
    pub fn decrypt(&self, encrypt: &str) -> Result<String, CryptoError> {
        let Opened {
            mut content,
            msg_end,
        } = self.open(encrypt)?;
        // Not secret, but compare fully anyway so timing says nothing.
        let same_id = content[msg_end..] == *self.receive_id.as_bytes();
        // The message is turned into the String in place: no copy.
        content.truncate(msg_end);
        content.drain(..HEADER_LEN);
        let msg = String::from_utf8(content).map_err(|_| CryptoError::NotUtf8)?;
        if !same_id {
            return Err(CryptoError::AppIdMismatch);
        }
        Ok(msg)
    }

    /// Decrypts without checking the receive id; returns `(msg, receive_id)`.
    ///
    /// For diagnostics (the simulator, `wxgate crypto decrypt`); the request
    /// path uses [`MessageCrypto::decrypt`].
    pub fn decrypt_parts(&self, encrypt: &str) -> Result<(String, String), CryptoError> {
        let Opened { content, msg_end } = self.open(encrypt)?;
        let msg =
            std::str::from_utf8(&content[HEADER_LEN..msg_end]).map_err(|_| CryptoError::NotUtf8)?;
        let receive_id = String::from_utf8_lossy(&content[msg_end..]).into_owned();
        Ok((msg.to_owned(), receive_id))
    }

    /// Base64-decodes, decrypts in place and checks the padding and the
    /// length field.
    fn open(&self, encrypt: &str) -> Result<Opened, CryptoError> {
        let mut buf = STANDARD
            .decode(encrypt.trim())
            .map_err(|_| CryptoError::BadBase64)?;
        if buf.is_empty() || buf.len() % 16 != 0 {
            return Err(CryptoError::BadCipherLength(buf.len()));
        }
        let plain_len = Decryptor::inner_iv_init(self.cipher.clone(), &self.key.iv().into())
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadCipherLength(encrypt.len()))?
            .len();
        let pad = *buf[..plain_len].last().ok_or(CryptoError::BadPadding)? as usize;
        if pad == 0 || pad > PAD_BLOCK || pad > plain_len {
            return Err(CryptoError::BadPadding);
        }
        let content_len = plain_len - pad;
        if buf[content_len..plain_len]
            .iter()
            .any(|&b| b as usize != pad)
        {
            return Err(CryptoError::BadPadding);
        }
        if content_len < HEADER_LEN {
            return Err(CryptoError::LengthOutOfRange);
        }
        let msg_len = u32::from_be_bytes([buf[16], buf[17], buf[18], buf[19]]) as usize;
        let msg_end = HEADER_LEN
            .checked_add(msg_len)
            .filter(|&end| end <= content_len)
            .ok_or(CryptoError::LengthOutOfRange)?;
        buf.truncate(content_len);
        Ok(Opened {
            content: buf,
            msg_end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> MessageCrypto {
        let key =
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        MessageCrypto::new(key, "wxb11529c136998cb6")
    }

    #[test]
    fn official_java_vector() {
        let out = crypto().encrypt_with_random(b"aaaabbbbccccdddd", "我是中文abcd123");
        assert_eq!(
            out,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(crypto().decrypt(&out).unwrap(), "我是中文abcd123");
    }

    #[test]
    fn round_trips_every_padding_length() {
        let c = crypto();
        for n in 0..100 {
            let msg = "x".repeat(n);
            let enc = c.encrypt(&msg);
            assert_eq!(STANDARD.decode(&enc).unwrap().len() % 32, 0);
            assert_eq!(c.decrypt(&enc).unwrap(), msg);
        }
    }

    #[test]
    fn fresh_random_prefix_each_time() {
        let c = crypto();
        assert_ne!(c.encrypt("same"), c.encrypt("same"));
    }

    #[test]
    fn other_app_id_is_refused() {
        let enc = crypto().encrypt("hello");
        let key =
            AesKey::from_encoding_aes_key("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let other = MessageCrypto::new(key, "wx0000000000000000");
        assert_eq!(other.decrypt(&enc), Err(CryptoError::AppIdMismatch));
        assert_eq!(other.decrypt_parts(&enc).unwrap().1, "wxb11529c136998cb6");
    }

    #[test]
    fn malformed_ciphertexts_are_typed_errors() {
        let c = crypto();
        assert_eq!(c.decrypt("not base64!!"), Err(CryptoError::BadBase64));
        assert_eq!(c.decrypt(""), Err(CryptoError::BadCipherLength(0)));
        assert_eq!(
            c.decrypt(&STANDARD.encode([0u8; 17])),
            Err(CryptoError::BadCipherLength(17))
        );
        // Random blocks decrypt to garbage whose padding or length is wrong.
        for seed in 0u8..50 {
            let garbage = STANDARD.encode([seed; 64]);
            assert!(c.decrypt(&garbage).is_err());
        }
    }
}
