//! One account assembled from its platform: its token machinery and API,
//! the responder and late channel, dedup, the callback dialect, the
//! allowlist, and the probes that show its health.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::probes::{suffixed, AllowlistProbe, DeliveryProbe, TokenProbe};
use super::tokens::TokenParts;
use super::{AccountOverrides, StartupError};
use crate::agent::{AgentParts, AgentResponder};
use crate::clock::Clock;
use crate::config::{AccountEntry, AccountKind, Config, StoreConfig};
use crate::conversation::{
    Conversations, Dedup, Delivery, LateDelivery, MemoryDedup, NoLateDelivery, Responder,
    RulesResponder, SharedRules, StoreDedup,
};
use crate::domain::split::MAX_TEXT_BYTES;
use crate::metrics::Metrics;
use crate::platform;
use crate::platform::callback::Callback;
use crate::platform::callback_ips;
use crate::platform::dingtalk::{DingTalkApi, DingTalkCallback, DingTalkEvents, RobotDelivery};
use crate::platform::feishu::{FeishuApi, FeishuCallback, FeishuDelivery};
use crate::platform::kf::{KfParts, KfPuller, KfResponder};
use crate::platform::official::CustomServiceDelivery;
use crate::platform::wechat_api::WechatApi;
use crate::platform::wecom::AppDelivery;
use crate::platform::wecom_bot::{StreamDelivery, Streams, WeComBotCallback};
use crate::security::{Allowlist, AllowlistMode};
use crate::server::WeComBotEndpoint;
use crate::server::{Endpoint, Probe};
use crate::store::{Namespace, Store};
use crate::token::{RefresherGuard, TokenManager};

/// What the application keeps of one assembled account.
pub(super) struct Assembled {
    /// The callback endpoint, for the router.
    pub endpoint: Arc<Endpoint>,
    /// The account's API, when it has credentials.
    pub api: Option<WechatApi>,
    /// Its token manager, when it has credentials.
    pub tokens: Option<TokenManager>,
    /// Its readiness probes.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Background token refresh, stopped when dropped.
    pub refresher: Option<RefresherGuard>,
    /// Background callback-IP refresh, stopped when dropped.
    pub ip_refresher: Option<callback_ips::RefreshGuard>,
}

/// What every account is assembled with.
pub(super) struct Shared<'a> {
    pub config: &'a Config,
    pub store: &'a Arc<dyn Store>,
    pub metrics: &'a Arc<Metrics>,
    pub clock: &'a Arc<dyn Clock>,
    /// The operator console, when enabled (it sees 微信客服's pulled messages).
    pub console: Option<&'a Arc<crate::server::console::Console>>,
}

