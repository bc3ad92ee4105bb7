//! WeCom: late answers from self-built apps, and WeChat Customer Service
//! (微信客服), whose messages are pulled rather than pushed.
//!
//! - [`AppDelivery`]: answers that miss WeCom's 5 seconds go out through the
//!   app message API (`/cgi-bin/message/send`).
//! - [`KfPuller`]: on a `kf_msg_or_event` notification, pulls the new
//!   messages with `kf/sync_msg` from a cursor kept in the shared store,
//!   answers each through the same rules and upstreams, and sends the
//!   answers with `kf/send_msg`. One pull per `open_kfid` at a time across
//!   every node (a store lock); the cursor moves only after a page is
//!   handled; each message is marked done once answered, so a restart or a
//!   second node never answers it twice.
//! - [`KfResponder`]: the callback side: acknowledges the notification at
//!   once and starts the pull.
//!
//! Knows the delivery, store and API layers; nothing of HTTP or crypto.

mod app;
mod kf;

pub use app::AppDelivery;
pub use kf::{KfError, KfParts, KfPuller, KfResponder, PullReport};
