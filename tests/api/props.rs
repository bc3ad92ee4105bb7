//! Arbitrary and mutated input never panics and never gets a 5xx.

use std::sync::{Arc, LazyLock};

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use std::time::Duration;
use tower::ServiceExt;
use wxgate::clock::ManualClock;
use wxgate::conversation::{Delivery, MemoryDedup, NoLateDelivery, RulesResponder, SharedRules};
use wxgate::metrics::Metrics;
use wxgate::platform::callback::Callback;
use wxgate::security::Allowlist;
use wxgate::server::{router, AppState, Endpoint, RouterSettings, StateParts};

use crate::support::{text_xml, CallbackClient, TestConfig};

const NOW: i64 = 1_750_000_000;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

fn app(mode: &str) -> axum::Router {
    let config = TestConfig::fixture(mode).build();
    let callback = Callback::new(
        &config.primary().account,
        300,
        Arc::new(ManualClock::new(NOW)),
    );
    let rules: SharedRules = Arc::new(arc_swap::ArcSwap::new(config.primary().rules.clone()));
    let metrics = Arc::new(Metrics::new());
    let delivery = Delivery::new(
        Arc::new(MemoryDedup::new(Duration::from_secs(300), 1000)),
        Arc::new(RulesResponder::new(rules.clone())),
        Arc::new(NoLateDelivery),
        config.delivery.settings.clone(),
        metrics.clone(),
    );
    let endpoint = Endpoint {
        feishu: None,
        dingtalk: None,
        dingtalk_events: None,
        wecom_bot: None,
        name: "default".into(),
        account: Arc::new("default".into()),
        kind: "official",
        path: "/weixin".into(),
        callback,
        rules,
        delivery,
        tokens: None,
        allowlist: Arc::new(Allowlist::off()),
    };
    let state = AppState::new(StateParts {
        endpoints: vec![Arc::new(endpoint)],
        metrics,
        trusted_proxies: vec![],
        probes: vec![],
        reloader: None,
        admin_key: None,
        token_endpoint: None,
        console: None,
    });
    router(
        state,
        &RouterSettings {
            max_body_bytes: 64 * 1024,
        },
    )
}

fn status_of(router: &axum::Router, method: &str, uri: &str, body: Vec<u8>) -> u16 {
    let request = match Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
    {
        Ok(r) => r,
        // Not even a valid HTTP request line: hyper would refuse it before us.
        Err(_) => return 400,
    };
    RUNTIME.block_on(async {
        router
            .clone()
            .oneshot(request)
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn query_strategy() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("signature".to_owned()),
        Just("timestamp".to_owned()),
        Just("nonce".to_owned()),
        Just("echostr".to_owned()),
        Just("encrypt_type".to_owned()),
        Just("msg_signature".to_owned()),
        "[a-z_%]{1,8}",
    ];
    let value = prop_oneof![
        Just("aes".to_owned()),
        Just(NOW.to_string()),
        "[ -~]{0,20}",
        "[0-9a-f]{40}"
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace(['#', ' '], "%20")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_requests_get_4xx(
        mode in prop_oneof![Just("plain"), Just("compatible"), Just("safe")],
        method in prop_oneof![Just("GET"), Just("POST")],
        query in query_strategy(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let status = status_of(&app(mode), method, &format!("/weixin?{query}"), body);
        prop_assert!((400..500).contains(&status), "status {status}");
    }

    #[test]
    fn arbitrary_xml_like_bodies_with_a_valid_signature_get_4xx_or_200(
        body in "(<xml>|<[A-Za-z]{1,6}>|</[A-Za-z]{1,6}>|<!\\[CDATA\\[|\\]\\]>|<!DOCTYPE|&[a-z]{1,4};|[ -~]{0,10}|</xml>){0,24}",
    ) {
        let query = CallbackClient::fixture("plain").signed_query(NOW);
        let status = status_of(&app("plain"), "POST", &query, body.into_bytes());
        prop_assert!(status == 200 || (400..500).contains(&status), "status {status}");
    }

    #[test]
    fn mutated_encrypted_requests_never_5xx(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        mode in prop_oneof![Just("compatible"), Just("safe")],
    ) {
        let (query, body) = CallbackClient::fixture("safe").encrypted(&text_xml("hello", NOW, 1), NOW);
        let mut bytes = body.clone().into_bytes();
        for (index, byte) in &flips {
            let i = index.index(bytes.len());
            bytes[i] = *byte;
        }
        let encrypt_intact = {
            let original = wxgate::message::envelope::parse_encrypted(body.as_bytes()).unwrap().unwrap().encrypt;
            wxgate::message::envelope::parse_encrypted(&bytes).ok().flatten().map(|b| b.encrypt) == Some(original)
        };
        let status = status_of(&app(mode), "POST", &query, bytes);
        if encrypt_intact {
            prop_assert!(status == 200 || status == 400, "status {status}");
        } else {
            prop_assert!((400..500).contains(&status), "status {status}");
        }
    }
}
