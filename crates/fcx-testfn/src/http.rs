//! Minimal blocking HTTP/1.1 request parsing: request line, headers, and bodies framed by
//! Content-Length or chunked transfer coding.

use std::fmt;
use std::io::{self, BufRead, Read};

/// Longest accepted request line or header line, in bytes.
const MAX_LINE: u64 = 64 * 1024;
/// Most header lines accepted in one request (also bounds chunked trailers).
const MAX_HEADERS: usize = 128;
/// Largest accepted request body, in bytes.
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Longest accepted chunk-size line of a chunked body.
const MAX_CHUNK_LINE: u64 = 4 * 1024;

/// Why a request could not be read.
#[derive(Debug)]
pub enum HttpError {
    /// The peer closed the connection before sending a new request.
    Closed,
    /// Reading from the socket failed.
    Io(io::Error),
    /// The request is malformed (answer 400).
    Bad(&'static str),
    /// The request body exceeds `MAX_BODY` (answer 413).
    TooLarge,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Closed => f.write_str("connection closed"),
            HttpError::Io(e) => write!(f, "io error: {e}"),
            HttpError::Bad(msg) => f.write_str(msg),
            HttpError::TooLarge => write!(f, "request body larger than {MAX_BODY} bytes"),
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

/// HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Empty,
    Length(u64),
    Chunked,
}

/// Request line and headers. Header names are stored lowercased, values trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub version: Version,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether any comma-separated element of any `name` header equals `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Path part of the request target (without the query string).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.has_token("connection", "close"),
            Version::Http10 => self.has_token("connection", "keep-alive"),
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body.
    pub fn expects_continue(&self) -> bool {
        self.version == Version::Http11 && self.has_token("expect", "100-continue")
    }

    /// Body framing from `Transfer-Encoding` / `Content-Length` (chunked wins when both are sent).
    pub fn body_kind(&self) -> Result<BodyKind, HttpError> {
        let codings: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "transfer-encoding")
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if let Some(last) = codings.last() {
            return if last.eq_ignore_ascii_case("chunked") {
                Ok(BodyKind::Chunked)
            } else {
                Err(HttpError::Bad("unsupported transfer-encoding"))
            };
        }
        let mut length: Option<u64> = None;
        for (_, value) in self.headers.iter().filter(|(n, _)| n == "content-length") {
            for part in value.split(',') {
                let part = part.trim();
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HttpError::Bad("invalid content-length"));
                }
                let n: u64 = part
                    .parse()
                    .map_err(|_| HttpError::Bad("invalid content-length"))?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(HttpError::Bad("conflicting content-length values"))
                    }
                    _ => length = Some(n),
                }
            }
        }
        match length {
            None | Some(0) => Ok(BodyKind::Empty),
            Some(n) if n > MAX_BODY => Err(HttpError::TooLarge),
            Some(n) => Ok(BodyKind::Length(n)),
        }
    }
}

/// Reads one line terminated by LF (CRLF accepted), without the terminator.
/// `Ok(None)` means EOF before any byte.
fn read_line<R: BufRead>(r: &mut R, limit: u64) -> Result<Option<Vec<u8>>, HttpError> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(limit).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 >= limit {
            HttpError::Bad("line too long")
        } else {
            HttpError::Bad("unexpected end of stream")
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(buf))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Reads a request line and headers. Returns `HttpError::Closed` on a clean EOF before the request.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Head, HttpError> {
    // Tolerate a few stray empty lines between requests (RFC 9112 §2.2).
    let mut line = Vec::new();
    for _ in 0..4 {
        match read_line(r, MAX_LINE)? {
            None => return Err(HttpError::Closed),
            Some(l) if l.is_empty() => continue,
            Some(l) => {
                line = l;
                break;
            }
        }
    }
    if line.is_empty() {
        return Err(HttpError::Bad("missing request line"));
    }
    let line = String::from_utf8_lossy(&line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Bad("malformed request line"));
    };
    if !is_token(method) {
        return Err(HttpError::Bad("invalid method"));
    }
    if target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(HttpError::Bad("invalid request target"));
    }
    let version = match version {
        "HTTP/1.1" => Version::Http11,
        "HTTP/1.0" => Version::Http10,
        _ => return Err(HttpError::Bad("unsupported http version")),
    };

    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(r, MAX_LINE)? else {
            return Err(HttpError::Bad("unexpected end of stream"));
        };
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::Bad("too many headers"));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HttpError::Bad("obsolete header line folding"));
        }
        let line = String::from_utf8_lossy(&line);
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Bad("malformed header line"));
        };
        if !is_token(name) {
            return Err(HttpError::Bad("invalid header name"));
        }
        headers.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version,
        headers,
    })
}

/// Appends exactly `len` bytes from `r` to `body`.
fn read_exact_into<R: BufRead>(r: &mut R, len: u64, body: &mut Vec<u8>) -> Result<(), HttpError> {
    let got = r.by_ref().take(len).read_to_end(body)?;
    if got as u64 != len {
        return Err(HttpError::Bad("unexpected end of stream"));
    }
    Ok(())
}

/// Reads the request body framed as `kind`.
pub fn read_body<R: BufRead>(r: &mut R, kind: BodyKind) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    match kind {
        BodyKind::Empty => {}
        BodyKind::Length(n) => read_exact_into(r, n, &mut body)?,
        BodyKind::Chunked => read_chunked(r, &mut body)?,
    }
    Ok(body)
}

