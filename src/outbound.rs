//! Outbound HTTP calls (platform APIs, upstreams, media downloads): one
//! way to build a platform API's client (rustls, bounded in time, no
//! redirects, wxgate's user agent), and the response body read with a
//! bound, so that a misbehaving endpoint cannot make wxgate buffer without
//! limit. Each caller maps the failures to its own errors.

use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};

/// The HTTP client of a platform API: every call and every connection
/// attempt bounded by `timeout`, redirects not followed (a platform API
/// answers where it is asked; a redirect elsewhere is refused).
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a bounded call failed.
#[derive(Debug)]
pub enum BoundedError {
    /// Sending or reading failed (a timeout among them).
    Transport(reqwest::Error),
    /// The answer is longer than the bound (in bytes).
    TooLarge(usize),
}

/// Sends `request` and reads at most `max` bytes of its answer.
pub async fn send_bounded(
    request: RequestBuilder,
    max: usize,
) -> Result<(StatusCode, Vec<u8>), BoundedError> {
    let response = request.send().await.map_err(BoundedError::Transport)?;
    let status = response.status();
    Ok((status, read_bounded(response, max).await?))
}

/// Reads at most `max` bytes of `response`'s body (after its headers were
/// looked at).
pub async fn read_bounded(mut response: Response, max: usize) -> Result<Vec<u8>, BoundedError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BoundedError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BoundedError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
