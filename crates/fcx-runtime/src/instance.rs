//! A running instance, whatever its backend: how to reach its server (a dial target), its
//! log and exit status, its pooled keep-alive connections (per serving shard), and the
//! backend's control handles.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::watch;

use crate::backend::Control;
use crate::body::{client_body_error, is_too_large, Body, ConnPool, ResponseBody};
use crate::conn::{Conn, SendError};
use crate::logs::InstanceLog;
use crate::netns::NetNs;
use crate::procnet::{self, Listener};
use crate::shard::Slots;
use crate::spec::ExitReason;

/// A failed call into an instance.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection broke or could not be made (the process may have died).
    #[error("connection to the instance failed: {0}")]
    Connection(String),
    /// The client's request body passed the payload limit while it streamed in.
    #[error("the request body exceeds the payload limit")]
    RequestTooLarge,
    /// The client's request body broke midway (aborted, malformed, stalled); the instance
    /// is not at fault. The message says what the client did.
    #[error("the request body could not be read from the client: {0}")]
    ClientBody(String),
}

/// A new instance id (`c-` and 20 hex digits), the same shape on every backend.
pub(crate) fn new_id() -> String {
    format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
}

/// How the scheduler reaches an instance's server. Dialled once per new keep-alive
/// connection; warm calls reuse pooled connections.
pub enum Dial {
    /// `127.0.0.1:<port>` inside the instance's own network namespace, connected from the
    /// namespace's thread (process and OCI instances).
    Netns {
        /// The instance's namespace (and the thread that dials into it).
        netns: NetNs,
        /// The function's port.
        port: u16,
    },
    /// A plain TCP address on the host (the test fake's loopback servers).
    Tcp(SocketAddr),
}

impl Dial {
    async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        match self {
            Dial::Netns { netns, port } => netns.dial(*port).await,
            Dial::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Ok(stream)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Dial::Netns { port, .. } => format!("127.0.0.1:{port}"),
            Dial::Tcp(addr) => addr.to_string(),
        }
    }
}

/// Everything a backend hands over to make an [`Instance`].
pub struct InstanceParts {
    /// Unique per server; answered as `x-fc-instance-id` and prefixed to its log lines.
    pub id: String,
    /// How to reach its server.
    pub dial: Dial,
    /// Where its output goes.
    pub log: Arc<InstanceLog>,
    /// Set once the instance's main process has ended, with how.
    pub exit: watch::Receiver<Option<ExitReason>>,
    /// The backend's handles: kill, stop, freeze, stats, teardown.
    pub control: Box<dyn Control>,
}

/// A live instance. Dropping it kills its processes and tears down what its backend made.
pub struct Instance {
    /// See [`InstanceParts::id`].
    pub id: String,
    dial: Dial,
    log: Arc<InstanceLog>,
    exit: watch::Receiver<Option<ExitReason>>,
    /// Idle keep-alive connections, one stack per serving shard ([`crate::shard`]).
    idle_conns: ConnPool,
    control: Box<dyn Control>,
    /// When the instance was started, in ms since the Unix epoch.
    pub created_ms: u64,
    /// When its backend finished creating it (the cold start's `create` phase ends here).
    pub created_at: std::time::Instant,
}

impl Instance {
    /// Makes an instance from what its backend set up; no root needed.
    pub fn new(parts: InstanceParts) -> Instance {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Instance {
            id: parts.id,
            dial: parts.dial,
            log: parts.log,
            exit: parts.exit,
            idle_conns: Arc::new(Slots::new()),
            control: parts.control,
            created_ms,
            created_at: std::time::Instant::now(),
        }
    }

    /// The backend's handles of this instance.
    pub fn control(&self) -> &dyn Control {
        self.control.as_ref()
    }

    /// The namespace of a namespaced instance.
    pub(crate) fn netns(&self) -> Option<&NetNs> {
        match &self.dial {
            Dial::Netns { netns, .. } => Some(netns),
            Dial::Tcp(_) => None,
        }
    }

