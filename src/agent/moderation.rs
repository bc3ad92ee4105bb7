//! The optional moderation hook: `POST {"input": text}` → `{"flagged": bool}`.
//! A flagged answer, or one that could not be checked, is replaced by the
//! template: with moderation on, nothing unchecked reaches users.

use serde::Deserialize;

use super::settings::ModerationSettings;

/// A moderation endpoint.
pub struct Moderation {
    http: reqwest::Client,
    settings: ModerationSettings,
}

#[derive(Deserialize)]
struct Verdict {
    flagged: bool,
}

impl Moderation {
    /// Builds the client.
    pub fn new(settings: ModerationSettings) -> Result<Moderation, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Moderation { http, settings })
    }

    /// The text to send instead of a flagged answer.
    pub fn template(&self) -> &str {
        &self.settings.template
    }

    /// Whether `text` is flagged.
    pub async fn flagged(&self, text: &str) -> Result<bool, String> {
        let response = self
            .http
            .post(&self.settings.url)
            .json(&serde_json::json!({ "input": text }))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status().as_u16()));
        }
        let verdict: Verdict = response
            .json()
            .await
            .map_err(|e| e.without_url().to_string())?;
        Ok(verdict.flagged)
    }
}
