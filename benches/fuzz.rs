//! A fuzz run of the real binary: mutated pushes of every kind (plain,
//! safe mode, WeCom, and raw junk) against three accounts, each reply
//! checked. It counts 5xx answers, ill-formed replies (XML that does not
//! parse, a safe-mode reply whose signature or ciphertext is wrong, or
//! whose inner XML does not parse), transport failures, and whether the
//! server panicked or died.
//!
//! Not a timed test and not part of CI: `cargo bench --bench fuzz` runs
//! 1,000,000 requests (`WXGATE_FUZZ_REQUESTS` to change it, `WXGATE_FUZZ_SEED`
//! for another sequence) and prints a report, also written to
//! `target/bench/fuzz.md`; `cargo test --benches` runs a 2,000-request
//! smoke version. The generator is a seeded SplitMix64 so that a failing
//! request can be replayed from its seed and index, without a dependency.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_xml::events::Event;
use wxgate::crypto::{self, AesKey, MessageCrypto};

const REQUESTS: u64 = 1_000_000;
const SMOKE: u64 = 2_000;
const WORKERS: u64 = 32;

const TOKEN: &str = "fuzztoken";
const APP_ID: &str = "wxfuzz0123456789";
const CORP_ID: &str = "wwfuzz0123456789";
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

const CONFIG: &str = r#"
[server]
path = "/weixin"

[[accounts]]
name = "plain"
token = "fuzztoken"
mode = "plain"

[[accounts]]
name = "safe"
token = "fuzztoken"
mode = "safe"
app_id = "wxfuzz0123456789"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

[[accounts]]
name = "corp"
kind = "wecom"
corp_id = "wwfuzz0123456789"
agent_id = 1000002
token = "fuzztoken"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

[[rules]]
name = "echo"
match = { contains = ["a", "的"] }
reply = { type = "text", content = "echo {content} to {from_user} from {to_user}" }

[[rules]]
name = "news"
match = { prefix = "n" }
reply = { type = "news", articles = [{ title = "{content}", description = "{from_user}", url = "https://example.com/?q={content}", pic_url = "https://example.com/p.png" }] }

[[rules]]
name = "subscribe"
match = { event = "subscribe" }
reply = { type = "text", content = "welcome {from_user} ({event})" }

[default_reply]
type = "text"
content = "default {content}"
"#;

/// SplitMix64: small, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Text with what trips XML writers: markup, CDATA ends, control
/// characters, CJK, emoji, invisible characters, long runs.
fn text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "的",
        "n",
        "你好",
        "]]>",
        "<",
        ">",
        "&",
        "&amp;",
        "\"",
        "'",
        "\u{0}",
        "\u{1}",
        "\u{8}",
        "\u{b}",
        "\u{1f}",
        "\u{7f}",
        "\t",
        "\n",
        "\r\n",
        " ",
        "😀",
        "\u{feff}",
        "\u{200b}",
        "\u{fffe}",
        "\u{ffff}",
        "<![CDATA[",
        "<xml>",
        "</xml>",
        "{content}",
        "%s",
        "\\",
        "{{",
        "e\u{301}",
        "🇨🇳",
    ];
    let len = match rng.below(20) {
        0 => 200 + rng.below(3000),
        1 => 0,
        _ => rng.below(12),
    };
    (0..len).map(|_| *rng.pick(PIECES)).collect()
}

fn field(xml: &mut String, rng: &mut Rng, name: &str, value: &str) {
    let value = value.replace("]]>", "]]]]><![CDATA[>");
    match rng.below(10) {
        // Whitespace around CDATA, as some senders write.
        0 => xml.push_str(&format!("<{name}>\n  <![CDATA[{value}]]>\n</{name}>")),
        1 => xml.push_str(&format!("<{name}>{}</{name}>", escape(&value))),
        _ => xml.push_str(&format!("<{name}><![CDATA[{value}]]></{name}>")),
    }
}

