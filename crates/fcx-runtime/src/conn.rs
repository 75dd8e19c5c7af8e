//! A keep-alive HTTP/1.1 connection into an instance, written for this one job and driven
//! by the request that uses it: the request's own task writes the request, parses the
//! answer's head and reads its body, so a warm call wakes no other task and crosses no
//! channel. hyper's client did the same work through its dispatcher, a request channel, a
//! response oneshot and a body channel, about a quarter of fcx's user-space time per warm
//! request (docs/benchmarks.md, session 25). Upgrades (`101`) still go through hyper, on
//! connections of their own (`Instance::call_upgrade`).
//!
//! What the instance may answer is anything an HTTP/1.x server sends: a `content-length`
//! body, a chunked one (with trailers, which are dropped), one that ends when the connection
//! closes, `1xx` heads before the final one, `HTTP/1.0` and `Connection: close`. A
//! connection goes back to the pool only when both messages ended cleanly and the answer
//! allowed keep-alive.
//!
//! An idle pooled connection is polled by no one; a close by the server while it was idle
//! is noticed on its next use ([`Conn::poll_ready`] reads first), as before.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use hyper::body::Body as _;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::body::{Body, BoxError};

/// Most bytes an answer's head may take (hyper's default limit, so what passed before
/// passes now; the scheduler applies FC's 8 KB limit on the parsed headers).
const HEAD_MAX: usize = 8192 + 4096 * 100;
/// Most headers an answer may carry (hyper's limit).
const HEADERS_MAX: usize = 100;
/// Most bytes of a chunk-size line or a trailer line.
const LINE_MAX: usize = 4096;
/// How much the read buffer grows by when it is full.
const READ_CHUNK: usize = 8192;
/// Most buffers handed to one `writev`.
const WRITE_SLICES: usize = 16;

/// One HTTP/1.1 connection and the state of its current exchange. Boxed: it moves out of
/// the pool, into the call, into the response body and back on every request.
pub struct Conn {
    inner: Box<Parts>,
}

struct Parts {
    io: TcpStream,
    /// Bytes read and not yet consumed.
    read: BytesMut,
    /// The request head being written (reused: no allocation per request) and how much of
    /// it is written.
    head: Vec<u8>,
    head_sent: usize,
    /// Bytes to write after the head, in order (body data, chunk framing).
    queue: VecDeque<Bytes>,
    /// The request body still being sent (none once it ended, or for a bodyless request).
    body: Option<Outgoing>,
    /// How the answer's body is framed, once its head was read.
    answer: Option<Framing>,
    /// The answer allows another request on this connection.
    keep_alive: bool,
    /// The request body broke or the connection failed: never reuse it.
    broken: bool,
}

struct Outgoing {
    body: Body,
    chunked: bool,
}

/// How much of the answer's body is left.
enum Framing {
    Length(u64),
    Chunked(Chunk),
    /// Until the server closes the connection.
    Eof,
    Done,
}

enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// In a chunk's data: bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// Why a call on a connection failed.
pub enum SendError {
    /// The request body failed while it was sent (the client's, or its length limit).
    Body(BoxError),
    /// Reading or writing the connection failed, or the answer is not HTTP.
    Io(String),
    /// The connection ended without answering.
    Closed,
}

impl Conn {
    /// An HTTP/1.1 connection over `stream` (no bytes are exchanged before the first
    /// request).
    pub fn new(io: TcpStream) -> Conn {
        Conn {
            inner: Box::new(Parts {
                io,
                read: BytesMut::new(),
                // Room for FC's context headers (about 520 bytes) without growing.
                head: Vec::with_capacity(1024),
                head_sent: 0,
                queue: VecDeque::new(),
                body: None,
                answer: None,
                keep_alive: true,
                broken: false,
            }),
        }
    }

    /// Waits until the connection takes a new request; false if it closed instead.
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Whether the connection takes a new request now (`Ready(false)`: it closed or is
    /// unusable). An idle connection is ready at once; a server's close while it sat idle
    /// shows as a readable end of stream (no system call when nothing arrived).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let p = &mut *self.inner;
        if p.broken || !p.keep_alive || p.sending() || p.answer.is_some() {
            return Poll::Ready(false);
        }
        if !p.read.is_empty() {
            // Bytes no request asked for: the exchange's framing is off.
            return Poll::Ready(false);
        }
        match p.poll_fill(cx) {
            Poll::Pending => Poll::Ready(true),
            // Closed, failed, or unasked-for bytes: none of them is a usable connection.
            Poll::Ready(_) => {
                p.broken = true;
                Poll::Ready(false)
            }
        }
    }

