//! The network edge with the real binary and raw sockets on loopback: slow
//! headers, slow bodies and idle keep-alive connections are closed within
//! their limits while a legitimate request is answered within a second; an
//! oversized header gets 431; past `max_connections` new connections wait
//! (and are served once a slot frees); a half-closed client still gets its
//! response; SIGTERM drains with `Connection: close`.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{BinaryServer, TestConfig};

/// Short limits, so that every test ends in a few seconds.
fn config(dir: &Path, max_connections: i64, drain_secs: i64) -> std::path::PathBuf {
    let path = dir.join("wxgate.toml");
    TestConfig::fixture("plain")
        .set("server.header_read_timeout_secs", 1)
        .set("server.body_read_timeout_secs", 1)
        .set("server.keepalive_timeout_secs", 1)
        .set("server.max_header_bytes", 8192)
        .set("server.max_connections", max_connections)
        .set("server.drain_secs", drain_secs)
        .write(&path);
    path
}

fn addr(server: &BinaryServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

async fn connect(server: &BinaryServer) -> TcpStream {
    TcpStream::connect(addr(server)).await.unwrap()
}

/// Everything the server sends until it closes, or `None` if it is still
/// open after `limit`.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

/// `GET /healthz` on a fresh connection, answered within a second.
async fn assert_legit_answered(server: &BinaryServer) {
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("a legitimate request is answered within a second");
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn slow_headers_slow_bodies_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(&config(dir.path(), 64, 0)).await;

    let mut slow_headers = Vec::new();
    for _ in 0..5 {
        let mut s = connect(&server).await;
        s.write_all(b"POST /weixin HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow_headers.push(s);
    }
    let mut slow_body = connect(&server).await;
    slow_body
        .write_all(b"POST /weixin?signature=x&timestamp=1&nonce=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<xml>")
        .await
        .unwrap();
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    assert_legit_answered(&server).await;

    let bound = Duration::from_secs(4);
    for s in &mut slow_headers {
        let got = until_closed(s, bound).await.expect("slow header closed");
        assert!(!got.contains("HTTP/1.1 5"), "{got}");
    }
    let got = until_closed(&mut slow_body, bound)
        .await
        .expect("slow body closed");
    assert!(!got.contains("HTTP/1.1 5"), "no 5xx for a slow body: {got}");
    until_closed(&mut idle, bound)
        .await
        .expect("idle keep-alive closed");
    assert_legit_answered(&server).await;
}

#[tokio::test]
async fn an_oversized_header_gets_431_and_a_half_closed_client_its_response() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(&config(dir.path(), 64, 0)).await;

    let mut big = connect(&server).await;
    let header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    // The server may close while the header is still being written.
    let _ = big.write_all(header.as_bytes()).await;
    let got = until_closed(&mut big, Duration::from_secs(4))
        .await
        .expect("closed");
    assert!(got.starts_with("HTTP/1.1 431"), "{got:?}");

    let mut half = connect(&server).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    half.shutdown().await.unwrap();
    let got = until_closed(&mut half, Duration::from_secs(4))
        .await
        .expect("closed after the response");
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    assert_legit_answered(&server).await;
}

#[tokio::test]
async fn past_max_connections_new_ones_wait_then_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::start(&config(dir.path(), 4, 0)).await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        let mut s = connect(&server).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        hogs.push(s);
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let waiting = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_millis(400))
        .send()
        .await;
    assert!(waiting.is_err(), "the fifth connection is not served yet");
    // The hogs' header timeout (1 s) frees the slots.
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("served once a slot frees");
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(hogs);
    assert_legit_answered(&server).await;
}

#[tokio::test]
async fn sigterm_drains_with_connection_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::start(&config(dir.path(), 64, 2)).await;
    let pid = server.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Still accepting while draining, each answer closing its connection.
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("served while draining");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers().get("connection").map(|v| v.to_str().unwrap()),
        Some("close")
    );
    // Then it exits by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// More connections than file descriptors: `accept` fails with EMFILE,
/// the server backs off (a bounded number of log lines, no spin) and keeps
/// serving; a legitimate request gets through once the slow clients' header
/// timeout (1 s here) frees descriptors. Nothing evicts a slow client to
/// make room sooner (docs/hardening.md, "Known limit").
#[tokio::test]
async fn out_of_file_descriptors_it_backs_off_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    // max_connections above what the descriptors allow.
    let server = BinaryServer::start_with_fd_limit(&config(dir.path(), 1024, 0), &log, 64).await;
    let mut slow = Vec::new();
    for _ in 0..100 {
        let Ok(mut s) = TcpStream::connect(addr(&server)).await else {
            break;
        };
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(4))
        .send()
        .await
        .expect("served once descriptors free up");
    assert_eq!(res.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(4));
    drop(slow);
    assert_legit_answered(&server).await;
    let logged = std::fs::read_to_string(&log).unwrap();
    let failures = logged
        .lines()
        .filter(|l| l.contains("accept failed"))
        .count();
    assert!(failures >= 1, "descriptors ran out: {logged}");
    assert!(failures < 100, "backed off, not spinning: {failures} lines");
}
