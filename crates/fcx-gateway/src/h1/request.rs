//! Taking a plain request off the connection's buffer: an HTTP/1.1 head parsed with
//! `httparse` in place, its header values sliced out of the buffer (no copy), and a body
//! whose bytes have all arrived already. Anything else is left in the buffer for hyper.

use axum::body::Body;
use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};

/// Most headers a request may carry here (hyper's limit: past it hyper answers 431).
const HEADERS_MAX: usize = 100;

/// What the buffer holds.
// Returned by value once per request and matched at once, never stored: a box would cost
// an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Taken {
    /// Not a whole head yet.
    Partial,
    /// A head this front leaves to hyper (see [`take`]); nothing was consumed.
    Other,
    /// A plain request, taken off the buffer with its body.
    Request(http::Request<Body>),
}

/// Takes the request at the start of `buf` when it is plain: HTTP/1.1, not `HEAD` or
/// `CONNECT`, an origin-form target, no `Transfer-Encoding`, `Upgrade`, `Expect` or `TE`,
/// `Connection` absent or `keep-alive`, at most one `Content-Length` of plain digits, and
/// all of its body in `buf`. The rest of what hyper accepts (HTTP/1.0, chunked or slow
/// uploads, upgrades, `100-continue`, trailers) and everything it refuses (a bad head, too
/// many or too long headers) is [`Taken::Other`], so hyper parses and answers it as before.
pub fn take(buf: &mut BytesMut) -> Taken {
    let mut slots = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Taken::Partial,
        Err(_) => return Taken::Other,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Taken::Other;
    };
    if method == "HEAD" || method == "CONNECT" || !path.starts_with('/') {
        return Taken::Other;
    }
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
        return Taken::Other;
    };
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| (s.as_ptr() as usize - base, s.len());
    let path_at = at(path.as_bytes());
    let mut length = None;
    let mut spans = [(0usize, 0usize, 0usize, 0usize); HEADERS_MAX];
    let count = req.headers.len();
    for (h, span) in req.headers.iter().zip(spans.iter_mut()) {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            if length.is_some() {
                return Taken::Other;
            }
            length = Some(match parse_length(h.value) {
                Some(n) => n,
                None => return Taken::Other,
            });
        } else if name.eq_ignore_ascii_case(b"connection") {
            if !h.value.eq_ignore_ascii_case(b"keep-alive") {
                return Taken::Other;
            }
        } else if [&b"transfer-encoding"[..], b"upgrade", b"expect", b"te"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            return Taken::Other;
        }
        let (n, nl) = at(name);
        let (v, vl) = at(h.value);
        *span = (n, nl, v, vl);
    }
    let length = length.unwrap_or(0);
    if ((buf.len() - head_len) as u64) < length {
        // The body is still on its way: hyper streams it, under the body timeout.
        return Taken::Other;
    }
    let head = buf.split_to(head_len).freeze();
    let Ok(uri) = http::Uri::from_maybe_shared(head.slice(path_at.0..path_at.0 + path_at.1)) else {
        return give_back(buf, &head);
    };
    let mut headers = http::HeaderMap::with_capacity(count);
    for &(n, nl, v, vl) in &spans[..count] {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&head[n..n + nl]),
            HeaderValue::from_maybe_shared(head.slice(v..v + vl)),
        ) else {
            return give_back(buf, &head);
        };
        headers.append(name, value);
    }
    let body = match length {
        0 => Body::empty(),
        n => Body::from(buf.split_to(n as usize).freeze()),
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Taken::Request(request)
}

/// Puts a head that `http` refuses (a target or header it will not hold) back in front of
/// the buffer, for hyper to answer: such heads are rare enough that the copy does not matter.
fn give_back(buf: &mut BytesMut, head: &[u8]) -> Taken {
    let mut whole = BytesMut::with_capacity(head.len() + buf.len());
    whole.extend_from_slice(head);
    whole.extend_from_slice(buf);
    *buf = whole;
    Taken::Other
}

/// A `Content-Length` value: digits only, as RFC 9110 §8.6 writes it.
pub fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}
