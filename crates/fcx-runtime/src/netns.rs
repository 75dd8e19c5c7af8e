//! Per-instance network namespaces, reached without any IP plumbing.
//!
//! A dedicated thread `unshare`s into a new namespace, brings `lo` up and stays there for the
//! instance's life. Processes join it through the namespace fd (`setns` before `exec`); the
//! gateway gets connections to the instance's `127.0.0.1:<port>` by asking that thread to
//! connect, since a socket stays bound to the namespace it was created in. No shared tokio
//! worker ever changes namespace. The namespace dies with its last process and this thread.
//!
//! The instance's first process is forked by this thread too ([`NetNs::spawn_init`]), after
//! it moved its future children into a new PID namespace: the instance's init is pid 1
//! there, and its parent-death signal is tied to this thread, which lives exactly as long as
//! the instance.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::sys;

type DialReply = oneshot::Sender<io::Result<std::net::TcpStream>>;
/// A job run once on the namespace thread (it may change that thread's namespaces).
type Job = Box<dyn FnOnce(&sys::OwnThread) + Send>;

enum Request {
    Dial(u16, DialReply),
    Run(Job),
}

/// A network namespace kept alive by its own thread (and by the processes inside it).
pub struct NetNs {
    fd: OwnedFd,
    /// Kernel id of the namespace thread, which stays in the namespace while `self` lives.
    tid: u32,
    dial_tx: mpsc::Sender<Request>,
}

impl NetNs {
    /// Creates a namespace with only `lo`, up.
    pub fn create(name: &str) -> io::Result<NetNs> {
        let (init_tx, init_rx) = mpsc::channel::<io::Result<(OwnedFd, u32)>>();
        let (dial_tx, dial_rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .stack_size(128 * 1024);
        sys::spawn_namespace_thread(thread, move |own| {
            let init = sys::unshare_netns(own)
                .and_then(|()| sys::loopback_up())
                .and_then(|()| std::fs::File::open("/proc/thread-self/ns/net"))
                .map(|f| (OwnedFd::from(f), sys::gettid()));
            let ok = init.is_ok();
            if init_tx.send(init).is_err() || !ok {
                return;
            }
            // Loopback connects complete or fail at once, so blocking here is brief.
            while let Ok(request) = dial_rx.recv() {
                match request {
                    Request::Dial(port, reply) => {
                        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                        let _ = reply.send(std::net::TcpStream::connect(addr));
                    }
                    Request::Run(job) => job(own),
                }
            }
        })?;
        let (fd, tid) = init_rx.recv().map_err(|_| {
            io::Error::other("network namespace thread ended before reporting its namespace")
        })??;
        Ok(NetNs { fd, tid, dial_tx })
    }

    /// A path naming the namespace while `self` lives (the namespace thread's
    /// `/proc/<pid>/task/<tid>/ns/net`), for tools that join it by path, such as pasta.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/task/{}/ns/net",
            std::process::id(),
            self.tid
        ))
    }

    /// The namespace fd, for `setns` in a child process.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Connects to `127.0.0.1:<port>` inside the namespace.
    pub async fn dial(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let (tx, rx) = oneshot::channel();
        self.dial_tx
            .send(Request::Dial(port, tx))
            .map_err(|_| io::Error::other("network namespace thread is gone"))?;
        let std_stream = rx
            .await
            .map_err(|_| io::Error::other("network namespace thread is gone"))??;
        std_stream.set_nonblocking(true)?;
        std_stream.set_nodelay(true)?;
        tokio::net::TcpStream::from_std(std_stream)
    }

    /// Spawns the instance's first process from the namespace thread, as pid 1 of a new PID
    /// namespace (the thread moves its *future children* there; it can do so once, so one
    /// instance has one init). `cmd` inherits this network namespace; its parent-death
    /// signal fires when this namespace (its thread) goes.
    pub async fn spawn_init(
        &self,
        mut cmd: tokio::process::Command,
    ) -> io::Result<tokio::process::Child> {
        let (tx, rx) = oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        let job: Job = Box::new(move |own| {
            let spawned = sys::unshare_pidns(own).and_then(|()| {
                let _entered = runtime.enter();
                cmd.spawn()
            });
            let _ = tx.send(spawned);
        });
        self.dial_tx
            .send(Request::Run(job))
            .map_err(|_| io::Error::other("network namespace thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("network namespace thread is gone"))?
    }
}

/// A few network namespaces made ahead of demand, so a restore (or any start) takes one at
/// once instead of spawning its thread and bringing `lo` up on the request path. Refilled in
/// the background after each take; an empty pool makes one on the spot.
pub struct NetNsPool {
    ready: std::sync::Arc<std::sync::Mutex<Vec<NetNs>>>,
    size: usize,
}

impl NetNsPool {
    /// A pool that keeps `size` namespaces ready (0: none, every take makes one).
    pub fn new(size: usize) -> NetNsPool {
        NetNsPool {
            ready: Default::default(),
            size,
        }
    }

    /// A fresh namespace with only `lo`, up: a pooled one if there is one.
    pub fn take(&self, name: &str) -> io::Result<NetNs> {
        let pooled = self.ready.lock().unwrap_or_else(|p| p.into_inner()).pop();
        self.refill();
        match pooled {
            Some(ns) => Ok(ns),
            None => NetNs::create(name),
        }
    }

    /// Tops the pool up to its size on a blocking thread (when a runtime is running).
    pub fn refill(&self) {
        if self.size == 0 {
            return;
        }
        let (ready, size) = (std::sync::Arc::clone(&self.ready), self.size);
        let fill = move || loop {
            if ready.lock().unwrap_or_else(|p| p.into_inner()).len() >= size {
                return;
            }
            match NetNs::create("pool") {
                Ok(ns) => ready.lock().unwrap_or_else(|p| p.into_inner()).push(ns),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pre-make a network namespace");
                    return;
                }
            }
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn_blocking(fill));
        }
    }
}