fn read_chunked<R: BufRead>(r: &mut R, body: &mut Vec<u8>) -> Result<(), HttpError> {
    loop {
        let Some(line) = read_line(r, MAX_CHUNK_LINE)? else {
            return Err(HttpError::Bad("unexpected end of stream"));
        };
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HttpError::Bad("invalid chunk size"));
        }
        let size =
            u64::from_str_radix(size, 16).map_err(|_| HttpError::Bad("invalid chunk size"))?;
        if size == 0 {
            // Trailer section, ended by an empty line.
            for _ in 0..=MAX_HEADERS {
                match read_line(r, MAX_LINE)? {
                    None => return Err(HttpError::Bad("unexpected end of stream")),
                    Some(l) if l.is_empty() => return Ok(()),
                    Some(_) => {}
                }
            }
            return Err(HttpError::Bad("too many trailers"));
        }
        match (body.len() as u64).checked_add(size) {
            Some(total) if total <= MAX_BODY => {}
            _ => return Err(HttpError::TooLarge),
        }
        read_exact_into(r, size, body)?;
        match read_line(r, 2)? {
            Some(l) if l.is_empty() => {}
            _ => return Err(HttpError::Bad("missing crlf after chunk data")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(raw: &str) -> Result<Head, HttpError> {
        read_head(&mut Cursor::new(raw.as_bytes().to_vec()))
    }

    fn request(raw: &[u8]) -> Result<(Head, Vec<u8>), HttpError> {
        let mut r = Cursor::new(raw.to_vec());
        let h = read_head(&mut r)?;
        let kind = h.body_kind()?;
        let body = read_body(&mut r, kind)?;
        Ok((h, body))
    }

    #[test]
    fn parses_request_line_and_lowercases_header_names() {
        let h =
            head("POST /invoke?x=1 HTTP/1.1\r\nHost: a\r\nX-Fc-Request-Id:  abc \r\n\r\n").unwrap();
        assert_eq!(h.method, "POST");
        assert_eq!(h.target, "/invoke?x=1");
        assert_eq!(h.path(), "/invoke");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.header("x-fc-request-id"), Some("abc"));
        assert_eq!(h.header("host"), Some("a"));
        assert!(h.keep_alive());
    }

    #[test]
    fn accepts_bare_lf_line_endings() {
        let h = head("GET / HTTP/1.0\nConnection: Keep-Alive\n\n").unwrap();
        assert_eq!(h.version, Version::Http10);
        assert!(h.keep_alive());
    }

    #[test]
    fn rejects_malformed_request_lines_and_headers() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno-colon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nA: b\r\n",
        ] {
            assert!(matches!(head(raw), Err(HttpError::Bad(_))), "{raw:?}");
        }
    }

    #[test]
    fn clean_eof_before_request_is_closed() {
        assert!(matches!(head(""), Err(HttpError::Closed)));
    }

    #[test]
    fn connection_close_disables_keep_alive() {
        let h = head("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
    }

    #[test]
    fn reads_content_length_body_and_leaves_next_request() {
        let raw = b"POST /invoke HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        let mut r = Cursor::new(raw.to_vec());
        let h = read_head(&mut r).unwrap();
        assert_eq!(h.body_kind().unwrap(), BodyKind::Length(5));
        assert_eq!(read_body(&mut r, BodyKind::Length(5)).unwrap(), b"hello");
        let next = read_head(&mut r).unwrap();
        assert_eq!(next.method, "GET");
    }

    #[test]
    fn content_length_errors() {
        let bad = |cl: &str| {
            head(&format!("POST / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n"))
                .unwrap()
                .body_kind()
        };
        assert!(matches!(bad("abc"), Err(HttpError::Bad(_))));
        assert!(matches!(bad("-1"), Err(HttpError::Bad(_))));
        assert!(matches!(bad("+1"), Err(HttpError::Bad(_))));
        assert!(matches!(bad("1, 2"), Err(HttpError::Bad(_))));
        assert!(matches!(
            bad("99999999999999999999999"),
            Err(HttpError::Bad(_))
        ));
        assert!(matches!(bad("999999999999"), Err(HttpError::TooLarge)));
        assert_eq!(bad("3, 3").unwrap(), BodyKind::Length(3));
        assert_eq!(bad("0").unwrap(), BodyKind::Empty);
        let short = request(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
        assert!(matches!(short, Err(HttpError::Bad(_))));
    }

    #[test]
    fn reads_chunked_body_with_extensions_and_trailers() {
        let raw =
            b"POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n\
            5;ext=1\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: t\r\n\r\n";
        let (h, body) = request(raw).unwrap();
        assert_eq!(h.body_kind().unwrap(), BodyKind::Chunked);
        assert_eq!(body, b"hello, world!!!");
    }

    #[test]
    fn chunked_errors() {
        let chunked = |rest: &[u8]| {
            let mut raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            raw.extend_from_slice(rest);
            request(&raw)
        };
        assert!(matches!(chunked(b"zz\r\n"), Err(HttpError::Bad(_))));
        assert!(matches!(
            chunked(b"+5\r\nhello\r\n0\r\n\r\n"),
            Err(HttpError::Bad(_))
        ));
        assert!(matches!(
            chunked(b"5\r\nhelloXX0\r\n\r\n"),
            Err(HttpError::Bad(_))
        ));
        assert!(matches!(chunked(b"5\r\nhel"), Err(HttpError::Bad(_))));
        assert!(matches!(chunked(b"0\r\n"), Err(HttpError::Bad(_))));
        assert!(matches!(
            chunked(b"ffffffffffffffffff\r\n"),
            Err(HttpError::Bad(_))
        ));
        assert!(matches!(
            chunked(b"fffffffffff\r\n"),
            Err(HttpError::TooLarge)
        ));
        let gzip = head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap();
        assert!(matches!(gzip.body_kind(), Err(HttpError::Bad(_))));
    }
}
