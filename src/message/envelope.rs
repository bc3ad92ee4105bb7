//! The `<Encrypt>` wrapper of safe and compatible mode (PROTOCOL §2, §3.5).

use super::xml::{self, push_cdata_element, XmlError};

/// What an encrypted request body carries outside the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedBody {
    /// `ToUserName` (unauthenticated; informative only).
    pub to_user: Option<String>,
    /// The base64 ciphertext.
    pub encrypt: String,
}

/// Reads `<Encrypt>` from a safe- or compatible-mode body.
///
/// `Ok(None)` when the document is fine but has no `<Encrypt>`. The body is
/// checked as [`xml::parse`] checks it, but only the two fields are kept.
pub fn parse_encrypted(body: &[u8]) -> Result<Option<EncryptedBody>, XmlError> {
    let [encrypt, to_user] = xml::top_level_texts(body, ["Encrypt", "ToUserName"])?;
    Ok(encrypt.map(|encrypt| EncryptedBody { to_user, encrypt }))
}

/// Renders the encrypted reply envelope.
pub fn render_encrypted(
    encrypt: &str,
    msg_signature: &str,
    timestamp: &str,
    nonce: &str,
) -> String {
    let mut out = String::with_capacity(encrypt.len() + 160);
    out.push_str("<xml>\n");
    push_cdata_element(&mut out, "Encrypt", encrypt);
    out.push('\n');
    push_cdata_element(&mut out, "MsgSignature", msg_signature);
    out.push('\n');
    out.push_str("<TimeStamp>");
    out.push_str(timestamp);
    out.push_str("</TimeStamp>\n");
    push_cdata_element(&mut out, "Nonce", nonce);
    out.push_str("\n</xml>");
    out
}

/// The fields of an encrypted reply, as a client (the simulator) reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    /// Ciphertext.
    pub encrypt: String,
    /// Signature over token, timestamp, nonce, ciphertext.
    pub msg_signature: String,
    /// Reply timestamp.
    pub timestamp: String,
    /// Reply nonce.
    pub nonce: String,
}

/// Reads an encrypted reply envelope; `Ok(None)` if it is not one.
pub fn parse_encrypted_reply(body: &[u8]) -> Result<Option<EncryptedReply>, XmlError> {
    let fields = xml::top_level_texts(body, ["Encrypt", "MsgSignature", "TimeStamp", "Nonce"])?;
    Ok(match fields {
        [Some(encrypt), Some(msg_signature), Some(timestamp), Some(nonce)] => {
            Some(EncryptedReply {
                encrypt,
                msg_signature,
                timestamp,
                nonce,
            })
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip() {
        let xml = render_encrypted("abc+/=", "0123", "1713424427", "415670741");
        let reply = parse_encrypted_reply(xml.as_bytes()).unwrap().unwrap();
        assert_eq!(reply.encrypt, "abc+/=");
        assert_eq!(reply.msg_signature, "0123");
        assert_eq!(reply.timestamp, "1713424427");
        assert_eq!(reply.nonce, "415670741");
    }

    #[test]
    fn body_without_encrypt() {
        assert_eq!(parse_encrypted(b"<xml><A>1</A></xml>").unwrap(), None);
        let body =
            parse_encrypted(b"<xml><ToUserName>gh</ToUserName><Encrypt>QUJD</Encrypt></xml>")
                .unwrap()
                .unwrap();
        assert_eq!(body.encrypt, "QUJD");
        assert_eq!(body.to_user.as_deref(), Some("gh"));
    }
}
