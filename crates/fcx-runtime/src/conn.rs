//! A keep-alive HTTP/1.1 connection into an instance, driven by the request that uses it
//! rather than by a task of its own. With a connection task, every call crossed tasks (and
//! often vCPUs) three times: the request into the task, the answer's head out of it, and its
//! body. Here the request's own task polls the connection's I/O while it waits for the
//! answer and while it reads the body, so a warm call wakes no other task.
//!
//! An idle pooled connection is polled by no one; a close by the server while it was idle
//! is noticed on its next use ([`Conn::ready`] polls its I/O first), as before.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::Body;

type Driver = http1::Connection<TokioIo<TcpStream>, Body>;

/// One HTTP/1.1 connection: its sender and its I/O, polled by whoever holds it. Boxed:
/// hyper's connection state is large, and a pooled connection moves (out of the pool, into
/// the call, into the response body, back) on every request.
pub struct Conn {
    inner: Box<Parts>,
}

struct Parts {
    sender: SendRequest<Body>,
    driver: Driver,
    /// The I/O half ended (the connection closed or broke).
    ended: bool,
}

/// Why a call on a connection failed.
pub enum SendError {
    /// hyper's error for the exchange.
    Hyper(hyper::Error),
    /// The connection ended without answering.
    Closed,
}

impl Conn {
    /// An HTTP/1.1 connection over `stream`.
    pub async fn handshake(stream: TcpStream) -> hyper::Result<Conn> {
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Conn {
            inner: Box::new(Parts {
                sender,
                driver,
                ended: false,
            }),
        })
    }

    /// Polls the connection's I/O once; false once it has ended.
    pub fn poll_io(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.inner.ended && Pin::new(&mut self.inner.driver).poll(cx).is_ready() {
            self.inner.ended = true;
        }
        !self.inner.ended
    }

    /// Waits until the connection takes a new request; false if it closed instead.
    pub async fn ready(&mut self) -> bool {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Whether the connection takes a new request now (`Ready(false)`: it closed).
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        // The I/O first: it notices a close, and finishes the previous exchange.
        let open = self.poll_io(cx);
        match self.inner.sender.poll_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(true),
            Poll::Ready(Err(_)) => Poll::Ready(false),
            Poll::Pending if open => Poll::Pending,
            Poll::Pending => Poll::Ready(false),
        }
    }

    /// Sends `req` (after [`Conn::ready`]) and waits for the answer's head, driving the I/O
    /// (the request body streams out meanwhile).
    pub async fn send(
        &mut self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, SendError> {
        let answer = self.inner.sender.send_request(req);
        tokio::pin!(answer);
        poll_fn(|cx| {
            if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                return Poll::Ready(r.map_err(SendError::Hyper));
            }
            let open = self.poll_io(cx);
            match answer.as_mut().poll(cx) {
                Poll::Ready(r) => Poll::Ready(r.map_err(SendError::Hyper)),
                Poll::Pending if open => Poll::Pending,
                Poll::Pending => Poll::Ready(Err(SendError::Closed)),
            }
        })
        .await
    }

    /// The same connection registered with the current runtime's reactor instead of the
    /// one it was made on (an idle connection moving to another serving shard, see
    /// [`crate::shard`]); `None` when it cannot move (bytes already read and not yet
    /// handled, or its old reactor is gone), and is then dropped.
    pub async fn rehome(self) -> Option<Conn> {
        let parts = self.inner.driver.into_parts();
        if !parts.read_buf.is_empty() {
            return None;
        }
        // Deregistered from the old reactor (from any thread), registered with this one.
        let stream = parts.io.into_inner().into_std().ok()?;
        let stream = TcpStream::from_std(stream).ok()?;
        // HTTP/1 needs no bytes on the wire for a new client handshake.
        Conn::handshake(stream).await.ok()
    }

    /// Whether the connection is known to be closed.
    pub fn is_closed(&self) -> bool {
        self.inner.ended || self.inner.sender.is_closed()
    }
}
