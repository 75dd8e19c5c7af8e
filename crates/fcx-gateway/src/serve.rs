//! Serving HTTP in front of a started control plane: the AccessKeys for signed requests, the
//! listener and its startup line (and the HTTPS listener of custom domains), the front that
//! sends web requests to triggers and domains and the rest to the API router, served on the
//! `--serve-threads` shards (`shards`), and a bounded draining shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fcx_control::ControlPlane;

use crate::auth::{AuthMode, Keys, Verifier};
use crate::conn::{ConnLimits, Gate};
pub use crate::shards::MAX_SERVE_THREADS;
use crate::shards::{ShardConfig, Shards};

/// What the HTTP front is told on `fcx server`'s command line.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the API listens (`--listen`).
    pub listen: SocketAddr,
    /// How API requests are authenticated; `None` is refused on non-loopback addresses.
    pub auth: AuthMode,
    /// How long shutdown waits for in-flight requests before the core stops instances anyway.
    pub shutdown_timeout: Duration,
    /// A second address serving only `GET /metrics`, without authentication (for
    /// Prometheus); on the API listener `/metrics` needs the API's authentication.
    pub metrics_listen: Option<SocketAddr>,
    /// Client connections: timeouts and how many may be open.
    pub connections: ConnLimits,
    /// `--https-listen`: where custom domains with `protocol: HTTPS` are served.
    pub https_listen: Option<SocketAddr>,
    /// `--serve-threads`: threads serving the API listener, each with a current-thread
    /// runtime and a listening socket of its own (1 to [`MAX_SERVE_THREADS`]). 0 (not a
    /// command-line value) serves it in a task of the caller's runtime instead.
    pub serve_threads: usize,
}

/// The default `--serve-threads`: one per CPU this process may run on.
pub fn default_serve_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_SERVE_THREADS)
}

