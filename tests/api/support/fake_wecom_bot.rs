//! WeCom's side of a 智能机器人 (docs/platforms/wecom_bot.md): a client
//! that sends callbacks as WeCom does — JSON `{"encrypt"}` in the WeCom
//! envelope with an **empty** receive id, `msg_signature` over token,
//! timestamp, nonce and ciphertext — checks and opens the encrypted JSON
//! answers, and pulls a stream's refreshes; and a local `response_url`
//! endpoint that records the late pushes it gets.
//!
//! `POST /cgi-bin/aibot/response?response_code=C`: a `markdown` message
//! needs `markdown.content`, a `text` one `text.content` → else errcode
//! 40035 (the fake's choice: the pages read name none); a code the fake did
//! not hand out, or one already used (it allows one push) → 40001. Accepted
//! pushes answer `{"errcode": 0, "errmsg": "ok"}` and are recorded.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use wxgate::crypto::{msg_signature, AesKey, MessageCrypto};

/// The fixture bot's id (`aibotid`).
pub const BOT_ID: &str = "aibwxgatefixture";
/// Its Token.
pub const BOT_TOKEN: &str = "aibottoken";
/// Its EncodingAESKey.
pub const BOT_KEY: &str = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo";

/// Sends callbacks to one 智能机器人 path as WeCom does.
pub struct WeComBotClient {
    url: String,
    token: String,
    crypto: MessageCrypto,
    http: reqwest::Client,
}

/// One answer, opened.
#[derive(Debug)]
pub struct BotAnswer {
    pub status: u16,
    /// The decrypted plaintext JSON; `None` for an empty body.
    pub plain: Option<Value>,
}

impl BotAnswer {
    /// The `stream` object of a stream answer (panics otherwise).
    pub fn stream(&self) -> &Value {
        let plain = self.plain.as_ref().expect("an answer");
        assert_eq!(plain["msgtype"], "stream", "{plain}");
        &plain["stream"]
    }
}

impl WeComBotClient {
    /// A client of `url` (server base and path) with the fixture secrets.
    pub fn new(url: String) -> Self {
        WeComBotClient {
            url,
            token: BOT_TOKEN.to_owned(),
            crypto: MessageCrypto::new(AesKey::from_encoding_aes_key(BOT_KEY).unwrap(), ""),
            http: reqwest::Client::new(),
        }
    }

    fn query(&self, encrypt: &str, ts: i64) -> Vec<(&'static str, String)> {
        let nonce = format!("n{}", rand::random::<u32>());
        let sig = msg_signature(&self.token, &ts.to_string(), &nonce, encrypt);
        vec![
            ("msg_signature", sig.to_string()),
            ("timestamp", ts.to_string()),
            ("nonce", nonce),
        ]
    }