fn random_field(xml: &mut String, rng: &mut Rng, name: &str) {
    let value = text(rng);
    field(xml, rng, name, &value);
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A push, mostly well-formed, of a random kind.
fn push(rng: &mut Rng, to: &str) -> String {
    let mut xml = String::from("<xml>");
    let from = match rng.below(6) {
        0 => text(rng),
        _ => format!(
            "o{}",
            "X7kQ9mTzB4v-Lw2nR_c8YpE3s".repeat(1 + rng.below(2) as usize)
        ),
    };
    field(&mut xml, rng, "ToUserName", to);
    field(&mut xml, rng, "FromUserName", &from);
    let time = match rng.below(5) {
        0 => "1750000000123".to_owned(),
        1 => text(rng),
        _ => "1750000000".to_owned(),
    };
    xml.push_str(&format!("<CreateTime>{time}</CreateTime>"));
    let kind = *rng.pick(&[
        "text",
        "text",
        "text",
        "image",
        "voice",
        "event",
        "location",
        "link",
        "video",
        "shortvideo",
        "file",
        "weird",
    ]);
    field(&mut xml, rng, "MsgType", kind);
    match kind {
        "text" => random_field(&mut xml, rng, "Content"),
        "image" => {
            random_field(&mut xml, rng, "PicUrl");
            if rng.chance(50) {
                random_field(&mut xml, rng, "MediaId");
            }
        }
        "voice" => {
            random_field(&mut xml, rng, "MediaId");
            field(&mut xml, rng, "Format", "amr");
            if rng.chance(60) {
                random_field(&mut xml, rng, "Recognition");
            }
        }
        "event" => {
            let event = *rng.pick(&[
                "subscribe",
                "unsubscribe",
                "CLICK",
                "VIEW",
                "SCAN",
                "LOCATION",
                "enter_agent",
                "kf_msg_or_event",
                "weird",
            ]);
            field(&mut xml, rng, "Event", event);
            random_field(&mut xml, rng, "EventKey");
        }
        "location" => {
            let x = text(rng);
            xml.push_str(&format!(
                "<Location_X>{x}</Location_X><Location_Y>113.358803</Location_Y>"
            ));
            random_field(&mut xml, rng, "Label");
        }
        _ => random_field(&mut xml, rng, "Title"),
    }
    if rng.chance(80) {
        xml.push_str(&format!("<MsgId>{}</MsgId>", rng.next() % 100_000_000));
    }
    if rng.chance(5) {
        // Deep nesting, an entity bomb, a doctype.
        match rng.below(3) {
            0 => xml.push_str(&"<a>".repeat(500)),
            1 => xml.insert_str(
                0,
                "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>",
            ),
            _ => xml.push_str("<Content>&b;&b;&b;</Content>"),
        }
    }
    xml.push_str("</xml>");
    xml
}

/// Byte-level damage, sometimes.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(5) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes.truncate(at),
            2 => bytes.insert(at, rng.next() as u8),
            3 => {
                let end = (at + 1 + rng.below(16) as usize).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ => {
                bytes.remove(at);
            }
        }
    }
    bytes
}

/// One request: method, path and query, body, and how to read the reply.
struct Request {
    method: reqwest::Method,
    url: String,
    body: Vec<u8>,
    /// The crypto a well-formed reply is sealed with, for safe mode.
    sealed: Option<Arc<MessageCrypto>>,
}

struct Crypto {
    safe: Arc<MessageCrypto>,
    corp: Arc<MessageCrypto>,
}