/// Why the HTTP front did not serve (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration must not be served (e.g. no authentication on a public address).
    #[error("{0}")]
    Refused(String),
    /// The AccessKeys of signed requests could not be read or made.
    #[error("store: {0}")]
    Keys(#[from] fcx_store::StoreError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket's error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTPS listener's TLS settings were refused.
    #[error("TLS settings: {0}")]
    Tls(#[source] rustls::Error),
    /// The bound socket did not tell its address.
    #[error("reading the bound address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// A start-up or serving task panicked or was cancelled.
    #[error("server task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A serving thread (`--serve-threads`) could not start or stopped unexpectedly.
    #[error("serving thread: {0}")]
    Shard(String),
}

impl HttpConfig {
    /// Refuses what must never be served; call it before starting the core.
    pub fn check(&self) -> Result<(), ServeError> {
        if self.serve_threads > MAX_SERVE_THREADS {
            return Err(ServeError::Refused(format!(
                "--serve-threads {} is more than {MAX_SERVE_THREADS}",
                self.serve_threads
            )));
        }
        if !self.listen.ip().is_loopback() && self.auth == AuthMode::None {
            return Err(ServeError::Refused(format!(
                "refusing to listen on {} with --auth none: unauthenticated requests are allowed \
                 on loopback addresses only (127.0.0.1, ::1); use --auth signature (the default) \
                 to listen on other addresses",
                self.listen
            )));
        }
        Ok(())
    }
}

/// The serving threads after [`serve`] returned: still running what requests started on
/// them, until [`Serving::finish`].
pub struct Serving {
    shards: Shards,
    /// A serving thread that stopped while the server was serving (reported by `finish`).
    failed: Option<usize>,
}

impl Serving {
    /// Ends the serving threads; call it after [`ControlPlane::shutdown`] (see
    /// `Shards::finish`: tasks a request started on a shard run until the instances stop).
    /// Blocks while the threads end.
    pub fn finish(mut self) -> Result<(), ServeError> {
        let panicked = self.shards.finish();
        match (self.failed, panicked.first()) {
            (Some(i), _) => Err(ServeError::Shard(format!(
                "fcx-serve-{i} stopped accepting connections unexpectedly"
            ))),
            (None, Some(i)) => Err(ServeError::Shard(format!("fcx-serve-{i} panicked"))),
            (None, None) => Ok(()),
        }
    }
}

/// Serves `control` until `shutdown` completes, then stops accepting and lets in-flight
/// requests finish (bounded by the shutdown timeout). Stopping the core is the caller's
/// ([`ControlPlane::shutdown`]), after this returns, and then [`Serving::finish`].
pub async fn serve(
    control: Arc<ControlPlane>,
    config: HttpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Serving, ServeError> {
    config.check()?;
    // Instances made from now on get a pooled-connection slot per shard (`main` announces
    // the shards earlier, before the core starts any instance).
    fcx_control::shard::set_shards(config.serve_threads);
    let verifier = match config.auth {
        AuthMode::Signature => {
            let core = Arc::clone(&control);
            let verifier = tokio::task::spawn_blocking(move || open_verifier(&core))
                .await
                .map_err(ServeError::Task)??;
            Some(Arc::new(verifier))
        }
        AuthMode::None => {
            tracing::warn!(
                listen = %config.listen,
                "authentication is off (--auth none): anyone who can reach this address can \
                 deploy and run code"
            );
            None
        }
    };
    let listeners = crate::shards::bind(config.listen, config.serve_threads.max(1)).await?;
    let local = listeners[0].local_addr().map_err(ServeError::LocalAddr)?;
    control.set_endpoint(local);
    let https = match config.https_listen {
        Some(addr) => {
            let l = bind(addr).await?;
            let bound = l.local_addr().map_err(ServeError::LocalAddr)?;
            Some((l, bound))
        }
        None => None,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let l = bind(addr).await?;
            let bound = l.local_addr().map_err(ServeError::LocalAddr)?;
            Some((l, bound))
        }
        None => None,
    };
    let metrics_note = metrics
        .as_ref()
        .map(|(_, bound)| format!("; metrics on http://{bound}/metrics"))
        .unwrap_or_default();
    let api = crate::routes::router(Arc::clone(&control), verifier.clone());
    let front = |https| {
        crate::web::FrontService::new(Arc::new(crate::web::Front {
            control: Arc::clone(&control),
            api: api.clone(),
            verifier: verifier.clone(),
            https,
        }))
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = fit_to_fd_limit(config.connections);
    let metrics_of = Arc::clone(control.metrics());
    let refused: crate::conn::Refused = Arc::new(move |kind| metrics_of.connection_refused(kind));
    // One connection count for all the shards: --max-connections is the listener's total.
    let gate = Gate::new(&limits);
    let shard_config = ShardConfig {
        app: front(false),
        limits,
        stop: stop_rx.clone(),
        refused: Arc::clone(&refused),
        gate: gate.clone(),
    };
    let mut shards = match config.serve_threads {
        0 => {
            let listener = listeners.into_iter().next().expect("one listener bound");
            Shards::inline(listener, shard_config)?
        }
        _ => Shards::start(listeners, shard_config).await?,
    };
    // Tests and scripts read this line to find the server.
    println!(
        "fcx server listening on http://{local} (data dir {}, run dir {}{metrics_note})",
        control.data_dir().display(),
        control.run_dir().display()
    );
    if let Some((_, bound)) = &https {
        println!("fcx server listening on https://{bound} (custom domains with protocol HTTPS)");
    }
    // The HTTPS listener is bounded like the API's; each listener has its own connection cap.
    let tls_task = match https {
        Some((l, _)) => {
            let acceptor = crate::tls::acceptor(Arc::clone(&control)).map_err(ServeError::Tls)?;
            Some(tokio::spawn(crate::conn::serve(
                l,
                crate::conn::Transport::Tls(acceptor),
                front(true),
                limits,
                stop_rx.clone(),
                Arc::clone(&refused),
            )))
        }
        None => None,
    };
    if let Some((l, _)) = metrics {
        // The metrics listener is bounded like the API's (Prometheus keeps one connection).
        let app = crate::metrics::router(Arc::clone(&control));
        tokio::spawn(crate::conn::serve(
            l,
            crate::conn::Transport::Plain,
            app,
            limits,
            stop_rx.clone(),
            Arc::clone(&refused),
        ));
    }
    drop(stop_rx);
    let failed = tokio::select! {
        i = shards.failed() => {
            tracing::error!(thread = %format!("fcx-serve-{i}"), "a serving thread stopped accepting connections");
            Some(i)
        }
        () = shutdown => None,
    };
    // Stop accepting, let in-flight requests finish (bounded), then return.
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    let drained = async {
        // Every shard's accept loop first: the drain takes all permits, and a connection
        // accepted after that would be refused instead of served.
        shards.stopped_accepting().await;
        gate.drained().await;
        if let Some(t) = tls_task {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?config.shutdown_timeout,
            "in-flight requests did not finish in time; stopping instances anyway"
        );
    }
    Ok(Serving { shards, failed })
}

/// File descriptors kept for everything but client connections (instances' pipes and
/// sockets, the store, images).
const FD_RESERVE: u64 = 512;

/// Raises the soft fd limit to the hard one, and lowers `--max-connections` to what that
/// leaves (a server out of fds answers no one; one at its connection limit answers 503).
fn fit_to_fd_limit(mut limits: ConnLimits) -> ConnLimits {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut nofile = getrlimit(Resource::Nofile);
    if nofile.current < nofile.maximum {
        let raised = Rlimit {
            current: nofile.maximum,
            maximum: nofile.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            nofile = getrlimit(Resource::Nofile);
        }
    }
    if let Some(soft) = nofile.current {
        let room = soft.saturating_sub(FD_RESERVE).max(16) as usize;
        if limits.max_connections > room {
            tracing::warn!(
                max_connections = limits.max_connections,
                fd_limit = soft,
                lowered_to = room,
                "--max-connections exceeds what the open-file limit leaves after {FD_RESERVE} \
                 fds for instances; using {room} (raise `ulimit -n` to allow more)"
            );
            limits.max_connections = room;
        }
    }
    limits
}

/// The verifier of signed requests: the AccessKeys where the store keeps them, this node's
/// nonce journal with the nonces its earlier runs accepted, and when nodes share a store the
/// nonces all of them accepted (ARCHITECTURE.md, "Several nodes").
fn open_verifier(control: &ControlPlane) -> Result<Verifier, ServeError> {
    let data_dir = control.data_dir();
    let keys = open_keys(control)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (journal, loaded) = fcx_store::NonceJournal::open(data_dir, now)?;
    tracing::debug!(
        count = loaded.nonces.len(),
        "nonces remembered from earlier runs"
    );
    Ok(Verifier::durable(keys, journal, &loaded, now).shared_with(control.shared_nonces()))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

/// The AccessKeys where the store keeps them. `FCX_ADMIN_KEY_ID` and `FCX_ADMIN_KEY_SECRET`
/// (e.g. from a Kubernetes Secret) make sure that key exists; otherwise a store without any
/// key gets an admin key, written to `<data dir>/credentials` (0600).
fn open_keys(control: &ControlPlane) -> Result<Keys, ServeError> {
    let data_dir = control.data_dir();
    let store = control.open_keys()?;
    if let (Ok(id), Ok(secret)) = (
        std::env::var("FCX_ADMIN_KEY_ID"),
        std::env::var("FCX_ADMIN_KEY_SECRET"),
    ) {
        if store.import(&id, &secret, "admin (from FCX_ADMIN_KEY_ID)")? {
            tracing::info!(id, "imported the admin AccessKey from the environment");
        }
        return Ok(Keys::new(store));
    }
    let keys = Keys::new(store);
    if let Some(path) = keys.ensure_admin_key(data_dir)? {
        // stderr: stdout's first line is the startup line scripts read.
        eprintln!(
            "fcx: created an admin AccessKey for signed requests; its id and secret are in {} \
             (readable by root only)",
            path.display()
        );
    }
    Ok(keys)
}
