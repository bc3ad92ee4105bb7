//! WeChat message vocabulary: XML in, typed messages, typed replies, XML out.
//!
//! Knows no crypto and no HTTP. The layers are: [`xml`] turns bytes into a small
//! element tree (refusing DTDs and entity tricks), [`inbound`] turns the tree into
//! a typed [`Message`], [`reply`] renders a typed [`Reply`] back to XML, and
//! [`envelope`] reads and writes the `<Encrypt>` wrapper of safe mode as strings.

pub mod envelope;
pub mod inbound;
pub mod reply;
pub mod xml;

pub use inbound::{Event, Message, MessageError, MessageKind, PicEvent, ScanCode};
pub use reply::{Article, Reply, ReplyError, MAX_ARTICLES};
pub use xml::{Element, XmlError};
