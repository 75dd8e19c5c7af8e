//! Writing a response on the connection: the head written by hand into a buffer the
//! connection reuses, framed as hyper frames it (the handler's `Content-Length`, else the
//! body's exact size, else chunked; no body for `1xx`, `204` and `304`), with a `Date` when
//! the handler set none. The body's frames that are ready join the head, so a small answer
//! leaves in one write; a body that has nothing yet gets what is buffered sent first, so a
//! streamed answer is not held back.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::task::Poll;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use http::header;
use http_body::Body as _;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Bytes of one data frame that are copied into the write buffer; a larger frame is
/// written from where it is, beside the buffer.
const COPY_MAX: usize = 16 * 1024;
/// The write buffer is sent once it holds this much, even if more frames are ready.
const FLUSH_AT: usize = 64 * 1024;

/// How the body goes on the wire.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    /// No body (`1xx`, `204`, `304`).
    None,
    /// `Content-Length` bytes exactly.
    Length(u64),
    Chunked,
}

/// Writes `resp`; true when the connection may serve another request (the answer went out
/// whole and neither side asked to close). `closing` adds `Connection: close`.
pub async fn write<S: AsyncWrite + Unpin>(
    io: &mut S,
    resp: http::Response<Body>,
    out: &mut Vec<u8>,
    closing: bool,
) -> bool {
    let (parts, mut body) = resp.into_parts();
    let mut keep_alive = !closing;
    let framing = write_head(&parts, &body, out, &mut keep_alive);
    if framing == Framing::None {
        drop(body);
        return send(io, out, None).await && keep_alive;
    }
    let chunked = framing == Framing::Chunked;
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        // One look at the body: what is ready joins the buffer; when nothing is, the
        // buffer goes out before waiting.
        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() && !send(io, out, None).await {
                    return false;
                }
                poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let data = match frame {
            // Trailers are not sent: the client did not ask for them (a `TE` request goes
            // to hyper).
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue,
            },
            // A body that fails ends the connection mid-answer, as hyper does: the client
            // sees a cut message, not a whole wrong one.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "response body failed: connection closed");
                let _ = send(io, out, None).await;
                return false;
            }
            None => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                // A body shorter than its Content-Length leaves the client waiting for
                // the rest: close so it knows.
                let whole = chunked || left == 0;
                return send(io, out, None).await && whole && keep_alive;
            }
        };
        if !chunked {
            if data.len() as u64 > left {
                tracing::debug!("response body longer than its content-length: connection closed");
                let cut = data.slice(..left as usize);
                let _ = send(io, out, Some(&cut)).await;
                return false;
            }
            left -= data.len() as u64;
        } else {
            let _ = write!(out, "{:x}\r\n", data.len());
        }
        let sent = if data.len() > COPY_MAX {
            let sent = send(io, out, Some(&data)).await;
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
            sent
        } else {
            out.extend_from_slice(&data);
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
            out.len() < FLUSH_AT || send(io, out, None).await
        };
        if !sent {
            return false;
        }
    }
}

/// Writes the status line and headers into `out` and says how the body is framed.
fn write_head(
    parts: &http::response::Parts,
    body: &Body,
    out: &mut Vec<u8>,
    keep_alive: &mut bool,
) -> Framing {
    let status = parts.status;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let no_body = status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED;
    let (mut length, mut chunked, mut dated, mut close_sent) = (None, false, false, false);
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            if length.is_none() {
                length = super::request::parse_length(value.as_bytes().trim_ascii());
            }
            continue;
        }
        if name == header::TRANSFER_ENCODING {
            chunked = true;
            continue;
        }
        if name == header::CONNECTION && has_token(value.as_bytes(), b"close") {
            *keep_alive = false;
            close_sent = true;
        }
        dated |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = if no_body {
        if status == http::StatusCode::NOT_MODIFIED {
            if let Some(n) = length {
                length_header(out, n);
            }
        }
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length.or_else(|| body.size_hint().exact()) {
        length_header(out, n);
        Framing::Length(n)
    } else {
        Framing::Chunked
    };
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if !dated {
        out.extend_from_slice(b"date: ");
        DATE.with(|d| out.extend_from_slice(d.borrow_mut().now()));
        out.extend_from_slice(b"\r\n");
    }
    if !*keep_alive && !close_sent {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
}

fn length_header(out: &mut Vec<u8>, n: u64) {
    let _ = write!(out, "content-length: {n}\r\n");
}

/// Sends `out` (then `tail`, in the same write when it fits) and empties `out`; false when
/// the connection failed.
async fn send<S: AsyncWrite + Unpin>(io: &mut S, out: &mut Vec<u8>, tail: Option<&Bytes>) -> bool {
    let tail: &[u8] = tail.map_or(&[], |t| t);
    let (mut a, mut b) = (&out[..], tail);
    while !a.is_empty() || !b.is_empty() {
        let written = if a.is_empty() {
            io.write(b).await
        } else {
            io.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]).await
        };
        match written {
            Ok(0) | Err(_) => {
                out.clear();
                return false;
            }
            Ok(n) => {
                let from_a = n.min(a.len());
                a = &a[from_a..];
                b = &b[n - from_a..];
            }
        }
    }
    out.clear();
    // TLS buffers what it is given.
    io.flush().await.is_ok()
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// The `Date` value, formatted once per second per thread (as hyper caches it).
struct CachedDate {
    second: u64,
    text: [u8; 29],
}

impl CachedDate {
    fn now(&mut self) -> &[u8] {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second {
            let text = httpdate::fmt_http_date(now);
            if text.len() == self.text.len() {
                self.text.copy_from_slice(text.as_bytes());
                self.second = second;
            }
        }
        &self.text
    }
}

thread_local! {
    static DATE: RefCell<CachedDate> = const {
        RefCell::new(CachedDate { second: u64::MAX, text: *b"Thu, 01 Jan 1970 00:00:00 GMT" })
    };
}
