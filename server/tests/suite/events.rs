//! Server-sent events, read from a real socket with a plain HTTP/1.1 client.

use std::time::Duration;

use distillery_server::Store;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::both_backends;
use crate::common::{claim, launch, register, report, router};

/// Opens an SSE stream and returns the socket once the response headers have arrived.
async fn open_stream(addr: std::net::SocketAddr, path: &str) -> (TcpStream, String) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("\r\n\r\n") {
        seen.push_str(&read_some(&mut sock).await);
    }
    (sock, seen)
}

async fn read_some(sock: &mut TcpStream) -> String {
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .expect("SSE stream stalled")
        .unwrap();
    assert!(n > 0, "SSE stream closed");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until `needle` shows up, returning everything read.
async fn read_until(sock: &mut TcpStream, mut seen: String, needle: &str) -> String {
    while !seen.contains(needle) {
        seen.push_str(&read_some(sock).await);
    }
    seen
}

async fn sse_delivers_a_progress_event(store: Store) {
    let r = router(store);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = r.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });

    let run = launch(&r, "live").await;
    let (mut per_run, head) = open_stream(addr, &format!("/api/v1/runs/{run}/events")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    let (mut all_runs, _) = open_stream(addr, "/api/v1/events").await;

    let runner = register(&r, "gpu0").await;
    let job = claim(&r, runner, "{}").await;
    let (status, _) = report(
        &r,
        &job,
        "progress",
        json!({"progress": 0.25, "message": "scoring"}),
    )
    .await;
    assert!(status.is_success());

    let text = read_until(&mut per_run, head, "event: progress").await;
    let text = read_until(&mut per_run, text, "\n\n").await;
    let data = text
        .split("event: progress")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("data: ")))
        .expect("a data line");
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["type"], "progress");
    assert_eq!(event["run_id"], run);
    assert_eq!(event["progress"], 0.25);
    assert_eq!(event["message"], "scoring");
    assert!(
        text.contains("event: run_status"),
        "claiming started the run: {text}"
    );

    let listed = read_until(&mut all_runs, String::new(), "event: progress").await;
    assert!(listed.contains(&format!("\"run_id\":{run}")), "{listed}");
}
both_backends!(sse, sse_delivers_a_progress_event);