    /// Sends `req` (after [`Conn::ready`]) and waits for the answer's head, while the
    /// request body streams out; the rest of the body goes out as the answer's body is
    /// read ([`Conn::poll_body`]).
    pub async fn send(
        &mut self,
        req: http::Request<Body>,
    ) -> Result<http::Response<()>, SendError> {
        let (parts, body) = req.into_parts();
        let p = &mut *self.inner;
        let head_request = parts.method == http::Method::HEAD;
        p.start(&parts, body);
        let resp = poll_fn(|cx| p.poll_head(cx, head_request)).await;
        if resp.is_err() {
            p.broken = true;
        }
        resp
    }

    /// The next piece of the answer's body (`None` at its end), sending what is left of
    /// the request meanwhile.
    pub fn poll_body(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        let p = &mut *self.inner;
        // The request's rest goes out as far as the socket takes it; an instance that
        // answered without reading it all still gets its answer read.
        if p.sending() {
            if let Poll::Ready(Err(_)) = p.poll_send(cx) {
                p.broken = true;
                p.drop_request();
            }
        }
        let polled = p.poll_decode(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            p.broken = true;
        }
        polled
    }

    /// Whether the answer's body is known to be over (nothing left to read).
    pub fn body_done(&self) -> bool {
        matches!(
            self.inner.answer,
            None | Some(Framing::Done) | Some(Framing::Length(0))
        )
    }

    /// The answer's body length left, when it is known.
    pub fn body_len(&self) -> Option<u64> {
        match self.inner.answer {
            Some(Framing::Length(n)) => Some(n),
            None | Some(Framing::Done) => Some(0),
            _ => None,
        }
    }

    /// Ends the exchange once the answer's body has been read to its end: true when the
    /// connection can take another request (the request was sent whole too, and the
    /// answer allowed keep-alive).
    pub fn finish(&mut self) -> bool {
        let p = &mut *self.inner;
        let done = matches!(p.answer, Some(Framing::Done) | Some(Framing::Length(0)));
        if !done || p.sending() {
            p.broken = true;
            return false;
        }
        p.answer = None;
        !p.broken && p.keep_alive
    }

    /// The same connection registered with the current runtime's reactor instead of the
    /// one it was made on (an idle connection moving to another serving shard, see
    /// [`crate::shard`]); `None` when it cannot move (bytes already read and not yet
    /// handled, an exchange not finished, or its old reactor is gone), and is then dropped.
    pub async fn rehome(self) -> Option<Conn> {
        let p = *self.inner;
        if !p.read.is_empty() || p.answer.is_some() || p.sending() || p.broken {
            return None;
        }
        // Deregistered from the old reactor (from any thread), registered with this one.
        let stream = p.io.into_std().ok()?;
        let stream = TcpStream::from_std(stream).ok()?;
        Some(Conn::new(stream))
    }

    /// Whether the connection is known to be unusable.
    pub fn is_closed(&self) -> bool {
        self.inner.broken || !self.inner.keep_alive
    }
}

impl Parts {
    /// Whether some of the request is still to be written.
    fn sending(&self) -> bool {
        self.body.is_some() || !self.queue.is_empty() || self.head_sent < self.head.len()
    }

    /// Gives up on the rest of the request (its body failed, or the connection did).
    fn drop_request(&mut self) {
        self.body = None;
        self.queue.clear();
        self.head_sent = self.head.len();
    }

