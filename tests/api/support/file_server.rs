//! A local file server standing for the places upstreams link media from:
//! `GET /<path>` answers the bytes and content type set with
//! [`FileServer::serve`] (optionally after a pause), 404 for anything else,
//! and counts the requests per path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(Clone)]
struct File {
    content_type: String,
    bytes: Vec<u8>,
    delay: Duration,
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, File>,
    hits: HashMap<String, u64>,
}

pub struct FileServer {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl FileServer {
    pub async fn start() -> FileServer {
        let state = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/{*path}", get(file))
            .with_state(state.clone());
        let (addr, server) = super::serve_local(router).await;
        FileServer {
            addr,
            state,
            server,
        }
    }

    /// Serves `bytes` as `content_type` at `/path`.
    pub fn serve(&self, path: &str, content_type: &str, bytes: &[u8]) {
        self.serve_after(path, content_type, bytes, Duration::ZERO);
    }

    /// As [`FileServer::serve`], answering after `delay`.
    pub fn serve_after(&self, path: &str, content_type: &str, bytes: &[u8], delay: Duration) {
        self.state.lock().unwrap().files.insert(
            path.trim_start_matches('/').to_owned(),
            File {
                content_type: content_type.to_owned(),
                bytes: bytes.to_vec(),
                delay,
            },
        );
    }

    /// `http://127.0.0.1:<port>/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The same file by host name: `http://localhost:<port>/path`.
    pub fn named_url(&self, path: &str) -> String {
        format!(
            "http://localhost:{}/{}",
            self.addr.port(),
            path.trim_start_matches('/')
        )
    }

    /// Requests for `/path` so far.
    pub fn hits(&self, path: &str) -> u64 {
        let inner = self.state.lock().unwrap();
        inner
            .hits
            .get(path.trim_start_matches('/'))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn file(State(state): State<Arc<Mutex<Inner>>>, Path(path): Path<String>) -> Response {
    let file = {
        let mut inner = state.lock().unwrap();
        *inner.hits.entry(path.clone()).or_default() += 1;
        inner.files.get(&path).cloned()
    };
    let Some(file) = file else {
        return StatusCode::NOT_FOUND.into_response();
    };
    tokio::time::sleep(file.delay).await;
    ([(header::CONTENT_TYPE, file.content_type)], file.bytes).into_response()
}
