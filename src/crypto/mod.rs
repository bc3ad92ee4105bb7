//! WeChat's callback cryptography: signatures and the AES "safe mode" envelope.
//!
//! Bytes and strings in, bytes and strings out: this module knows nothing of HTTP,
//! XML, configuration files or logging. Randomness for the 16-byte prefix is passed
//! in by the caller (see [`MessageCrypto::encrypt_with_random`]) so that WeChat's
//! published vectors can be reproduced exactly.

mod cipher;
mod envelope;
mod error;
mod key;
mod signature;

pub use cipher::MessageCrypto;
pub use envelope::Sealed;
pub use error::CryptoError;
pub use key::AesKey;
pub use signature::{msg_signature, signature, verify_msg_signature, verify_signature, Signature};
