//! The recorded WeCom fixtures (`tests/fixtures/wecom/`) and the WeCom crypto
//! vectors, through wxgate's crypto and message modules: signatures verify,
//! ciphertexts decrypt with the corp id as receive id (and only with it), and
//! re-encrypting with the recorded prefix gives the recorded bytes back.

use std::collections::BTreeMap;

use serde_json::Value;
use wxgate::crypto::{self, AesKey, CryptoError, MessageCrypto};
use wxgate::message::{envelope, xml, Event, Message, MessageKind};

use crate::support::fake_wechat::{AGENT_ID, CORP_ID};
use crate::support::fixtures::{
    load_vectors, read_wecom as read, wecom_crypto, wecom_manifest, WECOM_ACCOUNT,
};
use crate::support::{kf_notification_xml, CallbackClient};

/// The query pairs of a URL query, each decoded exactly once.
fn query_pairs(query: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://wecom.invalid/?{query}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn random16(text: &[u8]) -> [u8; 16] {
    text.try_into().expect("16-byte random prefix")
}

const KINDS: [&str; 7] = [
    "event_change_contact",
    "event_click",
    "event_enter_agent",
    "event_kf_msg_or_event",
    "event_location",
    "image",
    "text",
];

#[test]
fn the_fixture_account_is_the_fake_corp() {
    let a = &*WECOM_ACCOUNT;
    assert_eq!(
        a.corp_id, CORP_ID,
        "fixtures and the fake WeCom API share a corp"
    );
    assert_eq!(a.agent_id, AGENT_ID);
    assert!(a.corp_id.starts_with("ww") && a.corp_id.len() == 18);
    // Like the OA key, this one has surplus bits set: a strict decoder refuses it.
    use base64::Engine;
    let strict = base64::engine::general_purpose::STANDARD;
    assert!(strict.decode(format!("{}=", a.encoding_aes_key)).is_err());
    AesKey::from_encoding_aes_key(&a.encoding_aes_key).expect("lenient decoding accepts it");
}

