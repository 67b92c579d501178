//! A minimal HTTP/1.0 JSON client over loopback, so xtask needs no HTTP dependency.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

/// Sends `method path` with an optional JSON body to 127.0.0.1:`port`; returns the JSON reply.
/// A non-2xx status is an error carrying the server's `{error, field}` message.
pub fn json(port: u16, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the server")?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, payload) = reply
        .split_once("\r\n\r\n")
        .context("malformed HTTP reply")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP reply without a status")?;
    let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        bail!(
            "{method} {path} returned {status}: {}",
            value["error"].as_str().unwrap_or(payload)
        );
    }
    Ok(value)
}
