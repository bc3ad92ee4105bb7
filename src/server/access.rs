//! The access line and the request's span, as a tower service around the
//! whole router: one `info` line per request, written when the response is
//! ready, and every other line written while the request is handled (and
//! by the slow turn it starts) carrying its id.
//!
//! Written as a service with its own future rather than with
//! `axum::middleware::from_fn`, which boxes the rest of the stack and its
//! future for every request: this wraps the router once and allocates
//! nothing of its own but the id.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::response::Response;
use tower::Service;
use tracing::instrument::Instrumented;
use tracing::Instrument;

use crate::telemetry::{AccessNote, ACCESS_TARGET};

/// Wraps a service (the router) with the access line and request span.
#[derive(Clone)]
pub(super) struct AccessLog<S> {
    inner: S,
}

impl<S> AccessLog<S> {
    pub(super) fn new(inner: S) -> Self {
        AccessLog { inner }
    }
}

impl<S> Service<Request> for AccessLog<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AccessFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let started = Instant::now();
        let id = request_id(req.headers());
        let method = req.method().clone();
        // Path only in the line: the query carries the sender's OpenID.
        let uri = req.uri().clone();
        // The rest of what the access line says stays out of the span, so
        // that no field is formatted twice.
        let span = tracing::info_span!("request", %id);
        let inner = span.in_scope(|| self.inner.call(req)).instrument(span);
        AccessFuture {
            inner,
            line: Some(Line {
                started,
                id,
                method,
                uri,
            }),
        }
    }
}

/// What the access line needs from the request.
struct Line {
    started: Instant,
    id: String,
    method: Method,
    uri: Uri,
}

pin_project_lite::pin_project! {
    /// The router's future, then the access line.
    pub(super) struct AccessFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        line: Option<Line>,
    }
}

impl<F> Future for AccessFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(res) = std::task::ready!(this.inner.poll(cx));
        if let Some(Line {
            started,
            id,
            method,
            uri,
        }) = this.line.take()
        {
            let note = res.extensions().get::<AccessNote>();
            tracing::info!(
                target: ACCESS_TARGET,
                %id,
                %method,
                path = uri.path(),
                status = res.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                msg_type = note.map(|n| n.msg_type),
                outcome = note.map(|n| n.outcome),
                strategy = note.and_then(|n| n.strategy),
            );
        }
        Poll::Ready(Ok(res))
    }
}

/// The request id for log lines: the proxy's `X-Request-Id` when it sent a
/// sane one, else a process-unique counter.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    match headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id)
            if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            id.to_owned()
        }
        _ => format!("{:x}", NEXT.fetch_add(1, Ordering::Relaxed)),
    }
}
