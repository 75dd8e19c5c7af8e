//! A running instance: its process, namespace, log, and pooled keep-alive connections into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::watch;

use crate::body::{is_too_large, Body, ConnPool, ResponseBody};
use crate::cgroup::Cgroup;
use crate::egress::{Egress, PendingEgress};
use crate::logs::InstanceLog;
use crate::netns::NetNs;
use crate::oci::Container;
use crate::procnet::{self, Listener};
use crate::spec::ExitReason;
use crate::sys;

/// A failed call into an instance.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The connection broke or could not be made (the process may have died).
    #[error("connection to the instance failed: {0}")]
    Connection(String),
    /// The client's request body passed the payload limit while it streamed in.
    #[error("the request body exceeds the payload limit")]
    RequestTooLarge,
}

/// A new instance id (`c-` and 20 hex digits), the same shape on every backend.
pub(crate) fn new_id() -> String {
    format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..20])
}

/// What a backend hands over when it has spawned an instance's process.
pub(crate) struct Parts {
    pub id: String,
    pub pid: u32,
    pub netns: NetNs,
    pub log: Arc<InstanceLog>,
    pub exit: watch::Receiver<Option<ExitReason>>,
    pub pidfile: PathBuf,
    pub cgroup: Option<Cgroup>,
    /// Set for OCI instances: the container and its host-side parts.
    pub container: Option<Arc<Container>>,
}

impl Parts {
    pub(crate) fn with_egress(self, egress: PendingEgress) -> Spawned {
        Spawned {
            parts: self,
            egress,
        }
    }
}

/// A spawned instance and its outbound networking, still being set up.
pub(crate) struct Spawned {
    pub parts: Parts,
    pub egress: PendingEgress,
}

/// A live instance. Dropping it kills its processes.
pub struct Instance {
    pub id: String,
    pid: u32,
    port: u16,
    netns: NetNs,
    log: Arc<InstanceLog>,
    exit: watch::Receiver<Option<ExitReason>>,
    idle_conns: ConnPool,
    pidfile: PathBuf,
    cgroup: Option<Cgroup>,
    /// Only held: egress (a pasta, or a veth lease) lives exactly as long as the instance.
    _egress: Option<Egress>,
    container: Option<Arc<Container>>,
    /// When the instance was started, in ms since the Unix epoch.
    pub created_ms: u64,
}

impl Instance {
    pub(crate) fn new(parts: Parts, port: u16) -> Instance {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Instance {
            id: parts.id,
            pid: parts.pid,
            port,
            netns: parts.netns,
            log: parts.log,
            exit: parts.exit,
            idle_conns: ConnPool::default(),
            pidfile: parts.pidfile,
            cgroup: parts.cgroup,
            _egress: None,
            container: parts.container,
            created_ms,
        }
    }

    /// Freezes every process of the instance (cgroup freezer).
    pub async fn freeze(&self) -> std::io::Result<()> {
        match &self.cgroup {
            Some(c) => c.freeze().await,
            None => Err(std::io::Error::other(
                "freezing needs a cgroup v2 mount, which this host lacks",
            )),
        }
    }

    /// Thaws a frozen instance.
    pub async fn thaw(&self) -> std::io::Result<()> {
        match &self.cgroup {
            Some(c) => c.thaw().await,
            None => Ok(()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Attaches outbound networking made while the instance started.
    pub(crate) fn set_egress(&mut self, egress: Option<Egress>) {
        if egress.is_some() {
            self._egress = egress;
        }
    }

    /// The OCI container of an OCI instance.
    pub(crate) fn container(&self) -> Option<&Arc<Container>> {
        self.container.as_ref()
    }

    /// Whether something accepts TCP connections on the instance's port (a connect from
    /// inside its namespace; the connection is reset at once, so it leaves no TIME_WAIT
    /// socket behind).
    pub(crate) async fn accepts_connections(&self) -> bool {
        match self.netns.dial(self.port).await {
            Ok(stream) => {
                // Deprecated because a non-zero linger blocks on drop; zero resets at once.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                true
            }
            Err(_) => false,
        }
    }

    /// The TCP sockets listening in the instance's network namespace.
    pub fn listeners(&self) -> Vec<Listener> {
        let path = self.netns.path();
        match path.parent().and_then(Path::parent) {
            Some(task_dir) => procnet::listeners_in(task_dir),
            None => procnet::listeners(self.pid),
        }
    }

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

    /// Sends `req` to the instance's server over a pooled keep-alive connection. The
    /// response body streams; the connection returns to the pool when it has been read.
    pub async fn call(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<ResponseBody>, CallError> {
        let mut sender = self.connection().await?;
        let response = sender.send_request(req).await.map_err(|e| {
            if is_too_large(&e) {
                CallError::RequestTooLarge
            } else {
                CallError::Connection(describe(&e))
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = ResponseBody::new(body, sender, Arc::clone(&self.idle_conns));
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

    async fn connection(&self) -> Result<SendRequest<Body>, CallError> {
        loop {
            let pooled = self
                .idle_conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let Some(mut sender) = pooled else { break };
            if sender.is_closed() {
                continue;
            }
            // A connection whose previous exchange just ended is ready at once.
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), sender.ready()).await {
                return Ok(sender);
            }
        }
        let stream =
            self.netns.dial(self.port).await.map_err(|e| {
                CallError::Connection(format!("connect 127.0.0.1:{}: {e}", self.port))
            })?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| CallError::Connection(describe(&e)))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Kills the instance's processes at once (its cgroup, or its process group).
    pub fn kill(&self) {
        if let Some(c) = &self.container {
            c.signal(libc::SIGKILL);
        }
        if let Some(c) = &self.cgroup {
            c.kill();
        }
        sys::kill_group(self.pid as i32, libc::SIGKILL);
    }

    /// SIGTERM, then SIGKILL after `grace` if still running.
    pub async fn stop(&self, grace: Duration) {
        if self.exited().is_none() {
            match &self.container {
                Some(c) => c.signal(libc::SIGTERM),
                None => sys::kill_group(self.pid as i32, libc::SIGTERM),
            }
            if self.wait_exit(grace).await.is_none() {
                self.kill();
                self.wait_exit(Duration::from_secs(5)).await;
            }
        }
        // Children that outlived the main process still get the group kill.
        self.kill();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        if let Some(container) = self.container.take() {
            let exit = self.exit.clone();
            let teardown = move || container.teardown(&exit);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(teardown)),
                Err(_) => teardown(),
            }
        }
        if !self.pidfile.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.pidfile);
        }
        if let Some(cgroup) = self.cgroup.take() {
            // The group can only be removed once the kernel has reaped its processes.
            let remove = move || cgroup.remove_when_empty(Duration::from_secs(5));
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(remove)),
                Err(_) => remove(),
            }
        }
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