    /// Whether something accepts TCP connections on the instance's port (a connect from
    /// inside its namespace; the connection is reset at once, so it leaves no TIME_WAIT
    /// socket behind).
    pub(crate) async fn accepts_connections(&self) -> bool {
        match self.dial.connect().await {
            Ok(stream) => {
                // Deprecated because a non-zero linger blocks on drop; zero resets at once.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                true
            }
            Err(_) => false,
        }
    }

    /// The TCP sockets listening in the instance's network namespace (none known for an
    /// instance without one).
    pub(crate) fn listeners(&self) -> Vec<Listener> {
        let Some(netns) = self.netns() else {
            return Vec::new();
        };
        let path = netns.path();
        match path.parent().and_then(Path::parent) {
            Some(task_dir) => procnet::listeners_in(task_dir),
            None => Vec::new(),
        }
    }

    /// Its output with FC's per-request markers.
    pub fn log(&self) -> &Arc<InstanceLog> {
        &self.log
    }

    /// How the main process ended, if it has.
    pub fn exited(&self) -> Option<ExitReason> {
        *self.exit.borrow()
    }

    /// Waits up to `within` for the main process to end.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitReason> {
        let mut rx = self.exit.clone();
        let ended = tokio::time::timeout(within, rx.wait_for(Option::is_some)).await;
        match ended {
            Ok(Ok(reason)) => *reason,
            _ => self.exited(),
        }
    }

    /// Sends `req` to the instance's server over a pooled keep-alive connection, driven
    /// from this task (see [`crate::conn`]). The response body streams; the connection
    /// returns to the pool when it has been read.
    pub async fn call(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, CallError> {
        let (conn, _) = self.connection().await?;
        self.send(conn, req).await
    }

    /// Like [`call`](Self::call) for a request that may be sent twice (an idempotent method
    /// without a body): when a pooled connection turns out to be dropped by the server (it
    /// closed it as the request went out), the request is sent once more on a fresh
    /// connection, as FC retries GET, HEAD, OPTIONS and TRACE.
    pub async fn call_replayable(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, CallError> {
        let (conn, reused) = self.connection().await?;
        if !reused {
            return self.send(conn, req).await;
        }
        let (parts, body) = req.into_parts();
        let copy = http::Request::from_parts(parts.clone(), crate::body::empty());
        match self
            .send(conn, http::Request::from_parts(parts, body))
            .await
        {
            Err(CallError::Connection(why)) => {
                tracing::debug!(instance = %self.id, %why, "pooled connection dropped; sending again");
                let fresh = self.dial_connection().await?;
                self.send(fresh, copy).await
            }
            other => other,
        }
    }

    /// Sends `req` (an `Upgrade` request) on a connection of its own that can be taken over
    /// after a `101 Switching Protocols` (`hyper::upgrade::on` the response). The connection
    /// is never pooled.
    pub async fn call_upgrade(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, CallError> {
        let mut sender = self.dial_upgradable().await?;
        let response = sender.send_request(req).await.map_err(call_error)?;
        let (parts, body) = response.into_parts();
        Ok(http::Response::from_parts(
            parts,
            ResponseBody::unpooled(body),
        ))
    }

    async fn send(
        &self,
        mut conn: Conn,
        req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, CallError> {
        let response = conn.send(req).await.map_err(send_error)?;
        let (parts, ()) = response.into_parts();
        // The connection was taken from (or dialled for) this thread's slot: the same task
        // runs on the same runtime throughout, and a runtime's threads share one slot.
        let slot = self.idle_conns.here();
        let body = ResponseBody::new(conn, Arc::clone(&self.idle_conns), slot);
        Ok(http::Response::from_parts(parts, body))
    }

    /// Sends `req` and reads the whole (small) response: initializer and hook calls.
    pub async fn call_collect(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Bytes>, CallError> {
        let (parts, body) = self.call(req).await?.into_parts();
        let bytes = crate::body::collect(body)
            .await
            .map_err(|e| CallError::Connection(e.to_string()))?;
        Ok(http::Response::from_parts(parts, bytes))
    }

    /// A pooled connection of this thread's shard (`true`: it served a request before), an
    /// idle one of another shard moved over, or a new one; always registered with this
    /// thread's runtime.
    async fn connection(&self) -> Result<(Conn, bool), CallError> {
        let slot = self.idle_conns.here();
        loop {
            let mut conn = match self.idle_conns.pop(slot) {
                Some(conn) => conn,
                // Moving an idle connection costs two epoll_ctl calls; dialling costs a trip
                // to the namespace's thread, and one more connection for the instance.
                None => match self.idle_conns.pop_other(slot) {
                    Some(conn) if !conn.is_closed() => match Box::pin(conn.rehome()).await {
                        Some(conn) => conn,
                        None => continue,
                    },
                    Some(_) => continue,
                    None => break,
                },
            };
            if conn.is_closed() {
                continue;
            }
            // A connection whose previous exchange just ended is ready at once (no timer is
            // armed for that usual case); its I/O is polled first, so a close while it sat
            // in the pool is noticed here.
            let now = std::future::poll_fn(|cx| std::task::Poll::Ready(conn.poll_ready(cx))).await;
            let ready = match now {
                std::task::Poll::Ready(ready) => ready,
                std::task::Poll::Pending => {
                    tokio::time::timeout(Duration::from_secs(1), conn.ready()).await == Ok(true)
                }
            };
            if ready {
                return Ok((conn, true));
            }
        }
        // Boxed: dialling (into the instance's network namespace) is rare on a warm path
        // and would otherwise enlarge every call's future.
        Ok((Box::pin(self.dial_connection()).await?, false))
    }

    async fn dial(&self) -> Result<tokio::net::TcpStream, CallError> {
        self.dial
            .connect()
            .await
            .map_err(|e| CallError::Connection(format!("connect {}: {e}", self.dial.describe())))
    }

    /// A new keep-alive connection, driven by the requests that use it.
    async fn dial_connection(&self) -> Result<Conn, CallError> {
        let mut conn = Conn::new(self.dial().await?);
        if !conn.ready().await {
            return Err(CallError::Connection(format!(
                "{} closed the new connection",
                self.dial.describe()
            )));
        }
        Ok(conn)
    }

    /// A new connection that can be taken over after a 101; it runs in a task of its own
    /// (the upgraded stream outlives the request).
    async fn dial_upgradable(&self) -> Result<SendRequest<Body>, CallError> {
        let io = hyper_util::rt::TokioIo::new(self.dial().await?);
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| CallError::Connection(describe(&e)))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Kills the instance's processes at once.
    pub fn kill(&self) {
        self.control.kill();
    }
}

/// SIGTERM (or the backend's equivalent), then a kill after `grace` if still running: what
/// [`Backend::stop`](crate::Backend::stop) does unless a backend says otherwise.
pub(crate) async fn stop(instance: &Instance, grace: Duration) {
    if instance.exited().is_none() {
        instance.control.terminate();
        if instance.wait_exit(grace).await.is_none() {
            instance.kill();
            instance.wait_exit(Duration::from_secs(5)).await;
        }
    }
    // Children that outlived the main process still get the group kill.
    instance.kill();
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The control's own drop then removes what the backend set up.
        self.control.kill();
    }
}

/// A failed call on a pooled connection, as the scheduler tells them apart.
fn send_error(e: SendError) -> CallError {
    match e {
        SendError::Body(e) => {
            client_side(e.as_ref()).unwrap_or_else(|| CallError::Connection(e.to_string()))
        }
        SendError::Io(why) => CallError::Connection(why),
        SendError::Closed => {
            CallError::Connection("the instance closed the connection without answering".into())
        }
    }
}

fn call_error(e: hyper::Error) -> CallError {
    client_side(&e).unwrap_or_else(|| CallError::Connection(describe(&e)))
}

/// The client's part in a failed call, when `e` is its request body's error: the payload
/// limit passed, or the upload broke.
fn client_side(e: &(dyn std::error::Error + 'static)) -> Option<CallError> {
    if is_too_large(e) {
        Some(CallError::RequestTooLarge)
    } else {
        client_body_error(e).map(|client| CallError::ClientBody(client.0.clone()))
    }
}

fn describe(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
