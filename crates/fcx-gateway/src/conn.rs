//! Client connections, bounded as nginx bounds them: a max-connections limit (503 at it, the
//! connection refused gracefully), a header-read timeout (a head not complete in time is cut,
//! slowloris), an idle keep-alive timeout, and a body-read timeout (a request body that sends
//! nothing for that long fails as the client's error, so it holds no instance slot until the
//! function's timeout). The limits apply before a request reaches the router, on the plain
//! listeners and on the HTTPS one alike (there the TLS handshake must also finish within the
//! header timeout).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use fcx_protocol::{ErrorCode, FcError};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::state::new_request_id;

/// The client-connection limits (`fcx server` flags; defaults as nginx's).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// A request head must be complete this long after its first byte, and a new connection
    /// must send its first head within it (`--header-timeout`; nginx client_header_timeout).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed (`--keepalive-timeout`;
    /// nginx keepalive_timeout).
    pub idle_timeout: Duration,
    /// A request body that sends nothing for this long fails with 400 (`--body-timeout`;
    /// nginx client_body_timeout).
    pub body_timeout: Duration,
    /// Most client connections open at once; more are answered 503 and closed
    /// (`--max-connections`).
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The most bytes a request head may take in all (hyper answers 431 past it; `crate::h1`
/// hands a longer one to hyper).
pub(crate) const HEAD_MAX: usize = 64 * 1024;
/// Connections over the limit being answered 503 at once; past this they are closed at once.
const REFUSING_MAX: usize = 64;
/// How long a refused connection has to send its request head.
const REFUSE_HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What a listener serves: a router, or the web front ahead of the API router
/// ([`crate::web::FrontService`], so an API request is routed once).
pub trait App:
    tower::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = std::convert::Infallible,
        Future: Send + Unpin + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<
            http::Request<Body>,
            Response = http::Response<Body>,
            Error = std::convert::Infallible,
            Future: Send + Unpin + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Counts a refused connection by what it got (`answered` or `closed`).
pub type Refused = Arc<dyn Fn(&'static str) + Send + Sync>;

/// What an accepted socket speaks before HTTP.
#[derive(Clone)]
pub enum Transport {
    /// HTTP straight on TCP.
    Plain,
    /// TLS first (the HTTPS listener), with certificates by SNI (`crate::tls`).
    Tls(tokio_rustls::TlsAcceptor),
}

/// The connection count of one listener, shared by every thread accepting on it (the
/// serving shards of `--serve-threads` share one `--max-connections`): the open
/// connections and the refusals being answered.
#[derive(Clone)]
pub struct Gate {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    max: usize,
}

impl Gate {
    /// Room for `limits.max_connections` connections.
    pub fn new(limits: &ConnLimits) -> Gate {
        Gate {
            open: Arc::new(Semaphore::new(limits.max_connections)),
            refusing: Arc::new(Semaphore::new(REFUSING_MAX)),
            max: limits.max_connections,
        }
    }

    /// Waits until every connection let through has ended. Call it once no thread accepts
    /// any more: it takes all the permits, so a connection accepted meanwhile is refused.
    pub async fn drained(&self) {
        let _ = self.open.acquire_many(self.max as u32).await;
    }
}

/// Accepts connections until `stop` turns true, then lets open connections finish their
/// requests (keep-alive ones are closed after their current request).
pub async fn serve<A: App>(
    listener: TcpListener,
    transport: Transport,
    router: A,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
    refused: Refused,
) {
    let gate = Gate::new(&limits);
    accept(listener, transport, router, limits, stop, refused, &gate).await;
    gate.drained().await;
}

/// Accepts connections under `gate` until `stop` turns true; the connections go on in tasks
/// of the current runtime (wait for them with [`Gate::drained`]).
pub async fn accept<A: App>(
    listener: TcpListener,
    transport: Transport,
    router: A,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    refused: Refused,
    gate: &Gate,
) {
    let (open, refusing) = (&gate.open, &gate.refusing);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of fds or a transient error: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(open).try_acquire_owned() {
            Ok(permit) => {
                let (transport, router, stop) = (transport.clone(), router.clone(), stop.clone());
                tokio::spawn(async move {
                    match transport {
                        Transport::Plain => connection(stream, router, limits, stop, permit).await,
                        Transport::Tls(acceptor) => {
                            if let Some(tls) =
                                handshake(&acceptor, stream, limits.header_timeout).await
                            {
                                connection(tls, router, limits, stop, permit).await;
                            }
                        }
                    }
                });
            }
            Err(_) => match Arc::clone(refusing).try_acquire_owned() {
                Ok(permit) => {
                    refused("answered");
                    let (transport, max) = (transport.clone(), limits.max_connections);
                    tokio::spawn(async move {
                        match transport {
                            Transport::Plain => refuse(stream, max, permit).await,
                            Transport::Tls(acceptor) => {
                                if let Some(tls) =
                                    handshake(&acceptor, stream, REFUSE_HEAD_TIMEOUT).await
                                {
                                    refuse(tls, max, permit).await;
                                }
                            }
                        }
                    });
                }
                // Even the refusals are at their limit: close at once.
                Err(_) => {
                    refused("closed");
                    drop(stream);
                }
            },
        }
    }
}

/// The TLS handshake, bounded like a request head: a client that opens the connection and
/// sends no (or half a) ClientHello is closed, as a silent plain connection is.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    within: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(within, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake not done within {within:?}: closed");
            None
        }
    }
}

