//! A minimal HTTP/1.1 client for the benchmarks: one request per connection
//! (`Connection: close`) to 127.0.0.1, read whole within a deadline and a
//! size cap. No TLS, redirects or pooling: the bench needs none, and a
//! client per connection is what `curl` in a script does.

use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Largest response read.
const MAX_RESPONSE: u64 = 64 << 20;

/// Status and body of a response.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (chunked encoding removed).
    pub body: Vec<u8>,
}

/// Sends `method path` with a bearer token and an empty body to
/// 127.0.0.1:`port`; returns once the server closed the connection.
///
/// # Errors
/// Connection failures, a malformed response, or no response within `timeout`.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    token: &str,
    timeout: Duration,
) -> anyhow::Result<Response> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE)
            .read_to_end(&mut raw)
            .await?;
        parse(&raw)
    })
    .await
    .with_context(|| format!("{method} {path}: no response within {timeout:?}"))?
}

fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a header end")?;
    let head = std::str::from_utf8(&raw[..end]).context("response head is not UTF-8")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("response without a status code")?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = &raw[end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk without a size line")?;
        let size_text = std::str::from_utf8(&rest[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        anyhow::ensure!(rest.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_response_is_reassembled() {
        let raw = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = parse(raw).expect("parse");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
    }

    #[test]
    fn a_sized_response_keeps_its_body() {
        let raw = b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}";
        let r = parse(raw).expect("parse");
        assert_eq!((r.status, r.body.as_slice()), (201, &b"{}"[..]));
    }
}