#[test]
fn every_push_verifies_and_decrypts_to_its_plain_file() {
    let manifest = wecom_manifest();
    assert_eq!(
        manifest
            .kinds
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        KINDS,
        "the manifest lists exactly the expected WeCom fixtures"
    );
    let a = &*WECOM_ACCOUNT;
    let crypto = wecom_crypto();
    let other_corp = MessageCrypto::new(
        AesKey::from_encoding_aes_key(&a.encoding_aes_key).unwrap(),
        "ww0000000000000000",
    );
    for (name, kind) in &manifest.kinds {
        let plain = read(&format!("plain/{name}.xml"));
        let body = read(&format!("encrypted/{name}.xml"));
        let q = &kind.query;
        assert_eq!(q.timestamp, kind.create_time.to_string(), "{name}");
        // The query string as a test would send it decodes to the same values.
        let pairs = query_pairs(&q.to_query_string());
        assert_eq!(
            (
                &pairs["msg_signature"],
                &pairs["timestamp"],
                &pairs["nonce"]
            ),
            (&q.msg_signature, &q.timestamp, &q.nonce),
            "{name}"
        );

        // The body: ToUserName = corp id, Encrypt, and AgentID when the message has one.
        let parsed = envelope::parse_encrypted(body.as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: no <Encrypt>"));
        assert_eq!(
            parsed.to_user.as_deref(),
            Some(a.corp_id.as_str()),
            "{name}"
        );
        let root = xml::parse(body.as_bytes()).unwrap();
        assert_eq!(
            root.child_text("AgentID")
                .map(|id| id.parse::<i64>().unwrap()),
            kind.agent_id,
            "{name}: AgentID of the body"
        );
        let encrypt = parsed.encrypt;

        // msg_signature covers token, timestamp, nonce and Encrypt; nothing less.
        crypto::verify_msg_signature(&a.token, &q.timestamp, &q.nonce, &encrypt, &q.msg_signature)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let other_nonce = format!("{}1", q.nonce);
        assert_eq!(
            crypto::verify_msg_signature(
                &a.token,
                &q.timestamp,
                &other_nonce,
                &encrypt,
                &q.msg_signature
            ),
            Err(CryptoError::BadSignature),
            "{name}"
        );
        let url_signature = crypto::signature(&a.token, &q.timestamp, &q.nonce);
        assert!(
            crypto::verify_msg_signature(
                &a.token,
                &q.timestamp,
                &q.nonce,
                &encrypt,
                url_signature.as_str()
            )
            .is_err(),
            "{name}: a signature without Encrypt must not pass"
        );

        // Decrypts with the corp id to exactly the plain file, and only with it.
        assert_eq!(crypto.decrypt(&encrypt).unwrap(), plain, "{name}");
        let refused = other_corp.decrypt(&encrypt).unwrap_err();
        assert_eq!(
            (refused.clone(), refused.code()),
            (CryptoError::AppIdMismatch, -40005),
            "{name}"
        );
        assert_eq!(
            other_corp.decrypt_parts(&encrypt).unwrap().1,
            a.corp_id,
            "{name}"
        );

        // The recorded prefix reproduces the ciphertext byte for byte.
        let again = crypto.encrypt_with_random(&random16(kind.random16.as_bytes()), &plain);
        assert_eq!(again, encrypt, "{name}: re-encryption");
    }
}

#[test]
fn every_push_parses_with_its_fields_kept() {
    let a = &*WECOM_ACCOUNT;
    for (name, kind) in wecom_manifest().kinds {
        let msg = Message::parse(read(&format!("plain/{name}.xml")).as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.to_user, a.corp_id, "{name}");
        assert_eq!(msg.msg_type, kind.msg_type, "{name}");
        assert_eq!(msg.create_time, kind.create_time, "{name}");
        assert_eq!(msg.msg_id.map(|id| id.to_string()), kind.msg_id, "{name}");
        assert_eq!(
            msg.event_name(),
            kind.event.as_deref().unwrap_or(""),
            "{name}"
        );
        assert_eq!(
            msg.fields
                .child_text("AgentID")
                .map(|id| id.parse::<i64>().unwrap()),
            kind.agent_id,
            "{name}"
        );
        // Every top-level field survives, unknown ones included.
        for (tag, value) in &kind.fields {
            assert_eq!(
                msg.fields.child_text(tag),
                Some(value.as_str()),
                "{name}: <{tag}>"
            );
        }
        let f = |tag: &str| msg.fields.child_text(tag);
        let typed_ok = match name.as_str() {
            "text" => {
                matches!(&msg.kind, MessageKind::Text { content, .. } if content == "你好 wxgate 👋")
                    && msg.from_user == a.user_id
            }
            "image" => {
                matches!(&msg.kind, MessageKind::Image { media_id, .. } if media_id == "wecom_image_media_id")
            }
            "event_click" => {
                matches!(msg.event(), Some(Event::Click { event_key }) if event_key == "wxgate_menu_help")
            }
            "event_location" => {
                matches!(msg.event(), Some(Event::Location { latitude, .. }) if *latitude > 23.0)
                    && f("AppType") == Some("wxwork")
            }
            "event_enter_agent" => {
                msg.event() == Some(&Event::Unknown) && f("EventKey") == Some("")
            }
            "event_change_contact" => {
                msg.event() == Some(&Event::Unknown)
                    && msg.from_user == "sys"
                    && f("ChangeType") == Some("update_user")
                    && f("UserID") == Some(a.user_id.as_str())
            }
            "event_kf_msg_or_event" => {
                msg.event() == Some(&Event::Unknown)
                    && msg.from_user.is_empty()
                    && f("Token").is_some_and(|t| t.starts_with("ENC") && t.len() <= 128)
                    && f("OpenKfId") == Some(a.open_kfid.as_str())
            }
            other => panic!("fixture {other} has no type expectation: add one"),
        };
        assert!(typed_ok, "{name} parsed as {:?}", msg.kind);
    }
}

#[test]
fn the_get_verification_case() {
    let a = &*WECOM_ACCOUNT;
    let v = wecom_manifest().verify;
    assert!(v.echostr.contains('+') && v.echostr.contains('/'));
    // On the wire + / = arrive percent-encoded; decoding once gives the echostr back.
    for escaped in ["%2B", "%2F", "%3D"] {
        assert!(v.get_query.contains(escaped), "{escaped}");
    }
    let q = query_pairs(&v.get_query);
    assert_eq!(q["echostr"], v.echostr);
    assert_eq!(
        (q["timestamp"].as_str(), q["nonce"].as_str()),
        (v.timestamp.as_str(), v.nonce.as_str())
    );
    assert_eq!(q["msg_signature"], v.msg_signature);
    crypto::verify_msg_signature(
        &a.token,
        &v.timestamp,
        &v.nonce,
        &v.echostr,
        &v.msg_signature,
    )
    .unwrap();
    // A proxy turning + into a space breaks the signature (PROTOCOL.md §9 trap 18).
    let mangled = v.echostr.replace('+', " ");
    assert!(crypto::verify_msg_signature(
        &a.token,
        &v.timestamp,
        &v.nonce,
        &mangled,
        &v.msg_signature
    )
    .is_err());
    assert_eq!(
        wecom_crypto().decrypt(&v.echostr).unwrap(),
        v.expected_response_body
    );
    assert!(v.expected_response_body.bytes().all(|b| b.is_ascii_digit()));
    let again = wecom_crypto()
        .encrypt_with_random(&random16(v.random16.as_bytes()), &v.expected_response_body);
    assert_eq!(again, v.echostr);
}

#[tokio::test]
async fn a_notification_built_for_the_fake_reads_back() {
    // What a core test does: take a Token from the fake, push the notification.
    let fake = crate::support::FakeWechat::start().await;
    let a = &*WECOM_ACCOUNT;
    let token = fake.kf_notification_token(&a.open_kfid);
    let kf = CallbackClient::kf(&a.token, &a.encoding_aes_key, &a.corp_id);
    let (query, body) = kf.encrypted(
        &kf_notification_xml(&token, &a.open_kfid, 1_700_100_500),
        1_700_100_500,
    );
    let q = query_pairs(query.split_once('?').unwrap().1);
    let encrypt = envelope::parse_encrypted(body.as_bytes())
        .unwrap()
        .unwrap()
        .encrypt;
    crypto::verify_msg_signature(
        &a.token,
        &q["timestamp"],
        &q["nonce"],
        &encrypt,
        &q["msg_signature"],
    )
    .unwrap();
    let msg = Message::parse(wecom_crypto().decrypt(&encrypt).unwrap().as_bytes()).unwrap();
    assert_eq!(msg.event_name(), "kf_msg_or_event");
    assert_eq!(msg.fields.child_text("Token"), Some(token.as_str()));
    assert!(xml::parse(body.as_bytes())
        .unwrap()
        .child_text("AgentID")
        .is_none());
    let app = CallbackClient::wecom(&a.token, &a.encoding_aes_key, &a.corp_id);
    let (_, with_agent) = app.encrypted("<xml/>", 0);
    assert!(with_agent.contains("<AgentID><![CDATA[1000002]]></AgentID>"));
}

// ---- the WeCom crypto vectors ---------------------------------------------------------------

const WECOM_VECTORS: [&str; 10] = [
    "gen_wecom_get_verify",
    "gen_wecom_inbound_text",
    "gen_wecom_reply",
    "wechatpy_wecom_check_signature",
    "wechatpy_wecom_decrypt_message",
    "wechatpy_wecom_encrypt_message",
    "wecom_decrypt_msg",
    "wecom_sample2_decrypt_msg",
    "wecom_sample2_verify_url",
    "wecom_verify_url",
];

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no {key}", v["name"]))
}

