//! Bodies on the instance path: requests stream into the instance and responses stream out
//! of it without being buffered, and a response body drives its keep-alive connection's I/O
//! while it is read and hands the connection back to the instance's pool (the slot of the
//! shard it was dialled on) at its end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use crate::conn::Conn;
use crate::shard::Slots;

/// The error type of every body on the instance path.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Any request or response body on the instance path.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Idle keep-alive connections into one instance, one stack per serving shard
/// ([`crate::shard`]: a connection is only reused on the thread whose reactor it is
/// registered with).
pub(crate) type ConnPool = Arc<Slots<Conn>>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body exceeded its limit.
    #[error("payload size exceeds maximum allowed size")]
    TooLarge,
    /// The connection broke or the stream failed mid-body; the cause as text.
    #[error("cannot read the body: {0}")]
    Broken(String),
}

/// The client's request body broke while it streamed into an instance: the client aborted,
/// sent malformed chunked framing, or stalled past the server's body timeout. The gateway
/// wraps every error of an incoming body in this, so a broken upload is told apart from a
/// broken instance connection and is answered as the client's error (400), with the
/// instance kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(pub String);

/// The client-body error `e` wraps, if any (the instance connection did not break).
pub fn client_body_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ClientBodyError> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<ClientBodyError>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

/// Whether `e` (or any error it wraps) is a body length limit being hit.
pub fn is_too_large(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Reads a whole body into memory (for small bodies: events, hooks, the log tail case).
pub async fn collect<B>(body: B) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    match body.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            let e: BoxError = e.into();
            if is_too_large(e.as_ref()) {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Broken(e.to_string()))
            }
        }
    }
}

/// An instance's response body; polls its connection's I/O while it is read (no task of
/// its own does) and returns the connection to the pool once read to the end.
pub struct ResponseBody {
    inner: Incoming,
    conn: Option<Conn>,
    /// The pool and slot the connection goes back to (none for an upgraded connection's).
    pool: Option<(ConnPool, usize)>,
}

impl ResponseBody {
    /// A body whose connection returns to `slot` of `pool` (the slot it was taken from or
    /// dialled for, even if the body ends on another thread).
    pub(crate) fn new(inner: Incoming, conn: Conn, pool: ConnPool, slot: usize) -> ResponseBody {
        ResponseBody {
            inner,
            conn: Some(conn),
            pool: Some((pool, slot)),
        }
    }

    /// A body whose connection is not returned to a pool (an upgraded connection's).
    pub(crate) fn unpooled(inner: Incoming) -> ResponseBody {
        ResponseBody {
            inner,
            conn: None,
            pool: None,
        }
    }

    fn recycle(&mut self) {
        if let (Some(conn), Some((pool, slot))) = (self.conn.take(), &self.pool) {
            pool.push(*slot, conn);
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut polled = Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_pending() {
            // The bytes come in when the connection's I/O is polled, then the body has them.
            if let Some(conn) = self.conn.as_mut() {
                conn.poll_io(cx);
            }
            polled = Pin::new(&mut self.inner).poll_frame(cx);
        }
        match &polled {
            Poll::Ready(None) => self.recycle(),
            // A broken body means a broken connection: never reuse it.
            Poll::Ready(Some(Err(_))) => self.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Consumers may skip polling a body that is already complete (e.g. empty).
        if self.inner.is_end_stream() {
            self.recycle();
        }
    }
}
