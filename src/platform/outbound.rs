//! Outbound calls to a platform's API: the response body read with a
//! bound, so that a misbehaving endpoint cannot make wxgate buffer without
//! limit. Each platform's client maps the two failures to its own errors.

use reqwest::{RequestBuilder, StatusCode};

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
    let mut response = request.send().await.map_err(BoundedError::Transport)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BoundedError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BoundedError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}
