//! The network edge: the accept loop and each connection's HTTP/1 settings,
//! holding every client to `[server]`'s limits (`EdgeLimits`).
//!
//! `axum::serve` exposes none of these, so connections are served here with
//! hyper's own HTTP/1 builder (mini-redis's `Listener` is the model):
//! - a semaphore permit is taken *before* `accept`, so past
//!   `max_connections` nothing more is accepted and new connections wait in
//!   the kernel's backlog (back-pressure instead of unbounded tasks);
//! - a failing `accept` (file descriptors run out: `EMFILE`) backs off
//!   exponentially from 5 ms to 1 s and keeps serving, logging one line per
//!   failure rather than spinning;
//! - the request head must arrive within `header_read_timeout` (hyper's
//!   timer, which starts whenever the connection waits for a head, so it
//!   also bounds the wait for a keep-alive connection's next request), may
//!   not exceed `max_header_bytes` (431), and a body may not pause longer
//!   than `body_read_timeout` (tower-http's `TimeoutBody`);
//! - a connection with no request in flight and no byte read or written
//!   for `keepalive_timeout` is closed;
//! - a client that half-closes after its request still gets the response;
//! - on shutdown, for `drain` the listener keeps accepting and every
//!   response carries `Connection: close`, so clients and balancers move
//!   away; then the listener closes and every connection is told to finish:
//!   responses in flight carry `Connection: close`, idle connections close
//!   cleanly (no reset). The caller bounds the wait for stragglers.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::config::EdgeLimits;

/// Longest pause after a failed `accept`.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` fires, then drains for
/// `limits.drain` and stops accepting; returns once every connection is
/// done (the caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: EdgeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let draining = Arc::new(AtomicBool::new(false));
    let limits = Arc::new(limits);
    let drain = limits.drain;
    let stop_accepting = {
        let (draining, stop_tx) = (draining.clone(), stop_tx.clone());
        async move {
            shutdown.await;
            // Every answer from now on closes its connection, so clients
            // reconnect elsewhere; idle keep-alive connections stay usable
            // until the drain ends (closing them now would race a request
            // already on its way).
            draining.store(true, Ordering::SeqCst);
            tokio::time::sleep(drain).await;
            // Then idle connections close; busy ones after their response.
            let _ = stop_tx.send(true);
        }
    };
    tokio::pin!(stop_accepting);
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            () = &mut stop_accepting => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = &mut stop_accepting => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(5);
                accepted
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS…: wait for resources, keep serving
                // the connections already open.
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                drop(permit);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        let (router, limits, draining) = (router.clone(), limits.clone(), draining.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, &limits, draining, &mut stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every connection holds a permit: all of them back means all done.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
}

/// When the connection last read or wrote, and how many requests are in
/// flight on it.
#[derive(Debug)]
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Decrements the in-flight count when the request's response is done
/// (or the request is dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: &EdgeLimits,
    draining: Arc<AtomicBool>,
    stop: &mut watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
    });
    let body_timeout = limits.body_read_timeout;
    let service = {
        let activity = activity.clone();
        tower::service_fn(move |request: Request<Incoming>| {
            let (router, activity, draining) = (router.clone(), activity.clone(), draining.clone());
            async move {
                activity.in_flight.fetch_add(1, Ordering::Relaxed);
                let _in_flight = InFlight(activity);
                let mut request =
                    request.map(|body| axum::body::Body::new(TimeoutBody::new(body_timeout, body)));
                request.extensions_mut().insert(ConnectInfo(peer));
                let mut response = router.oneshot(request).await?;
                if draining.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .half_close(true)
        .keep_alive(true);
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let conn = http.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(conn);
    let keepalive = limits.keepalive_timeout;
    let mut told_to_stop = false;
    loop {
        let idle_check = tokio::time::sleep(keepalive.saturating_sub(activity.idle_for()));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !told_to_stop => {
                if changed.is_err() || *stop.borrow() {
                    told_to_stop = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = idle_check => {
                if activity.in_flight.load(Ordering::Relaxed) == 0
                    && activity.idle_for() >= keepalive
                {
                    tracing::debug!(%peer, "idle keep-alive connection closed");
                    return;
                }
            }
        }
    }
}

/// A stream that notes when it last moved a byte.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
