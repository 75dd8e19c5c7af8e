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

/// An instance's response body. On a pooled connection it reads the answer itself (no task
/// of its own does, see [`crate::conn`]) and returns the connection to the pool once read
/// to the end; an upgraded connection's answer is hyper's.
pub struct ResponseBody {
    kind: Kind,
}

enum Kind {
    Pooled {
        /// `None` once the body ended (the connection went back) or broke.
        conn: Option<Conn>,
        /// The pool and slot the connection goes back to.
        pool: ConnPool,
        slot: usize,
    },
    Upgraded(Incoming),
}

impl ResponseBody {
    /// A body read from `conn`, which returns to `slot` of `pool` (the slot it was taken
    /// from or dialled for, even if the body ends on another thread).
    pub(crate) fn new(conn: Conn, pool: ConnPool, slot: usize) -> ResponseBody {
        ResponseBody {
            kind: Kind::Pooled {
                conn: Some(conn),
                pool,
                slot,
            },
        }
    }

    /// A body whose connection is not returned to a pool (an upgraded connection's).
    pub(crate) fn unpooled(inner: Incoming) -> ResponseBody {
        ResponseBody {
            kind: Kind::Upgraded(inner),
        }
    }

    /// Hands a connection whose exchange ended cleanly back to its pool.
    fn recycle(&mut self) {
        if let Kind::Pooled { conn, pool, slot } = &mut self.kind {
            if let Some(mut c) = conn.take() {
                if c.finish() {
                    pool.push(*slot, c);
                }
            }
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = match &mut self.kind {
            Kind::Upgraded(inner) => {
                return Pin::new(inner).poll_frame(cx).map_err(BoxError::from);
            }
            Kind::Pooled { conn: None, .. } => return Poll::Ready(None),
            Kind::Pooled {
                conn: Some(conn), ..
            } => conn.poll_body(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(data))) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) => {
                self.recycle();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken body means a broken connection: never reuse it.
                if let Kind::Pooled { conn, .. } = &mut self.kind {
                    *conn = None;
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upgraded(inner) => inner.is_end_stream(),
            Kind::Pooled { conn: None, .. } => true,
            Kind::Pooled {
                conn: Some(conn), ..
            } => conn.body_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upgraded(inner) => inner.size_hint(),
            Kind::Pooled { conn: None, .. } => SizeHint::with_exact(0),
            Kind::Pooled {
                conn: Some(conn), ..
            } => conn
                .body_len()
                .map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // Consumers may skip polling a body that is already complete (e.g. empty).
        if self.is_end_stream() {
            self.recycle();
        }
    }
}