/// Assembles the account at `index` of the config.
///
/// When the account has API credentials, this also gets its first access
/// token and starts refreshing it in the background; the platform refusing
/// the credentials fails the build. Any other token problem (WeChat or
/// Redis unreachable) is logged and shows in `/readyz`.
pub(super) async fn assemble(
    shared: &Shared<'_>,
    index: usize,
    entry: &AccountEntry,
    overrides: AccountOverrides,
) -> Result<Assembled, StartupError> {
    let Shared {
        config,
        store,
        metrics,
        clock,
        console,
    } = *shared;
    let namespace = config.store.namespace(&entry.namespace);
    let mut probes: Vec<Arc<dyn Probe>> = Vec::new();
    let mut refresher = None;
    let (tokens, api, feishu, dingtalk) =
        match TokenParts::for_account(config, entry, store.clone(), clock.clone())? {
            Some(parts) => {
                match parts.tokens.token().await {
                    Ok(_) => tracing::info!(
                        account = %entry.name,
                        kind = entry.account.kind.as_str(),
                        "access token ready"
                    ),
                    Err(e) if e.is_config() => return Err(StartupError::Credentials(e)),
                    Err(e) => tracing::warn!(
                        account = %entry.name,
                        error = %e,
                        "no access token yet; retrying in the background"
                    ),
                }
                refresher = Some(parts.tokens.spawn_refresher());
                probes.push(Arc::new(TokenProbe {
                    name: suffixed("token", index, &entry.name),
                    tokens: parts.tokens.clone(),
                    clock: clock.clone(),
                }));
                (Some(parts.tokens), parts.api, parts.feishu, parts.dingtalk)
            }
            None => (None, None, None, None),
        };
    if let (AccountKind::Feishu(_), None) = (&entry.account.kind, &feishu) {
        // Validation requires the app id and secret.
        return Err(StartupError::NoCredentials);
    }
    if let (AccountKind::Kf(_), None) = (&entry.account.kind, &api) {
        // Validation requires the secret; this is only reached when the
        // corp id is missing too, which validation also refuses.
        return Err(StartupError::NoCredentials);
    }
    let rules: SharedRules = Arc::new(ArcSwap::new(entry.rules.clone()));
    // A 智能机器人's answers go into streams kept in the store.
    let streams = (entry.account.kind == AccountKind::WeComBot).then(|| {
        Arc::new(Streams::new(
            store.clone(),
            namespace.clone(),
            clock.clone(),
        ))
    });
    let (responder, late) = deciders(
        DecidersFor {
            config,
            entry,
            rules: &rules,
            store,
            namespace: &namespace,
            api: api.as_ref(),
            feishu: feishu.as_ref(),
            dingtalk: dingtalk.as_ref(),
            streams: streams.as_ref(),
            metrics,
            clock,
            console,
        },
        overrides.responder,
        overrides.late,
    )?;
    let late: Arc<dyn LateDelivery> = match console {
        Some(console) => Arc::new(super::observed::ObservedLate {
            inner: late,
            console: console.clone(),
            account: entry.name.clone(),
        }),
        None => late,
    };
    // In memory for one node; through the shared store (Redis) so that
    // nodes recognise one another's retries. Feishu re-pushes for hours:
    // its messages are remembered past its last re-push; a 智能机器人's as
    // long as WeCom pulls their stream.
    let dedup_window = match entry.account.kind {
        AccountKind::Feishu(_) => config
            .delivery
            .dedup_window
            .max(platform::feishu::DEDUP_HORIZON),
        AccountKind::WeComBot => config
            .delivery
            .dedup_window
            .max(platform::wecom_bot::STREAM_WINDOW),
        _ => config.delivery.dedup_window,
    };
    let dedup: Arc<dyn Dedup> = match (overrides.dedup, &config.store) {
        (Some(d), _) => d,
        (None, StoreConfig::Memory) => Arc::new(MemoryDedup::new(
            dedup_window,
            config.delivery.dedup_capacity,
        )),
        (None, StoreConfig::Redis { .. }) => Arc::new(StoreDedup::new(
            store.clone(),
            namespace.clone(),
            dedup_window,
        )),
    };
    let wecom_bot = WeComBotCallback::for_account(
        &entry.account,
        config.server.timestamp_window_secs,
        clock.clone(),
    )
    .zip(streams)
    .map(|(callback, streams)| WeComBotEndpoint { callback, streams });
    let mut delivery = Delivery::new(
        dedup,
        responder,
        late,
        config.delivery.settings.clone(),
        metrics.clone(),
    );
    // Slow (agent) answers go by the delivery strategy the platform allows;
    // on a platform without passive replies (Feishu) every answer, a
    // rule's too, is such a turn, and a 智能机器人's slow answers are
    // turns that fill its stream. 微信客服 answers are sent by its
    // puller, which waits for them itself.
    let caps = platform::capabilities(&entry.account, config.agent.typing);
    let with_conversations = match entry.account.kind {
        AccountKind::Kf(_) => false,
        _ => !config.agent.upstreams.is_empty() || caps.passive_reply.is_none(),
    };
    if with_conversations {
        let max_text = caps
            .late_send
            .map_or(MAX_TEXT_BYTES, |l| l.max_text_bytes)
            .min(MAX_TEXT_BYTES);
        let settings = config
            .agent
            .conversation
            .resolve(&caps, entry.delivery, max_text);
        tracing::info!(
            account = %entry.name,
            strategy = settings.strategy.as_str(),
            "delivery strategy for answers slower than the passive budget"
        );
        let conversations = Arc::new(Conversations::new(
            store.clone(),
            namespace.clone(),
            settings,
            metrics.clone(),
        ));
        probes.push(Arc::new(DeliveryProbe {
            name: suffixed("delivery", index, &entry.name),
            conversations: conversations.clone(),
        }));
        delivery = delivery.with_conversations(conversations);
    }
    let callback = Callback::new(
        &entry.account,
        config.server.timestamp_window_secs,
        clock.clone(),
    );
    let allowlist = Arc::new(Allowlist::new(
        config.security.allowlist,
        config.security.extra_allowed_ips.clone(),
    ));
    let mut ip_refresher = None;
    if let (Some(api), AllowlistMode::Wechat) = (&api, config.security.allowlist) {
        probes.push(Arc::new(AllowlistProbe {
            name: suffixed("callback_ips", index, &entry.name),
            allowlist: allowlist.clone(),
        }));
        ip_refresher = Some(callback_ips::spawn(
            api.clone(),
            allowlist.clone(),
            store.clone(),
            namespace.clone(),
        ));
    }
    let endpoint = Arc::new(Endpoint {
        feishu: FeishuCallback::for_account(&entry.account),
        dingtalk: DingTalkCallback::for_account(&entry.account, clock.clone()),
        dingtalk_events: DingTalkEvents::for_account(&entry.account),
        wecom_bot,
        name: entry.name.clone(),
        account: Arc::new(entry.name.clone()),
        kind: entry.account.kind.as_str(),
        path: entry.path.clone(),
        callback,
        rules,
        delivery,
        tokens: tokens.clone(),
        allowlist,
    });
    Ok(Assembled {
        endpoint,
        api,
        tokens,
        probes,
        refresher,
        ip_refresher,
    })
}

