//! Thread-per-core serving of the API listener (`fcx server --serve-threads N`): N OS threads
//! (`fcx-serve-<i>`), each running a current-thread tokio runtime that accepts on a
//! listening socket of its own, all bound to the same address with `SO_REUSEPORT` (the
//! kernel spreads new connections over them by their address hash). A connection, its
//! requests and the instance connections they use stay on one thread, as in nginx's
//! single-threaded workers: no request wakes a second worker thread (with tokio's
//! multi-thread scheduler, an idle worker was woken twice per request, docs/benchmarks.md).
//! The shards share one connection count ([`Gate`]), the refusal accounting and the stop
//! signal; the control plane's background work stays on the main runtime.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, watch};

use crate::conn::{App, ConnLimits, Gate, Refused, Transport};
use crate::serve::ServeError;

/// Most `--serve-threads`.
pub const MAX_SERVE_THREADS: usize = 1024;

/// Backlog of each listening socket (as tokio's `TcpListener::bind`).
const BACKLOG: u32 = 1024;

/// `count` listening sockets on `addr`, not yet registered with any runtime (each shard
/// registers its own with its own reactor). The first bind resolves a port 0; the others
/// bind the port it got.
pub(crate) async fn bind(
    addr: SocketAddr,
    count: usize,
) -> Result<Vec<std::net::TcpListener>, ServeError> {
    let shared = count > 1;
    if shared && addr.port() != 0 {
        // SO_REUSEPORT would let this server share a port another one (of the same user)
        // already listens on, each getting half the connections. A plain bind first fails
        // as it always did when the address is taken.
        drop(socket(addr, false)?);
    }
    let mut listeners = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count {
        let listener = socket(at, shared)?
            .listen(BACKLOG)
            .map_err(|source| listen_error(at, source))?;
        at = listener.local_addr().map_err(ServeError::LocalAddr)?;
        // Off this (main) runtime's reactor: the shard's runtime registers it.
        listeners.push(listener.into_std().map_err(ServeError::LocalAddr)?);
    }
    Ok(listeners)
}

/// A bound socket for `addr`: `SO_REUSEADDR` as tokio's own bind sets it, `SO_REUSEPORT`
/// when shards share the address.
fn socket(addr: SocketAddr, reuse_port: bool) -> Result<tokio::net::TcpSocket, ServeError> {
    let err = |source| listen_error(addr, source);
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if reuse_port {
        socket.set_reuseport(true).map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    Ok(socket)
}

fn listen_error(addr: SocketAddr, source: std::io::Error) -> ServeError {
    ServeError::Listen { addr, source }
}

/// The serving threads. They keep running after their accept loops end, until
/// [`Shards::finish`]: see there.
pub(crate) struct Shards {
    threads: Vec<JoinHandle<()>>,
    release: Option<watch::Sender<bool>>,
    /// Each shard sends its index here when its accept loop ends (or its thread unwinds).
    ended: mpsc::UnboundedReceiver<usize>,
    /// Accept loops not yet reported ended.
    running: usize,
}

/// What every shard serves with.
#[derive(Clone)]
pub(crate) struct ShardConfig<A> {
    pub(crate) app: A,
    pub(crate) limits: ConnLimits,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) refused: Refused,
    pub(crate) gate: Gate,
}

impl<A: App> ShardConfig<A> {
    /// Accepts on `listener` (plain HTTP) until the stop signal, with the shared gate.
    async fn accept(self, listener: tokio::net::TcpListener) {
        let ShardConfig {
            app,
            limits,
            stop,
            refused,
            gate,
        } = self;
        crate::conn::accept(
            listener,
            Transport::Plain,
            app,
            limits,
            stop,
            refused,
            &gate,
        )
        .await;
    }
}

