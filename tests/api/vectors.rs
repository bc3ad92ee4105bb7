//! Every crypto vector passes through the crypto module: Tencent's published
//! samples, wechatpy's test values, fresh generated ones and the inputs that
//! must be refused (`tests/fixtures/vectors/`, from `scripts/gen_vectors.py`;
//! or the set `WXGATE_VECTORS_DIR` names — a missing one fails).

use serde_json::Value;
use wxgate::crypto::{self, AesKey, CryptoError, MessageCrypto};
use wxgate::message::envelope;

use crate::support::fixtures::load_vectors as load;

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no {key}", v["name"]))
}

fn crypto_for(v: &Value) -> MessageCrypto {
    let key = AesKey::from_encoding_aes_key(s(v, "encoding_aes_key")).unwrap();
    if let Some(hex_key) = v["aes_key_hex"].as_str() {
        assert_eq!(hex::encode(key.bytes()), hex_key, "{}", v["name"]);
    }
    MessageCrypto::new(key, s(v, "receive_id"))
}

fn random16(v: &Value) -> [u8; 16] {
    hex::decode(s(v, "random_hex")).unwrap().try_into().unwrap()
}

fn check_positive(v: &Value) -> usize {
    let name = s(v, "name");
    let mut checks = 0;
    if let (Some(sig), Some(ts), Some(nonce)) = (
        v["signature"].as_str(),
        v["timestamp"].as_str(),
        v["nonce"].as_str(),
    ) {
        assert_eq!(
            crypto::signature(s(v, "token"), ts, nonce).as_str(),
            sig,
            "{name}: signature"
        );
        if let Some(bad) = v["bad_signature"].as_str() {
            assert!(
                crypto::verify_signature(s(v, "token"), ts, nonce, bad).is_err(),
                "{name}"
            );
        }
        checks += 1;
    }
    if v["encoding_aes_key"].is_null() {
        return checks;
    }
    let c = crypto_for(v);
    let encrypt = v["encrypt"].as_str().or(v["echostr"].as_str());
    if let (Some(sig), Some(ts), Some(nonce), Some(enc)) = (
        v["msg_signature"].as_str(),
        v["timestamp"].as_str(),
        v["nonce"].as_str(),
        encrypt,
    ) {
        crypto::verify_msg_signature(s(v, "token"), ts, nonce, enc, sig)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        checks += 1;
    }
    if let Some(query) = v["query"].as_object() {
        let enc = s(v, "encrypt");
        let q = |k: &str| query.get(k).and_then(Value::as_str);
        let (ts, nonce) = (q("timestamp").unwrap(), q("nonce").unwrap());
        let sig = q("msg_signature").expect("encrypted inbound vectors carry msg_signature");
        crypto::verify_msg_signature(s(v, "token"), ts, nonce, enc, sig)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(plain_sig) = q("signature") {
            crypto::verify_signature(s(v, "token"), ts, nonce, plain_sig)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        checks += 1;
    }
    if let Some(body) = v["post_body"].as_str() {
        let parsed = envelope::parse_encrypted(body.as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.encrypt, s(v, "encrypt"), "{name}: Encrypt from body");
        checks += 1;
    }
    if let Some(enc) = encrypt {
        let expected = v["expected_msg"]
            .as_str()
            .or(v["msg"].as_str())
            .or(v["expected_response_body"].as_str());
        let plain = c
            .decrypt(enc)
            .unwrap_or_else(|e| panic!("{name}: decrypt: {e}"));
        if let Some(expected) = expected {
            assert_eq!(plain, expected, "{name}: decrypted message");
        }
        if let Some(len) = v["expected_msg_len"].as_u64().or(v["msg_len"].as_u64()) {
            assert_eq!(plain.len() as u64, len, "{name}: msg_len is in bytes");
        }
        checks += 1;
    }
    if let (Some(msg), Some(_)) = (v["msg"].as_str(), v["random_hex"].as_str()) {
        let out = c.encrypt_with_random(&random16(v), msg);
        assert_eq!(out, s(v, "encrypt"), "{name}: encrypt");
        checks += 1;
        if let Some(expected_env) = v["reply_envelope"].as_str() {
            let sig = crypto::msg_signature(s(v, "token"), s(v, "timestamp"), s(v, "nonce"), &out);
            assert_eq!(
                sig.as_str(),
                s(v, "msg_signature"),
                "{name}: reply signature"
            );
            let env =
                envelope::render_encrypted(&out, sig.as_str(), s(v, "timestamp"), s(v, "nonce"));
            assert_eq!(env, expected_env, "{name}: envelope byte for byte");
            checks += 1;
        }
    }
    checks
}

#[test]
fn official_vectors() {
    let total: usize = load("official_vectors.json")
        .iter()
        .map(check_positive)
        .sum();
    assert!(total >= 29, "only {total} checks ran");
}

#[test]
fn generated_vectors() {
    let vectors = load("generated_vectors.json");
    let total: usize = vectors.iter().map(check_positive).sum();
    assert!(total >= 25, "only {total} checks ran");
    let get = vectors
        .iter()
        .find(|v| v["name"] == "gen_oa_get_verify")
        .unwrap();
    for wrong in ["wrong_if_joined_with_ampersand", "wrong_if_unsorted"] {
        let w = get[wrong]
            .as_object()
            .map(|o| o["signature"].as_str().unwrap().to_owned())
            .or(get[wrong].as_str().map(str::to_owned))
            .unwrap();
        assert!(crypto::verify_signature(
            s(get, "token"),
            s(get, "timestamp"),
            s(get, "nonce"),
            &w
        )
        .is_err());
    }
}

#[test]
fn wechatpy_vectors() {
    let total: usize = load("wechatpy_test_vectors.json")
        .iter()
        .map(check_positive)
        .sum();
    assert!(total >= 8, "only {total} checks ran");
}

#[test]
fn negative_vectors_fail_with_the_documented_code() {
    let vectors = load("negative_vectors.json");
    assert_eq!(vectors.len(), 9);
    for v in &vectors {
        let name = s(v, "name");
        let want = v["expect_error"].as_i64().unwrap() as i32;
        let got: i32 = match name {
            "neg_short_key" => AesKey::from_encoding_aes_key(s(v, "encoding_aes_key"))
                .unwrap_err()
                .code(),
            "neg_bad_base64" | "neg_len_not_multiple_of_16" => {
                let c = MessageCrypto::new(
                    AesKey::from_encoding_aes_key(&"A".repeat(43)).unwrap(),
                    "wx",
                );
                c.decrypt(s(v, "encrypt")).unwrap_err().code()
            }
            "neg_doctype_body" => {
                assert!(matches!(
                    envelope::parse_encrypted(s(v, "post_body").as_bytes()),
                    Err(wxgate::message::XmlError::Doctype)
                ));
                -40002
            }
            _ => {
                let c = crypto_for(v);
                let (ts, nonce, sig, enc) = match v["query"].as_object() {
                    Some(q) => {
                        let body = envelope::parse_encrypted(s(v, "post_body").as_bytes())
                            .unwrap()
                            .unwrap();
                        (
                            q["timestamp"].as_str().unwrap().to_owned(),
                            q["nonce"].as_str().unwrap().to_owned(),
                            q["msg_signature"].as_str().unwrap().to_owned(),
                            body.encrypt,
                        )
                    }
                    None => (
                        s(v, "timestamp").into(),
                        s(v, "nonce").into(),
                        s(v, "msg_signature").into(),
                        s(v, "encrypt").into(),
                    ),
                };
                match crypto::verify_msg_signature(s(v, "token"), &ts, &nonce, &enc, &sig) {
                    Err(e) => e.code(),
                    Ok(()) => c
                        .decrypt(&enc)
                        .map(|_| 0)
                        .unwrap_or_else(|e: CryptoError| e.code()),
                }
            }
        };
        assert_eq!(got, want, "{name}");
    }
}