/// Checks one WeCom vector as completely as its fields allow; returns the checks run.
fn check_wecom_vector(v: &Value) -> usize {
    let name = s(v, "name");
    let token = s(v, "token");
    let receive_id = s(v, "receive_id");
    let key = AesKey::from_encoding_aes_key(s(v, "encoding_aes_key")).unwrap();
    if let Some(h) = v["aes_key_hex"].as_str() {
        assert_eq!(hex::encode(key.bytes()), h, "{name}: key");
    }
    if let Some(h) = v["iv_hex"].as_str() {
        assert_eq!(hex::encode(key.iv()), h, "{name}: iv = first 16 key bytes");
    }
    let c = MessageCrypto::new(key.clone(), receive_id);
    let mut checks = 0;

    // The ciphertext: from the POST body, the GET query, or the vector itself.
    let encrypt = v["encrypt"]
        .as_str()
        .or(v["echostr"].as_str())
        .unwrap_or_else(|| panic!("{name}: no ciphertext"))
        .to_owned();
    if let Some(body) = v["post_body"].as_str() {
        let parsed = envelope::parse_encrypted(body.as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.encrypt, encrypt, "{name}: Encrypt from the body");
        assert_eq!(
            parsed.to_user.as_deref(),
            Some(receive_id),
            "{name}: ToUserName is the corp id"
        );
        checks += 1;
    }
    if let Some(raw) = v["get_query_raw"].as_str() {
        let q = query_pairs(raw);
        assert_eq!(q["echostr"], encrypt, "{name}: echostr decoded once");
        assert_eq!(q["msg_signature"], s(v, "msg_signature"), "{name}");
        checks += 1;
    }

    // The signature, from the query object or the vector.
    let (ts, nonce, sig) = match v["query"].as_object() {
        Some(q) => (
            q["timestamp"].as_str().unwrap(),
            q["nonce"].as_str().unwrap(),
            q["msg_signature"].as_str().unwrap(),
        ),
        None => (s(v, "timestamp"), s(v, "nonce"), s(v, "msg_signature")),
    };
    crypto::verify_msg_signature(token, ts, nonce, &encrypt, sig)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        crypto::msg_signature(token, ts, nonce, &encrypt).as_str(),
        sig,
        "{name}"
    );
    checks += 1;
    if name == "wechatpy_wecom_check_signature" {
        // wechatpy's test_check_signature_should_fail: nonce one less, same signature.
        let wrong_nonce = (nonce.parse::<u64>().unwrap() - 1).to_string();
        assert!(crypto::verify_msg_signature(token, ts, &wrong_nonce, &encrypt, sig).is_err());
        checks += 1;
    }

    // Decryption: the message, its byte length, the receive id; another corp is refused.
    let plain = c
        .decrypt(&encrypt)
        .unwrap_or_else(|e| panic!("{name}: decrypt: {e}"));
    let expected = v["expected_msg"]
        .as_str()
        .or(v["msg"].as_str())
        .or(v["expected_response_body"].as_str());
    assert_eq!(Some(plain.as_str()), expected, "{name}: decrypted message");
    if let Some(len) = v["expected_msg_len"].as_u64().or(v["msg_len"].as_u64()) {
        assert_eq!(plain.len() as u64, len, "{name}: msg_len counts bytes");
    }
    assert_eq!(c.decrypt_parts(&encrypt).unwrap().1, receive_id, "{name}");
    let other = MessageCrypto::new(key, "ww0000000000000000");
    assert_eq!(
        other.decrypt(&encrypt),
        Err(CryptoError::AppIdMismatch),
        "{name}"
    );
    checks += 1;

    // Padding to 32-byte blocks: the recorded padded length and pad byte.
    if let (Some(padded_len), Some(pad)) = (v["padded_len"].as_u64(), v["pad"].as_u64()) {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&encrypt)
            .unwrap();
        assert_eq!(raw.len() as u64, padded_len, "{name}");
        let unpadded = 16 + 4 + plain.len() + receive_id.len();
        assert_eq!(padded_len - unpadded as u64, pad, "{name}: pad");
        assert!((1..=32).contains(&pad) && padded_len % 32 == 0, "{name}");
        checks += 1;
    }

    // Encryption: the recorded prefix reproduces the ciphertext byte for byte.
    if let Some(random_hex) = v["random_hex"].as_str() {
        let random: [u8; 16] = hex::decode(random_hex).unwrap().try_into().unwrap();
        assert_eq!(
            c.encrypt_with_random(&random, &plain),
            encrypt,
            "{name}: re-encryption"
        );
        if let Some(padded_hex) = v["padded_plaintext_hex"].as_str() {
            let mut layout = random.to_vec();
            layout.extend((plain.len() as u32).to_be_bytes());
            layout.extend(plain.as_bytes());
            layout.extend(receive_id.as_bytes());
            let pad = 32 - layout.len() % 32;
            layout.resize(layout.len() + pad, pad as u8);
            assert_eq!(hex::encode(layout), padded_hex, "{name}: plaintext layout");
        }
        checks += 1;
    }
    if let Some(expected_env) = v["reply_envelope"].as_str() {
        let env = envelope::render_encrypted(&encrypt, sig, ts, nonce);
        assert_eq!(env, expected_env, "{name}: envelope byte for byte");
        checks += 1;
    }

    // Messages (not echostrs) parse. A push carries its AgentID, the same as
    // the body's when the body has one; a reply comes from the corp.
    if plain.starts_with("<xml>") {
        let msg = Message::parse(plain.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        if v["direction"] == "encrypt" {
            assert_eq!(
                msg.from_user, receive_id,
                "{name}: a reply comes from the corp"
            );
        } else {
            assert_eq!(msg.to_user, receive_id, "{name}: a push goes to the corp");
            let agent = msg.fields.child_text("AgentID");
            assert!(agent.is_some(), "{name}: AgentID kept");
            if let Some(body) = v["post_body"].as_str() {
                let outer = xml::parse(body.as_bytes()).unwrap();
                if let Some(outer_agent) = outer.child_text("AgentID") {
                    assert_eq!(Some(outer_agent), agent, "{name}: body and message agree");
                }
            }
        }
        checks += 1;
    }
    checks
}

#[test]
fn every_wecom_vector_verifies_decrypts_and_reencrypts() {
    let mut seen = Vec::new();
    let mut checks = 0;
    for file in [
        "official_vectors.json",
        "generated_vectors.json",
        "wechatpy_test_vectors.json",
    ] {
        for v in load_vectors(file) {
            let name = s(&v, "name");
            if v["kind"] == "wecom" || name.contains("wecom") {
                seen.push(name.to_owned());
                let ran = check_wecom_vector(&v);
                // Every vector has a signature, a ciphertext and its prefix or padding.
                assert!(ran >= 4, "{name}: only {ran} checks ran");
                checks += ran;
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen, WECOM_VECTORS,
        "the vector set holds exactly these WeCom vectors"
    );
    assert!(checks >= 50, "only {checks} checks ran");
}