/// Serves one connection under the header, idle and body timeouts: fcx's own loop for the
/// plain requests (`crate::h1`), hyper's from the first request that is not.
async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static, A: App>(
    stream: S,
    router: A,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    if let Some(handover) = crate::h1::serve(stream, &router, &limits, &mut stop).await {
        let activity = Activity::new(handover.served);
        let io = (handover.read, handover.io);
        hyper_connection(io, router, limits, stop, permit, activity).await;
    }
}

/// Serves the rest of a connection through hyper: the bytes already read off `stream`
/// first, then the socket.
async fn hyper_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static, A: App>(
    (read, stream): (Bytes, S),
    router: A,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    activity: Activity,
) {
    let activity = Arc::new(activity);
    let io = TokioIo::new(Watched {
        read,
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = Service {
        router: TowerToHyperService::new(router),
        activity: Arc::clone(&activity),
        body_timeout: limits.body_timeout,
    };
    // Upgrades (WebSocket on HTTP triggers): once upgraded, the connection leaves this
    // future (and the timeouts and the count) to the spliced stream.
    let conn = builder().serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    // One timer for the connection's life, checked lazily: it is never armed later than
    // the earliest moment a deadline could fall due, and when it fires the deadline is
    // recomputed (and the timer re-armed if it has moved on). A request therefore costs no
    // timer registration and no wake-up of this task, only the phase updates.
    let check = tokio::time::sleep_until(activity.next_check(&limits));
    tokio::pin!(check);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            () = check.as_mut() => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    // No request in flight and none coming in time: close (slowloris,
                    // idle keep-alive, a connection that never sends).
                    return;
                }
                check.as_mut().reset(activity.next_check(&limits));
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn builder() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    // The timeouts are this module's (hyper's one header timer also runs while idle).
    b.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(HEAD_MAX)
        // A client that shuts down its sending side after a request still gets the answer.
        .half_close(true)
        .keep_alive(true);
    b
}

/// Answers a connection over `--max-connections` with 503 and closes it.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    max: usize,
    _permit: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| async move {
        let error = FcError::new(
            ErrorCode::TooManyConnections,
            format!(
                "this fcx server has {max} client connections open, its limit (server flag \
                 --max-connections); retry later"
            ),
        );
        let flavor = crate::routes::flavor_of(req.uri().path());
        let mut resp = http::Response::new(Body::from(error.body(flavor, &new_request_id())));
        *resp.status_mut() = error.status();
        let h = resp.headers_mut();
        h.insert(http::header::CONNECTION, "close".parse().expect("static"));
        h.insert(http::header::RETRY_AFTER, "1".parse().expect("static"));
        h.insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().expect("static"),
        );
        Ok::<_, std::convert::Infallible>(resp)
    });
    let mut b = builder();
    b.header_read_timeout(REFUSE_HEAD_TIMEOUT).keep_alive(false);
    let conn = b.serve_connection(TokioIo::new(stream), service);
    let _ = tokio::time::timeout(REFUSE_HEAD_TIMEOUT * 2, conn).await;
}

