//! Hostile input against a whole node (`App::build`, real backends): HTTP
//! abuse (hostile ids on every route, oversized bodies and headers, token
//! floods, slow clients), garbage on the node's NATS subjects, and marker
//! secrets that must never reach a log line, an error body or a metric.
//! Every test is bounded by [`within`]; nothing here may hang the suite.

mod http;
mod nats;
mod secrets;

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub use crate::helpers::within;

/// What a raw HTTP/1.1 exchange returned.
pub struct RawResponse {
    /// The status code (0 when the server closed without answering).
    pub status: u16,
    /// The response head, lower-cased.
    pub head: String,
    /// The body as sent (not de-chunked).
    pub body: String,
}

/// Sends `request` over a fresh socket to `address` (`http://host:port`) and
/// reads until the server closes or `limit` passes. Write errors are
/// ignored: a server may answer (413, 431) and close before the request
/// was fully sent.
pub async fn raw_exchange(address: &str, request: &[u8], limit: Duration) -> RawResponse {
    let addr = address.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    // The answer may come before the request is fully written.
    if let Err(e) = socket.write_all(request).await {
        eprintln!("request write cut short ({e}); reading the answer");
    }
    read_answer(socket, limit).await
}

/// Reads what the server sends on `socket` until it closes, within `limit`.
pub async fn read_answer(mut socket: TcpStream, limit: Duration) -> RawResponse {
    let read = async {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        bytes
    };
    let bytes = tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| panic!("the server neither answered nor closed within {limit:?}"));
    parse_response(&bytes)
}

fn parse_response(bytes: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_lowercase(),
        body: body.to_owned(),
    }
}