fn request(rng: &mut Rng, base: &str, crypto: &Crypto) -> Request {
    let ts = if rng.chance(95) {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string()
    } else {
        text(rng)
    };
    let nonce = rng.next().to_string();
    let damaged = rng.chance(30);
    match rng.below(10) {
        // Plain: the signature does not cover the body.
        0..=3 => {
            let xml = push(rng, "gh_fuzz");
            let mut body = xml.into_bytes();
            if damaged {
                body = mutate(rng, body);
            }
            let sig = crypto::signature(TOKEN, &ts, &nonce);
            let sig = if rng.chance(5) {
                "0".repeat(40)
            } else {
                sig.to_string()
            };
            Request {
                method: reqwest::Method::POST,
                url: format!(
                    "{base}/weixin/plain?signature={sig}&timestamp={}&nonce={nonce}&openid=ofuzz",
                    urlencode(&ts)
                ),
                body,
                sealed: None,
            }
        }
        // Safe mode and WeCom: encrypted, correctly signed; the damage is
        // inside (plaintext) or outside (ciphertext, envelope).
        4..=8 => {
            let corp = rng.chance(40);
            let (c, to, path) = if corp {
                (&crypto.corp, "wwfuzz0123456789", "corp")
            } else {
                (&crypto.safe, "gh_fuzz", "safe")
            };
            let xml = push(rng, to);
            let inner = if damaged && rng.chance(50) {
                String::from_utf8_lossy(&mutate(rng, xml.into_bytes())).into_owned()
            } else {
                xml
            };
            let mut encrypt = c.encrypt(&inner);
            if damaged && rng.chance(30) {
                encrypt = String::from_utf8_lossy(&mutate(rng, encrypt.into_bytes())).into_owned();
            }
            let sig = crypto::msg_signature(TOKEN, &ts, &nonce, &encrypt);
            let mut body = format!("<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").into_bytes();
            if damaged && rng.chance(20) {
                body = mutate(rng, body);
            }
            let query = if corp {
                format!(
                    "msg_signature={sig}&timestamp={}&nonce={nonce}",
                    urlencode(&ts)
                )
            } else {
                format!("signature={}&timestamp={}&nonce={nonce}&openid=ofuzz&encrypt_type=aes&msg_signature={sig}", crypto::signature(TOKEN, &ts, &nonce), urlencode(&ts))
            };
            Request {
                method: reqwest::Method::POST,
                url: format!("{base}/weixin/{path}?{query}"),
                body,
                sealed: Some(c.clone()),
            }
        }
        // Junk: any method, path and query, random bytes.
        _ => {
            let method = rng.pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
            let path = rng.pick(&[
                "/weixin/plain",
                "/weixin/safe",
                "/weixin/corp",
                "/",
                "/readyz",
                "/metrics",
                "/admin/reload",
                "/internal/access_token",
                "/weixin/../etc",
                "/%00",
            ]);
            let query = urlencode(&text(rng));
            let body: Vec<u8> = (0..rng.below(300)).map(|_| rng.next() as u8).collect();
            Request {
                method: reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                url: format!("{base}{path}?{query}"),
                body,
                sealed: None,
            }
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The XML parses to its end, with one `<xml>` root.
fn well_formed(xml: &str) -> bool {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0i32;
    let mut roots = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    roots += 1;
                    if e.name().as_ref() != b"xml" {
                        return false;
                    }
                }
                depth += 1;
            }
            Ok(Event::End(_)) => depth -= 1,
            Ok(Event::Text(t)) => match t.unescape() {
                Ok(s) if s.chars().all(allowed) => {}
                _ => return false,
            },
            Ok(Event::CData(c)) => {
                // Only characters XML 1.0 allows.
                let Ok(s) = std::str::from_utf8(&c) else {
                    return false;
                };
                if s.chars().any(|ch| !allowed(ch)) {
                    return false;
                }
            }
            Ok(Event::Eof) => return depth == 0 && roots == 1,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

fn child_text(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    let inner = &xml[start..end];
    Some(
        inner
            .trim()
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_owned(),
    )
}

/// What is wrong with a reply, if anything.
fn check(status: u16, body: &str, sealed: Option<&MessageCrypto>) -> Option<String> {
    if status >= 500 {
        return Some(format!("status {status}"));
    }
    if status != 200 || body.is_empty() || body == "success" {
        return None;
    }
    if !body.starts_with("<xml>") {
        // A GET's echostr, or a JSON operator answer: not a callback reply.
        return None;
    }
    if !well_formed(body) {
        return Some(format!("ill-formed reply: {body:.200}"));
    }
    let (Some(crypto), Some(encrypt)) = (sealed, child_text(body, "Encrypt")) else {
        return None;
    };
    let ts = child_text(body, "TimeStamp").unwrap_or_default();
    let nonce = child_text(body, "Nonce").unwrap_or_default();
    let sig = child_text(body, "MsgSignature").unwrap_or_default();
    if crypto::msg_signature(TOKEN, &ts, &nonce, &encrypt).to_string() != sig {
        return Some("sealed reply with a wrong signature".into());
    }
    match crypto.decrypt(&encrypt) {
        Ok(inner) if well_formed(&inner) => None,
        Ok(inner) => Some(format!("ill-formed sealed reply: {inner:.200}")),
        Err(e) => Some(format!("sealed reply does not decrypt: {e}")),
    }
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    status_5xx: AtomicU64,
    ill_formed: AtomicU64,
    transport: AtomicU64,
    replies: AtomicU64,
    by_status: [AtomicU64; 6],
}

fn main() {
    // The checker itself refuses what it must.
    for bad in [
        "<xml><A>\u{1}</A></xml>",
        "<xml><A><![CDATA[\u{0}]]></A></xml>",
        "<xml><A></xml>",
        "<xml/><xml/>",
        "<other/>",
        "<xml>&bogus;</xml>",
    ] {
        assert!(!well_formed(bad), "{bad:?} passed the check");
    }
    assert!(well_formed(
        "<xml><A><![CDATA[你好 ]]]]><![CDATA[>]]></A><B>1 &amp; 2</B></xml>"
    ));
    let full = std::env::args().any(|a| a == "--bench");
    let total = std::env::var("WXGATE_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { REQUESTS } else { SMOKE });
    let seed: u64 = std::env::var("WXGATE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261202);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fuzz.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let log_path = dir.path().join("fuzz.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");

    let key = AesKey::from_encoding_aes_key(AES_KEY).unwrap();
    let crypto = Arc::new(Crypto {
        safe: Arc::new(MessageCrypto::new(key.clone(), APP_ID)),
        corp: Arc::new(MessageCrypto::new(key, CORP_ID)),
    });
    let counts = Arc::new(Counts::default());
    let first_failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(Instant::now() < deadline, "wxgate did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let (http, base, crypto, counts, failures) = (
                http.clone(),
                base.clone(),
                crypto.clone(),
                counts.clone(),
                first_failures.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut i = w;
                while i < total {
                    let mut rng = Rng(seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
                    let req = request(&mut rng, &base, &crypto);
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    match http
                        .request(req.method, &req.url)
                        .body(req.body)
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            counts.by_status[(status / 100).min(5) as usize]
                                .fetch_add(1, Ordering::Relaxed);
                            let body = response.text().await.unwrap_or_default();
                            if status == 200 && body.starts_with("<xml>") {
                                counts.replies.fetch_add(1, Ordering::Relaxed);
                            }
                            if let Some(problem) = check(status, &body, req.sealed.as_deref()) {
                                if status >= 500 {
                                    counts.status_5xx.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    counts.ill_formed.fetch_add(1, Ordering::Relaxed);
                                }
                                let mut f = failures.lock().unwrap();
                                if f.len() < 10 {
                                    f.push(format!("request {i} (seed {seed}): {problem}"));
                                }
                            }
                        }
                        Err(e) => {
                            counts.transport.fetch_add(1, Ordering::Relaxed);
                            let mut f = failures.lock().unwrap();
                            if f.len() < 10 {
                                f.push(format!("request {i} (seed {seed}): transport: {e}"));
                            }
                        }
                    }
                    i += WORKERS;
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    std::fs::File::open(&log_path)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    let panics = log.matches("panicked").count();

    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let statuses: Vec<String> = (1..6)
        .map(|k| format!("{}xx {}", k, get(&counts.by_status[k])))
        .collect();
    let report = format!(
        "| requests | seconds | 5xx | ill-formed replies | transport failures | panics | server alive | well-formed XML replies checked | statuses |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
        get(&counts.sent),
        elapsed.as_secs_f64(),
        get(&counts.status_5xx),
        get(&counts.ill_formed),
        get(&counts.transport),
        panics,
        if alive { "yes" } else { "no" },
        get(&counts.replies),
        statuses.join(", "),
    );
    println!("{report}");
    for f in first_failures.lock().unwrap().iter() {
        println!("  {f}");
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("fuzz.md"), &report);
    let clean = get(&counts.status_5xx) == 0
        && get(&counts.ill_formed) == 0
        && get(&counts.transport) == 0
        && panics == 0
        && alive;
    if !clean {
        eprintln!(
            "fuzz run found problems; log:\n{}",
            &log[..log.len().min(4000)]
        );
        std::process::exit(1);
    }
}