    /// WeCom's URL check: (status, body).
    pub async fn verify(&self, echo: &str, ts: i64) -> (u16, String) {
        let encrypted = self.crypto.encrypt(echo);
        let mut q = self.query(&encrypted, ts);
        q.push(("echostr", encrypted));
        let res = self.http.get(&self.url).query(&q).send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// POSTs `plaintext` encrypted, with the query `tamper` may change;
    /// checks the answer's signature and opens it.
    pub async fn send_with(
        &self,
        plaintext: &Value,
        ts: i64,
        tamper: impl FnOnce(&mut Vec<(&'static str, String)>),
    ) -> BotAnswer {
        let encrypted = self.crypto.encrypt(&plaintext.to_string());
        let mut q = self.query(&encrypted, ts);
        tamper(&mut q);
        self.post(&q, json!({ "encrypt": encrypted }).to_string())
            .await
    }

    /// POSTs a recorded callback as it is (its query and body); checks the
    /// answer's signature and opens it.
    pub async fn send_recorded(&self, query: &[(&str, String)], body: String) -> BotAnswer {
        self.post(query, body).await
    }

    async fn post(&self, query: &[(&str, String)], body: String) -> BotAnswer {
        let res = self
            .http
            .post(&self.url)
            .query(query)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        if status != 200 || body.is_empty() {
            return BotAnswer {
                status,
                plain: None,
            };
        }
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        let encrypt = v["encrypt"].as_str().expect("encrypt");
        let ts = v["timestamp"].as_i64().expect("a numeric timestamp");
        let nonce = v["nonce"].as_str().expect("nonce");
        assert!(
            msg_signature(&self.token, &ts.to_string(), nonce, encrypt)
                .matches(v["msgsignature"].as_str().expect("msgsignature")),
            "the answer's msgsignature does not hold"
        );
        let plain = self
            .crypto
            .decrypt(encrypt)
            .expect("opens with an empty receive id");
        BotAnswer {
            status,
            plain: Some(serde_json::from_str(&plain).unwrap()),
        }
    }

    /// POSTs `plaintext` as WeCom does.
    pub async fn send(&self, plaintext: &Value, ts: i64) -> BotAnswer {
        self.send_with(plaintext, ts, |_| {}).await
    }

    /// WeCom's "流式消息刷新" of `stream_id`: the answer's `stream`.
    pub async fn refresh(&self, stream_id: &str, ts: i64) -> Value {
        let plain = json!({
            "msgid": format!("refresh-{}", rand::random::<u64>()),
            "aibotid": BOT_ID, "chattype": "single", "from": {"userid": "zhangsan"},
            "msgtype": "stream", "stream": {"id": stream_id},
        });
        self.send(&plain, ts).await.stream().clone()
    }
}

/// A user's text to the bot, as WeCom's plaintext.
pub fn bot_text(msgid: &str, content: &str, response_url: &str) -> Value {
    json!({
        "msgid": msgid, "aibotid": BOT_ID, "chattype": "single",
        "from": {"userid": "zhangsan"}, "response_url": response_url,
        "msgtype": "text", "text": {"content": content},
    })
}

#[derive(Default)]
struct Inner {
    codes: HashSet<String>,
    pushed: Vec<Value>,
}

/// The `response_url` endpoint; stops when dropped.
pub struct FakeResponseUrl {
    base: String,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct CodeQuery {
    response_code: Option<String>,
}

async fn respond(
    State(state): State<Arc<Mutex<Inner>>>,
    Query(q): Query<CodeQuery>,
    body: String,
) -> Json<Value> {
    let mut inner = state.lock().unwrap();
    let Some(code) = q.response_code.filter(|c| inner.codes.remove(c)) else {
        return Json(json!({"errcode": 40001, "errmsg": "invalid response_code"}));
    };
    let valid = serde_json::from_str::<Value>(&body)
        .ok()
        .filter(|b| match b["msgtype"].as_str() {
            Some("markdown") => b["markdown"]["content"].is_string(),
            Some("text") => b["text"]["content"].is_string(),
            _ => false,
        });
    let Some(body) = valid else {
        inner.codes.insert(code);
        return Json(json!({"errcode": 40035, "errmsg": "invalid message"}));
    };
    inner.pushed.push(body);
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

impl FakeResponseUrl {
    pub async fn start() -> FakeResponseUrl {
        let state = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/cgi-bin/aibot/response", post(respond))
            .with_state(state.clone());
        let (addr, server) = super::serve_local(router).await;
        FakeResponseUrl {
            base: format!("http://{addr}"),
            state,
            server,
        }
    }

    /// Where the fake lives (the account's `api_base_url`).
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// A fresh `response_url` good for one push.
    pub fn response_url(&self, code: &str) -> String {
        self.state.lock().unwrap().codes.insert(code.to_owned());
        format!("{}/cgi-bin/aibot/response?response_code={code}", self.base)
    }

    /// Every accepted push, in order.
    pub fn pushed(&self) -> Vec<Value> {
        self.state.lock().unwrap().pushed.clone()
    }
}

impl Drop for FakeResponseUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}
