//! Keeps the callback IP allowlist filled with WeChat's published callback
//! addresses (`/cgi-bin/getcallbackip`), refreshed hourly and shared through
//! the store so that a node which cannot reach WeChat uses another's copy.

use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::platform::wechat_api::WechatApi;
use crate::security::{parse_net, Allowlist};
use crate::store::{Namespace, Store};

/// How often the list is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// How long a stored copy is trusted.
const STORED_FOR: Duration = Duration::from_secs(3 * 3600);
/// Pause after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Stops the refresher when dropped.
pub struct RefreshGuard(tokio::task::JoinHandle<()>);

impl Drop for RefreshGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn parse_list(list: &[String]) -> Vec<IpNet> {
    list.iter()
        .filter_map(|entry| match parse_net(entry) {
            Ok(net) => Some(net),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unparsable callback IP entry");
                None
            }
        })
        .collect()
}

/// One refresh: from WeChat, else from the store. Returns the number of ranges.
pub async fn refresh_once(
    api: &WechatApi,
    allowlist: &Allowlist,
    store: &dyn Store,
    namespace: &Namespace,
) -> Result<usize, String> {
    let key = namespace.key("callback_ips");
    match api.callback_ips().await {
        Ok(list) => {
            let nets = parse_list(&list);
            if nets.is_empty() {
                return Err("WeChat returned an empty callback IP list".into());
            }
            let count = nets.len();
            allowlist.replace_fetched(nets);
            if let Ok(json) = serde_json::to_vec(&list) {
                if let Err(e) = store.set(&key, &json, Some(STORED_FOR)).await {
                    tracing::warn!(error = %e, "cannot share the callback IP list through the store");
                }
            }
            tracing::info!(
                ranges = count,
                "callback IP allowlist refreshed from WeChat"
            );
            Ok(count)
        }
        Err(fetch_error) => {
            let stored = store.get(&key).await.ok().flatten();
            let list: Option<Vec<String>> =
                stored.and_then(|bytes| serde_json::from_slice(&bytes).ok());
            match list.map(|l| parse_list(&l)).filter(|n| !n.is_empty()) {
                Some(nets) => {
                    let count = nets.len();
                    allowlist.replace_fetched(nets);
                    tracing::warn!(error = %fetch_error, ranges = count, "getcallbackip failed; using the list another node stored");
                    Ok(count)
                }
                None => Err(format!("cannot get WeChat's callback IPs: {fetch_error}")),
            }
        }
    }
}

/// Refreshes now and then every hour (every 30 s while failing).
pub fn spawn(
    api: WechatApi,
    allowlist: Arc<Allowlist>,
    store: Arc<dyn Store>,
    namespace: Namespace,
) -> RefreshGuard {
    RefreshGuard(tokio::spawn(async move {
        loop {
            let pause = match refresh_once(&api, &allowlist, store.as_ref(), &namespace).await {
                Ok(_) => REFRESH_EVERY,
                Err(e) => {
                    tracing::error!(error = %e, "callback IP allowlist not refreshed; WeChat's pushes may be refused");
                    RETRY_AFTER
                }
            };
            tokio::time::sleep(pause).await;
        }
    }))
}
