//! Parts that can be swapped in when building (tests, embedding).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::conversation::{Dedup, LateDelivery, Responder};

/// Parts that can be swapped in when building.
///
/// `responder`, `late` and `dedup` are the primary account's (`[account]`,
/// or the first of `[[accounts]]`); any account, the primary one included,
/// can be given its own in [`Overrides::accounts`], which wins. A name there
/// that no account has fails the build rather than being ignored.
pub struct Overrides {
    /// The wall clock (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// The primary account's reply decision (default: the rules of the config).
    pub responder: Option<Arc<dyn Responder>>,
    /// Where the primary account's late replies go (default: its platform's channel).
    pub late: Option<Arc<dyn LateDelivery>>,
    /// The primary account's dedup store (default: from the config).
    pub dedup: Option<Arc<dyn Dedup>>,
    /// Parts of any account, by account name.
    pub accounts: HashMap<String, AccountOverrides>,
    /// Listen here instead of `server.listen` (`serve --listen`).
    pub listen: Option<SocketAddr>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides {
            clock: Arc::new(SystemClock),
            responder: None,
            late: None,
            dedup: None,
            accounts: HashMap::new(),
            listen: None,
        }
    }
}

/// The parts of one account that can be swapped in.
#[derive(Default)]
pub struct AccountOverrides {
    /// The reply decision (default: the rules of the config).
    pub responder: Option<Arc<dyn Responder>>,
    /// Where late replies go (default: the platform's late channel).
    pub late: Option<Arc<dyn LateDelivery>>,
    /// The dedup store (default: from the config).
    pub dedup: Option<Arc<dyn Dedup>>,
}
