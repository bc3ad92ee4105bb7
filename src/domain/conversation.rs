//! The name of one conversation: one user writing to one account.

use std::fmt;

/// One user's conversation with one account, as the store keys it: the
/// account's namespace and the user's id on that platform (an OpenID, a
/// WeCom user id, a 微信客服 external user id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationKey {
    /// The account's store namespace (its AppID, `{corp_id}.{agent_id}`, …).
    pub account: String,
    /// The user's id on the platform.
    pub user: String,
}

impl ConversationKey {
    /// The conversation of `user` with the account of `account`.
    pub fn new(account: impl Into<String>, user: impl Into<String>) -> Self {
        ConversationKey {
            account: account.into(),
            user: user.into(),
        }
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.account, self.user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_account_then_user() {
        let key = ConversationKey::new("wx123", "o_user");
        assert_eq!(key.to_string(), "wx123:o_user");
        assert_ne!(key, ConversationKey::new("wx124", "o_user"));
    }
}
