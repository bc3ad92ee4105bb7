//! The callback side of 微信客服: a notification is acknowledged at once
//! and starts a pull.

use std::sync::Arc;

use super::puller::KfPuller;
use crate::conversation::{Responder, Response};
use crate::domain::{Message, Reply};

/// Acknowledges `kf_msg_or_event` at once and starts the pull; every other
/// message goes to the inner responder.
pub struct KfResponder {
    puller: Arc<KfPuller>,
    inner: Arc<dyn Responder>,
}

impl KfResponder {
    /// Wraps `inner`; notifications go to `puller`.
    pub fn new(puller: Arc<KfPuller>, inner: Arc<dyn Responder>) -> Self {
        KfResponder { puller, inner }
    }
}

impl Responder for KfResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        if !message.event_name().eq_ignore_ascii_case("kf_msg_or_event") {
            return self.inner.respond(message);
        }
        let fields = &message.fields;
        let token = fields.child_text("Token").unwrap_or("").trim();
        match fields.child_text("OpenKfId").map(str::trim) {
            Some(open_kfid) if !open_kfid.is_empty() => self.puller.notify(open_kfid, token),
            // Older notifications lack OpenKfId (PROTOCOL §4): nothing to
            // pull by, so say so instead of guessing.
            _ => tracing::warn!(
                "kf_msg_or_event without OpenKfId: cannot tell which Customer Service account to pull"
            ),
        }
        Response::Ready(Reply::Success)
    }
}