    /// Queues the request head and sets up its body.
    fn start(&mut self, parts: &http::request::Parts, body: Body) {
        self.keep_alive = true;
        self.answer = None;
        let length = match body.is_end_stream() {
            true => Some(0),
            false => body.size_hint().exact(),
        };
        let head = &mut self.head;
        head.clear();
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b' ');
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut has_length = false;
        let mut chunked_header = false;
        for (name, value) in &parts.headers {
            if name == http::header::CONTENT_LENGTH {
                has_length = true;
            } else if name == http::header::TRANSFER_ENCODING {
                chunked_header = is_chunked(value.as_bytes());
            }
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        // The framing the headers name wins; otherwise the body's known length, or chunks.
        // A body already at its end gets no framing header (as hyper sends it).
        let chunked = if has_length {
            false
        } else if chunked_header {
            true
        } else {
            match length {
                Some(0) => false,
                Some(n) => {
                    head.extend_from_slice(b"content-length: ");
                    head.extend_from_slice(n.to_string().as_bytes());
                    head.extend_from_slice(b"\r\n");
                    false
                }
                None => {
                    head.extend_from_slice(b"transfer-encoding: chunked\r\n");
                    true
                }
            }
        };
        head.extend_from_slice(b"\r\n");
        self.head_sent = 0;
        self.body = (length != Some(0) || chunked).then_some(Outgoing { body, chunked });
    }