/// Who decides the reply, and where late replies go.
type Deciders = (Arc<dyn Responder>, Arc<dyn LateDelivery>);

/// What one account's deciders are built from.
struct DecidersFor<'a> {
    config: &'a Config,
    entry: &'a AccountEntry,
    rules: &'a SharedRules,
    store: &'a Arc<dyn Store>,
    namespace: &'a Namespace,
    api: Option<&'a WechatApi>,
    feishu: Option<&'a FeishuApi>,
    dingtalk: Option<&'a DingTalkApi>,
    streams: Option<&'a Arc<Streams>>,
    metrics: &'a Arc<Metrics>,
    clock: &'a Arc<dyn Clock>,
    console: Option<&'a Arc<crate::server::console::Console>>,
}

/// The responder and late hook of one account: the agent bridge when
/// upstreams are configured, else the plain rules; late answers through the
/// account's send API; Customer Service notifications start a pull.
/// Overrides win.
fn deciders(
    parts: DecidersFor<'_>,
    responder: Option<Arc<dyn Responder>>,
    late: Option<Arc<dyn LateDelivery>>,
) -> Result<Deciders, StartupError> {
    let DecidersFor {
        config,
        entry,
        rules,
        store,
        namespace,
        api,
        feishu,
        dingtalk,
        streams,
        metrics,
        clock,
        console,
    } = parts;
    let agent = &config.agent;
    let caps = platform::capabilities(&entry.account, agent.typing);
    // Media answers need the platform's upload and the account's API.
    let media = api
        .filter(|_| caps.media_upload)
        .map(|api| platform::media::uploader(&entry.account.kind, api.clone()));
    let responder: Arc<dyn Responder> = match responder {
        Some(r) => r,
        None if agent.upstreams.is_empty() => Arc::new(RulesResponder::new(rules.clone())),
        None => Arc::new(
            AgentResponder::new(AgentParts {
                settings: agent.clone(),
                rules: rules.clone(),
                store: store.clone(),
                namespace: namespace.clone(),
                app_id: entry.account.app_id.clone().unwrap_or_default(),
                overload: config.delivery.settings.overload.clone(),
                links: caps.link_style(),
                media,
                metrics: metrics.clone(),
            })
            .map_err(|e| StartupError::Upstream(e.to_string()))?,
        ),
    };
    let late: Arc<dyn LateDelivery> = match (late, api, &entry.account.kind) {
        (Some(l), _, _) => l,
        // Every Feishu answer goes through the reply API.
        (None, _, AccountKind::Feishu(_)) => match feishu {
            Some(api) => Arc::new(FeishuDelivery::new(api.clone(), metrics.clone())),
            // Not reached: a Feishu account without credentials fails the build.
            None => Arc::new(NoLateDelivery),
        },
        // Customer Service answers are sent by the puller.
        (None, _, AccountKind::Kf(_)) => Arc::new(NoLateDelivery),
        // A 智能机器人's late channel is the message's stream, then its
        // response_url.
        (None, _, AccountKind::WeComBot) => match streams {
            Some(streams) => Arc::new(StreamDelivery::new(
                streams.clone(),
                &entry.account.api_base_url,
                std::time::Duration::from_secs(config.token.timeout_secs),
            )),
            None => Arc::new(NoLateDelivery),
        },
        // DingTalk's late channel is the message's own sessionWebhook,
        // then the robot send API.
        (None, _, AccountKind::DingTalk) => Arc::new(RobotDelivery::new(
            &entry.account.api_base_url,
            std::time::Duration::from_secs(config.token.timeout_secs),
            clock.clone(),
            dingtalk.cloned(),
            metrics.clone(),
        )),
        (None, Some(api), AccountKind::WeCom { agent_id }) => {
            Arc::new(AppDelivery::new(api.clone(), *agent_id, metrics.clone()))
        }
        (None, Some(api), AccountKind::Official) => Arc::new(CustomServiceDelivery::new(
            api.clone(),
            metrics.clone(),
            agent.typing,
        )),
        (None, None, _) => {
            if !agent.upstreams.is_empty() {
                tracing::warn!(
                    account = %entry.name,
                    "upstreams are configured but the account has no API credentials: answers later than agent.passive_budget_ms cannot be sent and are dropped"
                );
            }
            Arc::new(NoLateDelivery)
        }
    };
    let responder: Arc<dyn Responder> = match (&entry.account.kind, api) {
        (AccountKind::Kf(settings), Some(api)) => {
            let observed: Arc<dyn Responder> = match console {
                Some(console) => Arc::new(super::observed::ObservedResponder {
                    inner: responder.clone(),
                    console: console.clone(),
                    account: entry.name.clone(),
                }),
                None => responder.clone(),
            };
            let puller = KfPuller::new(KfParts {
                api: api.clone(),
                store: store.clone(),
                namespace: namespace.clone(),
                responder: observed,
                settings: settings.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            });
            Arc::new(KfResponder::new(Arc::new(puller), responder))
        }
        _ => responder,
    };
    Ok((responder, late))
}