impl Shards {
    /// Serves `listener` in a task of the current runtime instead of threads of its own
    /// (`serve_threads` 0: an embedder's runtime, e.g. the in-process microbench, which
    /// counts the allocations of its one thread).
    pub(crate) fn inline<A: App>(
        listener: std::net::TcpListener,
        config: ShardConfig<A>,
    ) -> Result<Shards, ServeError> {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| ServeError::Shard(format!("registering the listener: {e}")))?;
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let ended = Ended(Some((0, ended_tx)));
        tokio::spawn(async move {
            config.accept(listener).await;
            ended.done();
        });
        Ok(Shards {
            threads: Vec::new(),
            release: None,
            ended: ended_rx,
            running: 1,
        })
    }

    /// Starts one thread per listener and waits until each one's runtime serves.
    pub(crate) async fn start<A: App>(
        listeners: Vec<std::net::TcpListener>,
        config: ShardConfig<A>,
    ) -> Result<Shards, ServeError> {
        let (release_tx, release_rx) = watch::channel(false);
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let mut shards = Shards {
            threads: Vec::with_capacity(listeners.len()),
            release: Some(release_tx),
            ended: ended_rx,
            running: 0,
        };
        let mut ready = Vec::with_capacity(listeners.len());
        for (i, listener) in listeners.into_iter().enumerate() {
            let (ready_tx, ready_rx) = oneshot::channel();
            let ended = Ended(Some((i, ended_tx.clone())));
            let shard = config.clone();
            let mut release = release_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("fcx-serve-{i}"))
                .spawn(move || {
                    // Before anything runs here: instance connections dialled on this thread
                    // go to this shard's slot of the instance's pool.
                    fcx_control::shard::enter(i);
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        // Its blocking threads too: a connection they dial is registered
                        // with this runtime's reactor, so it belongs in this shard's slot.
                        .on_thread_start(move || fcx_control::shard::enter(i))
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        let listener = match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => listener,
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                                return;
                            }
                        };
                        let _ = ready_tx.send(Ok(()));
                        let accepting = async {
                            shard.accept(listener).await;
                            ended.done();
                            // The connections still draining, and whatever their requests
                            // started here (a cold start's log reader and exit watcher, its
                            // process's exit notification), run on this runtime: it goes on
                            // until released, after the control plane's shutdown
                            // (`Shards::finish`).
                            std::future::pending::<()>().await
                        };
                        tokio::select! {
                            () = accepting => {}
                            _ = release.wait_for(|r| *r) => {}
                        }
                    });
                })
                .map_err(|e| ServeError::Shard(format!("starting thread fcx-serve-{i}: {e}")))?;
            shards.threads.push(thread);
            shards.running += 1;
            ready.push((i, ready_rx));
        }
        for (i, ready_rx) in ready {
            match ready_rx.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(ServeError::Shard(format!(
                        "starting the runtime of fcx-serve-{i}: {e}"
                    )))
                }
                Err(_) => {
                    return Err(ServeError::Shard(format!(
                        "thread fcx-serve-{i} ended while starting"
                    )))
                }
            }
        }
        Ok(shards)
    }

    /// The first accept loop that ends while none was told to stop (a bug: a panic).
    pub(crate) async fn failed(&mut self) -> usize {
        match self.ended.recv().await {
            Some(i) => {
                self.running -= 1;
                i
            }
            None => std::future::pending().await,
        }
    }

    /// Waits until every accept loop has ended (after the stop signal): from then on no
    /// connection takes a permit, so the shared count can be drained.
    pub(crate) async fn stopped_accepting(&mut self) {
        while self.running > 0 {
            if self.ended.recv().await.is_none() {
                break;
            }
            self.running -= 1;
        }
    }

    /// Ends the serving threads (their runtimes drop what still runs on them) and waits for
    /// them. Call it after [`fcx_control::ControlPlane::shutdown`]: tasks a request started
    /// on a shard (a cold start's log reader and exit watcher) must run until the instances
    /// have stopped. Keeping the shards alive that long, rather than moving cold starts to
    /// the main runtime, keeps a cold start's own I/O (its first connection into the
    /// instance, pooled for the shard) on the shard whose requests use it.
    pub(crate) fn finish(&mut self) -> Vec<usize> {
        if let Some(release) = self.release.take() {
            let _ = release.send(true);
        }
        let mut panicked = Vec::new();
        for (i, thread) in self.threads.drain(..).enumerate() {
            if thread.join().is_err() {
                panicked.push(i);
            }
        }
        panicked
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Tells [`Shards`] that shard `.0` stopped accepting, also when its thread unwinds.
struct Ended(Option<(usize, mpsc::UnboundedSender<usize>)>);

impl Ended {
    fn done(mut self) {
        self.send();
    }

    fn send(&mut self) {
        if let Some((i, tx)) = self.0.take() {
            let _ = tx.send(i);
        }
    }
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.send();
    }
}
