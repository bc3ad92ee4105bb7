//! A message's fields as received: a small tree of named texts, so that
//! nothing of an unfamiliar message is lost.

use serde::{Deserialize, Serialize};

/// One XML element: its name, its text (CDATA and text joined, entities
/// resolved) and its child elements in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Element {
    /// Element name, case preserved.
    pub name: String,
    /// Text content; empty for elements that only have children.
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this exact name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child with this exact name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}
