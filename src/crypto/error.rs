use thiserror::Error;

/// Every way the WeChat crypto can fail. The `code()` is WeChat's own
/// WXBizMsgCrypt error code, handy when comparing with the official samples.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The computed signature differs from the one supplied (-40001).
    #[error("signature mismatch")]
    BadSignature,
    /// The EncodingAESKey is not 43 base64 characters decoding to 32 bytes (-40004).
    #[error("invalid EncodingAESKey: {0}")]
    BadKey(&'static str),
    /// The ciphertext is not valid base64 (-40010).
    #[error("ciphertext is not valid base64")]
    BadBase64,
    /// The ciphertext length is not a positive multiple of the AES block size (-40007).
    #[error("ciphertext length {0} is not a positive multiple of 16")]
    BadCipherLength(usize),
    /// The padding byte is outside 1..=32 or the padding bytes disagree (-40008).
    #[error("invalid PKCS#7 padding")]
    BadPadding,
    /// The 4-byte length prefix points outside the decrypted buffer (-40008).
    #[error("message length out of range")]
    LengthOutOfRange,
    /// The message is not UTF-8 (-40008).
    #[error("decrypted message is not UTF-8")]
    NotUtf8,
    /// The receive id (app id / corp id) after the message is not ours (-40005).
    #[error("receive id mismatch")]
    AppIdMismatch,
}

impl CryptoError {
    /// WeChat's WXBizMsgCrypt error code for this failure.
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::BadSignature => -40001,
            CryptoError::BadKey(_) => -40004,
            CryptoError::AppIdMismatch => -40005,
            CryptoError::BadCipherLength(_) => -40007,
            CryptoError::BadPadding | CryptoError::LengthOutOfRange | CryptoError::NotUtf8 => {
                -40008
            }
            CryptoError::BadBase64 => -40010,
        }
    }
}
