//! HTTP/1.1 response writing: always with Content-Length (except bodyless statuses).

use std::io::{self, Write};

/// A response body: literal bytes, or one byte repeated (written without allocating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Bytes(Vec<u8>),
    Repeat { byte: u8, len: u64 },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::Repeat { len, .. } => *len,
        }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(body.into()),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes `100 Continue` and flushes.
pub fn write_continue<W: Write>(w: &mut W) -> io::Result<()> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()
}

/// Writes `resp` with a Content-Length (none for 1xx/204/304, which carry no body), adds
/// `Connection: close` when `close`, omits the body bytes when `head_only`, and flushes.
pub fn write_response<W: Write>(
    w: &mut W,
    resp: &Response,
    close: bool,
    head_only: bool,
) -> io::Result<()> {
    let bodyless = resp.status < 200 || resp.status == 204 || resp.status == 304;
    write!(w, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    for (name, value) in &resp.headers {
        write!(w, "{name}: {value}\r\n")?;
    }
    if !bodyless {
        write!(w, "Content-Length: {}\r\n", resp.body.len())?;
    }
    if close {
        w.write_all(b"Connection: close\r\n")?;
    }
    w.write_all(b"\r\n")?;
    if !bodyless && !head_only {
        match &resp.body {
            Body::Bytes(b) => w.write_all(b)?,
            Body::Repeat { byte, len } => {
                let chunk = [*byte; 64 * 1024];
                let mut left = *len;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    w.write_all(&chunk[..n])?;
                    left -= n as u64;
                }
            }
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_response_with_content_length() {
        let mut out = Vec::new();
        let resp = Response::new(404, "nope").with_header("x-fc-status", "404");
        write_response(&mut out, &resp, true, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nx-fc-status: 404\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope"
        );
        let mut out = Vec::new();
        let resp = Response {
            status: 200,
            headers: Vec::new(),
            body: Body::Repeat {
                byte: b'x',
                len: 70_000,
            },
        };
        write_response(&mut out, &resp, false, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Length: 70000"));
        assert_eq!(body.len(), 70_000);
        assert!(body.bytes().all(|b| b == b'x'));
    }
}
