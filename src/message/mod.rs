//! The WeChat wire codec for messages: XML in, the domain's typed
//! messages; the domain's replies, XML out.
//!
//! Knows no crypto and no HTTP. The layers are: [`xml`] turns bytes into a small
//! element tree (refusing DTDs and entity tricks), [`inbound`] turns the tree into
//! a typed [`Message`], [`reply`] renders a typed [`Reply`] back to XML, and
//! [`envelope`] reads and writes the `<Encrypt>` wrapper of safe mode as strings.

pub mod envelope;
pub mod inbound;
pub mod reply;
pub mod xml;

pub use inbound::MessageError;
pub use xml::XmlError;
// The domain's vocabulary, which this codec reads and writes.
pub use crate::domain::{
    Article, Element, Event, Message, MessageKind, PicEvent, Reply, ReplyError, ScanCode,
    MAX_ARTICLES,
};
