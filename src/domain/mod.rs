//! The platform-neutral vocabulary every other layer speaks: an inbound
//! [`Message`], a [`Reply`], the [`ConversationKey`] that names one user's
//! conversation with one account, and the [`Capabilities`] a platform
//! declares (may it answer passively, and by when? can it send later, and
//! within which limits?).
//!
//! Depends on nothing else in the crate and on no I/O crate.

mod capabilities;
mod conversation;
mod fields;
pub mod markdown;
mod message;
mod reply;
pub mod split;

pub use capabilities::{Capabilities, LateSend, PassiveReply, PushRetries};
pub use conversation::ConversationKey;
pub use fields::Element;
pub use message::{Event, Message, MessageKind, PicEvent, ScanCode};
pub use reply::{Article, Reply, ReplyError, MAX_ARTICLES};