/// What a connection is doing, for its timeouts.
struct Activity {
    state: Mutex<Phase>,
}

struct Phase {
    /// Requests being handled (their responses not yet sent).
    in_flight: u32,
    /// When the first byte of the next head arrived (none yet: idle).
    head_since: Option<Instant>,
    /// When the connection became idle (accepted, or its last response sent).
    idle_since: Instant,
    /// Whether a request was served (the idle timeout applies, not the first-head one).
    served: bool,
}

impl Activity {
    /// Idle from now; `served`: after a request (the idle timeout applies, not the
    /// first-head one).
    fn new(served: bool) -> Activity {
        Activity {
            state: Mutex::new(Phase {
                in_flight: 0,
                head_since: None,
                idle_since: Instant::now(),
                served,
            }),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the connection is to be closed if nothing changes; none while a request runs.
    fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        let p = self.phase();
        if p.in_flight > 0 {
            return None;
        }
        Some(match p.head_since {
            Some(t) => t + limits.header_timeout,
            None if p.served => p.idle_since + limits.idle_timeout,
            None => p.idle_since + limits.header_timeout,
        })
    }

    /// When to look at the deadline next: at it, or sooner, by the shorter of the header
    /// and idle timeouts from now, since a phase change can bring a deadline no closer than
    /// that (a head that starts now is due in `header_timeout`, an idle spell that starts
    /// now in `idle_timeout`).
    fn next_check(&self, limits: &ConnLimits) -> Instant {
        let soonest = Instant::now() + limits.header_timeout.min(limits.idle_timeout);
        self.deadline(limits).map_or(soonest, |d| d.min(soonest))
    }

    fn read_bytes(&self) {
        let mut p = self.phase();
        if p.in_flight == 0 && p.head_since.is_none() {
            p.head_since = Some(Instant::now());
        }
    }

    fn begin(&self) {
        let mut p = self.phase();
        p.in_flight += 1;
        p.head_since = None;
    }

    fn end(&self) {
        let mut p = self.phase();
        p.in_flight = p.in_flight.saturating_sub(1);
        p.served = true;
        p.idle_since = Instant::now();
    }
}

/// A request in flight; it ends when its response body has been sent or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive; `read` (what
/// `crate::h1` read and left to hyper) is read first.
struct Watched<S> {
    read: Bytes,
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read.split_to(n));
            self.activity.read_bytes();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_bytes();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router behind the connection's bookkeeping: each request counts as in flight until
/// its response is sent, and its body reads under the body timeout.
#[derive(Clone)]
struct Service<A> {
    router: TowerToHyperService<A>,
    activity: Arc<Activity>,
    body_timeout: Duration,
}

type Routed<A> = <TowerToHyperService<A> as hyper::service::Service<http::Request<Body>>>::Future;

impl<A: App> hyper::service::Service<http::Request<Incoming>> for Service<A> {
    // `Sent` itself, not boxed into a `Body` again, and a named future, not a boxed one:
    // two allocations less per request (the router's own future is boxed already).
    type Response = http::Response<Sent>;
    type Error = std::convert::Infallible;
    type Future = Answer<Routed<A>>;

