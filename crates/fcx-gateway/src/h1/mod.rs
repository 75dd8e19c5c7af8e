//! fcx's own HTTP/1.1 server loop, ahead of hyper's on every client connection. It serves
//! the plain requests every call makes (an invoke or trigger request whose head and body
//! have arrived, `request.rs`) with no dispatcher, body channel or per-request timer: the
//! head is parsed in place, the router runs, and the answer is written by hand
//! (`response.rs`). hyper's server cost about as much user-space time per warm request as
//! its client did before `fcx-runtime/src/conn.rs` replaced it (docs/benchmarks.md,
//! session 25).
//!
//! The first request that is not plain (HTTP/1.0, a chunked or still-arriving upload, an
//! upgrade, `100-continue`, a head hyper refuses) hands the connection to hyper for the
//! rest of its life, with the bytes read so far read by hyper before the socket
//! ([`Handover`]): hyper then parses that request itself and answers it exactly as before.
//!
//! The connection's limits are kept here as in `conn.rs`: a head must be complete within
//! the header timeout of its first byte (and the first head within it of the accept), a
//! keep-alive connection idle for the idle timeout is closed, both from one lazily re-armed
//! timer; a stop lets the request in flight finish and closes the connection after it
//! (`Connection: close`). Request bodies are whole before the router sees them, so the body
//! timeout has nothing to wait for here.

mod request;
mod response;
#[cfg(test)]
mod tests;

use std::future::{poll_fn, Future as _};
use std::pin::pin;
use std::task::Poll;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::conn::{App, ConnLimits, HEAD_MAX};

/// How much the read buffer grows by.
const READ_CHUNK: usize = 8192;

/// A connection handed over to hyper: the bytes read and not yet served, and the socket.
pub struct Handover<S> {
    pub read: Bytes,
    pub io: S,
    /// Whether a request was served first (the idle timeout applies, not the first-head one).
    pub served: bool,
}

enum Wait {
    Read(std::io::Result<usize>),
    Stop,
    Check,
}

/// Serves `io`'s requests until it closes, a limit closes it (`None`), or a request this
/// loop leaves to hyper arrives ([`Handover`]).
pub async fn serve<S, A>(
    mut io: S,
    router: &A,
    limits: &ConnLimits,
    stop: &mut watch::Receiver<bool>,
) -> Option<Handover<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    A: App,
{
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Vec::with_capacity(1024);
    let mut served = false;
    let mut idle_since = Instant::now();
    let mut head_since: Option<Instant> = None;
    let soonest = limits.header_timeout.min(limits.idle_timeout);
    let mut check = pin!(tokio::time::sleep_until(idle_since + limits.header_timeout));
    let stop_now = stop.clone();
    let mut stopped = pin!(stop.wait_for(|s| *s));
    let mut stopping = false;
    loop {
        let request = loop {
            if !buf.is_empty() {
                head_since.get_or_insert_with(Instant::now);
                match request::take(&mut buf) {
                    request::Taken::Request(req) => break req,
                    request::Taken::Partial if buf.len() < HEAD_MAX => {}
                    _ => return Some(handover(io, buf, served)),
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(READ_CHUNK);
            }
            let wait = poll_fn(|cx| {
                if let Poll::Ready(r) =
                    tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut io), cx, &mut buf)
                {
                    return Poll::Ready(Wait::Read(r));
                }
                if !stopping && stopped.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wait::Stop);
                }
                match check.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Wait::Check),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match wait {
                // A head cut by the end of the stream is hyper's to answer, as before.
                Wait::Read(Ok(0)) if !buf.is_empty() => return Some(handover(io, buf, served)),
                Wait::Read(Ok(0)) | Wait::Read(Err(_)) => return None,
                Wait::Read(Ok(_)) => {}
                Wait::Stop => {
                    stopping = true;
                    if buf.is_empty() {
                        return None;
                    }
                }
                Wait::Check => {
                    let deadline = match head_since {
                        Some(t) => t + limits.header_timeout,
                        None if served => idle_since + limits.idle_timeout,
                        None => idle_since + limits.header_timeout,
                    };
                    let now = Instant::now();
                    if deadline <= now {
                        // Slowloris, an idle keep-alive, a connection that never sends.
                        return None;
                    }
                    check.as_mut().reset(deadline.min(now + soonest));
                }
            }
        };
        head_since = None;
        let resp = match crate::head::refuse(&request) {
            Some(refused) => refused,
            None => match tower::ServiceExt::oneshot(router.clone(), request).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
        };
        // A stop that came while the request ran closes the connection after its answer.
        stopping = stopping || *stop_now.borrow();
        if !response::write(&mut io, resp, &mut out, stopping).await || stopping {
            let _ = io.shutdown().await;
            return None;
        }
        served = true;
        idle_since = Instant::now();
    }
}

fn handover<S>(io: S, buf: BytesMut, served: bool) -> Handover<S> {
    Handover {
        read: buf.freeze(),
        io,
        served,
    }
}