    /// Writes queued bytes and pulls the request body until it has all been written
    /// (`Ready(Ok)`), the socket is full or the body has nothing yet (`Pending`), or
    /// something failed. The body's ready frames join the queue before it is written, so
    /// a small request (the head and its body) goes out in one `writev`.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        loop {
            let mut body_pending = false;
            while let Some(out) = self.body.as_mut() {
                if self.queue.len() + 3 > WRITE_SLICES {
                    break;
                }
                match Pin::new(&mut out.body).poll_frame(cx) {
                    Poll::Pending => {
                        body_pending = true;
                        break;
                    }
                    Poll::Ready(Some(Ok(frame))) => {
                        // Trailers of a request body are not passed on.
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        if data.is_empty() {
                            continue;
                        }
                        if out.chunked {
                            let size = format!("{:x}\r\n", data.len());
                            self.queue.push_back(Bytes::from(size));
                            self.queue.push_back(data);
                            self.queue.push_back(Bytes::from_static(b"\r\n"));
                        } else {
                            self.queue.push_back(data);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        self.drop_request();
                        return Poll::Ready(Err(SendError::Body(e)));
                    }
                    Poll::Ready(None) => {
                        if out.chunked {
                            self.queue.push_back(Bytes::from_static(b"0\r\n\r\n"));
                        }
                        self.body = None;
                    }
                }
            }
            if self.queue.is_empty() && self.head_sent == self.head.len() {
                return match body_pending {
                    true => Poll::Pending,
                    false => Poll::Ready(Ok(())),
                };
            }
            ready!(self.poll_write_queue(cx))?;
        }
    }

    fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        while self.head_sent < self.head.len() || !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES + 1];
            let mut n = 0;
            if self.head_sent < self.head.len() {
                slices[0] = IoSlice::new(&self.head[self.head_sent..]);
                n = 1;
            }
            for buf in self.queue.iter().take(WRITE_SLICES) {
                slices[n] = IoSlice::new(buf);
                n += 1;
            }
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))
                .map_err(|e| SendError::Io(format!("write to the instance: {e}")))?;
            if written == 0 {
                return Poll::Ready(Err(SendError::Closed));
            }
            let head_left = self.head.len() - self.head_sent;
            let mut left = written;
            if head_left > 0 {
                let taken = head_left.min(left);
                self.head_sent += taken;
                left -= taken;
            }
            while left > 0 {
                let front = self.queue.front_mut().expect("written bytes were queued");
                if front.len() <= left {
                    left -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads more bytes into the buffer: `Ready(Ok(n))` with `n == 0` at the end of the
    /// stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(READ_CHUNK);
        }
        // tokio's read: a short read clears the socket's readiness, so the next look at an
        // idle connection costs no system call.
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }

    /// Sends the request while waiting for the answer's head; skips `1xx` heads.
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head_request: bool,
    ) -> Poll<Result<http::Response<()>, SendError>> {
        loop {
            if self.sending() {
                // A request body that fails ends the call; a full socket lets the answer
                // be read meanwhile (the instance may answer before it reads the body).
                if let Poll::Ready(Err(e)) = self.poll_send(cx) {
                    return Poll::Ready(Err(e));
                }
            }
            if let Some(resp) = self.parse_head(head_request)? {
                return Poll::Ready(Ok(resp));
            }
            if self.read.len() >= HEAD_MAX {
                return Poll::Ready(Err(SendError::Io(format!(
                    "the instance's answer head is over {HEAD_MAX} bytes"
                ))));
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) if self.read.is_empty() => return Poll::Ready(Err(SendError::Closed)),
                Ok(0) => {
                    return Poll::Ready(Err(SendError::Io(
                        "the instance closed the connection in the middle of its answer's head"
                            .into(),
                    )))
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Err(SendError::Io(format!("read from the instance: {e}"))))
                }
            }
        }
    }

    /// The answer's head, if the buffer holds all of it (a `1xx` head is consumed and
    /// skipped).
    fn parse_head(&mut self, head_request: bool) -> Result<Option<http::Response<()>>, SendError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
            let mut parsed = httparse::Response::new(&mut headers);
            let len = match parsed.parse(&self.read) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => {
                    return Err(SendError::Io(format!(
                        "the instance's answer is not valid HTTP/1: {e}"
                    )))
                }
            };
            let code = parsed.code.unwrap_or(0);
            if (100..200).contains(&code) && code != 101 {
                // An interim answer (100 Continue, 103 Early Hints): the final one follows.
                self.read.advance(len);
                continue;
            }
            let status = http::StatusCode::from_u16(code)
                .map_err(|_| SendError::Io(format!("the instance answered status {code}")))?;
            if code == 101 {
                return Err(SendError::Io(
                    "the instance switched protocols on a request that asked for no upgrade".into(),
                ));
            }
            let http10 = parsed.version == Some(0);
            // Where each name and value sits in the head (on the stack: no allocation), so
            // that the values can share the head's bytes once it is taken off the buffer.
            let mut spans = [(0u32, 0u32, 0u32, 0u32); HEADERS_MAX];
            let count = parsed.headers.len();
            let base = self.read.as_ptr() as usize;
            for (span, h) in spans.iter_mut().zip(parsed.headers.iter()) {
                let name = h.name.as_ptr() as usize - base;
                let value = h.value.as_ptr() as usize - base;
                *span = (
                    name as u32,
                    (name + h.name.len()) as u32,
                    value as u32,
                    (value + h.value.len()) as u32,
                );
            }
            // The head's bytes stay shared by its header values (no copy).
            let head = self.read.split_to(len).freeze();
            let mut map = http::HeaderMap::with_capacity(count);
            let (mut length, mut chunked, mut other_coding, mut close, mut keep) =
                (None::<u64>, false, false, false, false);
            for &(n0, n1, v0, v1) in &spans[..count] {
                let raw_name = &head[n0 as usize..n1 as usize];
                let name = http::HeaderName::from_bytes(raw_name).map_err(|_| {
                    SendError::Io(format!(
                        "the instance sent a bad header name {:?}",
                        String::from_utf8_lossy(raw_name)
                    ))
                })?;
                let value =
                    http::HeaderValue::from_maybe_shared(head.slice(v0 as usize..v1 as usize))
                        .map_err(|_| {
                            SendError::Io(format!("the instance sent a bad {name} value"))
                        })?;
                if name == http::header::CONTENT_LENGTH {
                    let n = parse_length(value.as_bytes()).ok_or_else(|| {
                        SendError::Io("the instance sent an invalid content-length".into())
                    })?;
                    if length.is_some_and(|m| m != n) {
                        return Err(SendError::Io(
                            "the instance sent two different content-lengths".into(),
                        ));
                    }
                    length = Some(n);
                } else if name == http::header::TRANSFER_ENCODING {
                    chunked = is_chunked(value.as_bytes());
                    other_coding = !chunked;
                } else if name == http::header::CONNECTION {
                    close |= has_token(value.as_bytes(), b"close");
                    keep |= has_token(value.as_bytes(), b"keep-alive");
                }
                map.append(name, value);
            }
            let bodyless = head_request || code == 204 || code == 304;
            self.answer = Some(if bodyless {
                Framing::Done
            } else if chunked {
                Framing::Chunked(Chunk::Size)
            } else if other_coding {
                Framing::Eof
            } else if let Some(n) = length {
                Framing::Length(n)
            } else {
                Framing::Eof
            });
            // A body that ends with the connection leaves nothing to reuse.
            self.keep_alive =
                !close && (!http10 || keep) && !matches!(self.answer, Some(Framing::Eof));
            let mut resp = http::Response::new(());
            *resp.status_mut() = status;
            *resp.version_mut() = if http10 {
                http::Version::HTTP_10
            } else {
                http::Version::HTTP_11
            };
            *resp.headers_mut() = map;
            return Ok(Some(resp));
        }
    }

    /// The next piece of the answer's body.
    fn poll_decode(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let Some(framing) = self.answer.as_mut() else {
                return Poll::Ready(None);
            };
            match framing {
                Framing::Done | Framing::Length(0) => {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if !self.read.is_empty() {
                        let n = (*left).min(self.read.len() as u64) as usize;
                        *left -= n as u64;
                        return Poll::Ready(Some(Ok(self.read.split_to(n).freeze())));
                    }
                }
                Framing::Eof => {
                    if !self.read.is_empty() {
                        return Poll::Ready(Some(Ok(self.read.split().freeze())));
                    }
                }
                Framing::Chunked(state) => match chunk_step(state, &mut self.read) {
                    Ok(Step::Data(bytes)) => return Poll::Ready(Some(Ok(bytes))),
                    Ok(Step::Again) => continue,
                    Ok(Step::End) => {
                        *framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(e) => return Poll::Ready(Some(Err(e.into()))),
                },
            }
            // Nothing buffered for the body: read more.
            match ready!(self.poll_fill(cx)) {
                Ok(0) => {
                    if matches!(self.answer, Some(Framing::Eof)) {
                        self.answer = Some(Framing::Done);
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(
                        "the instance closed the connection before its answer's body was complete"
                            .into(),
                    )));
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Some(Err(format!("read from the instance: {e}").into())))
                }
            }
        }
    }
}