    fn call(&self, req: http::Request<Incoming>) -> Self::Future {
        self.activity.begin();
        let guard = Some(InFlight(Arc::clone(&self.activity)));
        if let Some(refused) = crate::head::refuse(&req) {
            return Answer {
                routed: Routing::Refused(Some(refused)),
                guard,
            };
        }
        let req = req.map(|b| Body::new(ClientBody::new(b, self.body_timeout)));
        let routed = hyper::service::Service::call(&self.router, req);
        Answer {
            routed: Routing::Routed(routed),
            guard,
        }
    }
}

/// A request's answer on its way: refused before the router, or the router's future; its
/// body keeps the request in flight.
pub struct Answer<F> {
    routed: Routing<F>,
    guard: Option<InFlight>,
}

enum Routing<F> {
    Refused(Option<http::Response<Body>>),
    Routed(F),
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + Unpin,
{
    type Output = Result<http::Response<Sent>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let resp = match &mut this.routed {
            Routing::Refused(refused) => refused.take().unwrap_or_default(),
            Routing::Routed(routed) => match Pin::new(routed).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(resp)) => resp,
                Poll::Ready(Err(never)) => match never {},
            },
        };
        let guard = this.guard.take();
        Poll::Ready(Ok(resp.map(|inner| Sent {
            inner,
            _guard: guard,
        })))
    }
}

/// A response body that keeps its request in flight until it is sent or dropped.
pub struct Sent {
    inner: Body,
    _guard: Option<InFlight>,
}

impl hyper::body::Body for Sent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client's request body: each error it ends with is a [`ClientBodyError`] (the client's
/// fault, whoever reads it), and it fails when no bytes arrive for the body timeout.
///
/// [`ClientBodyError`]: fcx_control::invoke::ClientBodyError
struct ClientBody {
    inner: Incoming,
    timeout: Duration,
    /// Started when a read first waits; reset by every frame.
    stall: Option<Pin<Box<Sleep>>>,
}

impl ClientBody {
    fn new(inner: Incoming, timeout: Duration) -> ClientBody {
        ClientBody {
            inner,
            timeout,
            stall: None,
        }
    }
}

impl hyper::body::Body for ClientBody {
    type Data = Bytes;
    type Error = fcx_control::invoke::ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        use fcx_control::invoke::ClientBodyError;
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.stall = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ClientBodyError(describe(&e))))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = self.timeout;
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(ClientBodyError(format!(
                        "the client sent no body bytes for {}s (server flag --body-timeout)",
                        timeout.as_secs()
                    ))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A hyper error with its causes (hyper's own text is only the outermost).
fn describe(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(cause) = cur {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        cur = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header timeout shorter than the idle timeout, as by default.
    fn test_limits() -> ConnLimits {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(5),
            max_connections: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_phase() {
        let limits = test_limits();
        let a = Activity::new(false);
        let start = Instant::now();
        assert_eq!(a.deadline(&limits), Some(start + limits.header_timeout));
        a.read_bytes();
        a.begin();
        assert_eq!(a.deadline(&limits), None, "no timeout while a request runs");
        tokio::time::advance(Duration::from_secs(100)).await;
        a.end();
        let idle = Instant::now();
        assert_eq!(a.deadline(&limits), Some(idle + limits.idle_timeout));
        tokio::time::advance(Duration::from_secs(3)).await;
        a.read_bytes();
        assert_eq!(
            a.deadline(&limits),
            Some(Instant::now() + limits.header_timeout),
            "a started head has the header timeout"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_lazy_check_is_never_later_than_a_deadline_a_phase_change_can_bring() {
        let limits = test_limits();
        let a = Activity::new(false);
        a.read_bytes();
        a.begin();
        a.end();
        // Idle: due in 30 s, but a head starting now would be due in 10 s.
        let armed = a.next_check(&limits);
        assert_eq!(armed, Instant::now() + limits.header_timeout);
        tokio::time::advance(Duration::from_secs(4)).await;
        a.read_bytes();
        assert!(armed <= a.deadline(&limits).unwrap());
        // In flight: no deadline, yet an end now would start the idle timeout.
        a.begin();
        let armed = a.next_check(&limits);
        assert!(armed <= Instant::now() + limits.idle_timeout);
        a.end();
        assert!(armed <= a.deadline(&limits).unwrap());
    }
}