enum Step {
    Data(Bytes),
    /// The state moved on; look again.
    Again,
    End,
    NeedMore,
}

/// One step of chunked decoding over the buffered bytes.
fn chunk_step(state: &mut Chunk, read: &mut BytesMut) -> Result<Step, String> {
    match state {
        Chunk::Size => {
            let Some(line) = take_line(read)? else {
                return Ok(Step::NeedMore);
            };
            // Extensions after `;` are ignored, as every server ignores them.
            let digits = line[..].split(|&b| b == b';').next().unwrap_or_default();
            let digits = digits.trim_ascii();
            if digits.is_empty() || digits.len() > 16 {
                return Err("the instance sent a bad chunk size".into());
            }
            let mut size: u64 = 0;
            for &b in digits {
                let d = (b as char)
                    .to_digit(16)
                    .ok_or("the instance sent a bad chunk size")?;
                size = size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(d as u64))
                    .ok_or("the instance sent a bad chunk size")?;
            }
            *state = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            Ok(Step::Again)
        }
        Chunk::Data(left) => {
            if read.is_empty() {
                return Ok(Step::NeedMore);
            }
            let n = (*left).min(read.len() as u64) as usize;
            *left -= n as u64;
            if *left == 0 {
                *state = Chunk::DataEnd;
            }
            Ok(Step::Data(read.split_to(n).freeze()))
        }
        Chunk::DataEnd => {
            if read.len() < 2 {
                return Ok(Step::NeedMore);
            }
            if &read[..2] != b"\r\n" {
                return Err("the instance's chunk data is not followed by CRLF".into());
            }
            read.advance(2);
            *state = Chunk::Size;
            Ok(Step::Again)
        }
        Chunk::Trailers => {
            let Some(line) = take_line(read)? else {
                return Ok(Step::NeedMore);
            };
            Ok(if line.is_empty() {
                Step::End
            } else {
                Step::Again
            })
        }
    }
}

/// The next CRLF-terminated line (without its CRLF), taken off the buffer.
fn take_line(read: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    match read.windows(2).position(|w| w == b"\r\n") {
        Some(end) => {
            let mut line = read.split_to(end + 2);
            line.truncate(end);
            Ok(Some(line))
        }
        None if read.len() > LINE_MAX => Err("the instance sent an overlong chunk line".into()),
        None => Ok(None),
    }
}

/// Whether a `transfer-encoding` value ends in `chunked` (the only coding that frames).
fn is_chunked(value: &[u8]) -> bool {
    value
        .rsplit(|&b| b == b',')
        .next()
        .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// A `content-length` value: digits only (a repeated list of one value is allowed).
fn parse_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for part in value.split(|&b| b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
            return None;
        }
        let n: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if found.is_some_and(|m| m != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

#[cfg(test)]
mod tests;
