//! Server start-up and shutdown: data and run directories, store, leftover reaping, the
//! scheduler with every stored function, and the HTTP listener.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fcx_runtime::{CodeCache, ProcessBackend, ProcessConfig};
use fcx_scheduler::{Scheduler, SchedulerConfig};
use fcx_store::{CodeStore, SqliteStore, Store};
use sha2::{Digest, Sha256};

use crate::auth::{AuthMode, Keys, Verifier};
use crate::state::App;

/// Everything `fcx server` is told on its command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Parent of per-server run directories (`<run_root>/<prefix>`).
    pub run_root: PathBuf,
    pub start_timeout: Duration,
    /// How API requests are authenticated; `None` is refused on non-loopback addresses.
    pub auth: AuthMode,
    /// User instances run as: a name or `UID:GID`.
    pub instance_user: String,
    pub region: String,
    /// Idle time after which instances are reclaimed (a function's `idleTimeout` wins).
    pub idle_timeout: Duration,
    /// Idle time after which instances are frozen (`None`: never).
    pub freeze_after: Option<Duration>,
    /// Most instances running at once on this server.
    pub max_instances: u32,
    /// How long shutdown waits for in-flight requests before stopping instances anyway.
    pub shutdown_timeout: Duration,
    /// Async invocations run at once.
    pub async_workers: usize,
    /// First retry delay of a failed async invocation (doubles per attempt).
    pub async_retry_base: Duration,
    /// OCI runtime for custom-container functions (`None`: code packages only).
    pub oci_runtime: Option<String>,
    /// Most processes one container instance may run.
    pub pids_limit: i64,
    /// Pre-created sandboxes per custom-container function (0: none).
    pub sandboxes_per_function: u32,
    /// Most pre-created sandboxes on this server.
    pub sandbox_limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Refused(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] fcx_store::StoreError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// The name that marks what one server creates, derived from its data dir, so servers side
/// by side never touch each other's instances.
pub fn prefix_for(data_dir: &Path) -> String {
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("fcx-{hex}")
}

/// The OCI backend and image cache, after checking that the host can run containers (the
/// server refuses to start otherwise, instead of failing every container invocation), with
/// what a previous run left behind removed.
fn containers(
    config: &ServerConfig,
    data_dir: &Path,
    run_dir: &Path,
    prefix: &str,
) -> Result<Option<fcx_scheduler::Containers>, ServerError> {
    let Some(runtime) = &config.oci_runtime else {
        return Ok(None);
    };
    fcx_runtime::host::ensure_oci_ready(runtime, data_dir).map_err(|report| {
        ServerError::Refused(format!(
            "the OCI backend (--oci-runtime {runtime}) cannot run on this host:\n{report}\n\
             Fix the above (`fcx doctor --fix` applies the safe fixes), or start with \
             --oci-runtime none to run code-package functions only."
        ))
    })?;
    let runtime_path = executable(runtime);
    let images = fcx_image::ImageStore::open(data_dir.join("images"))
        .map_err(|e| ServerError::Refused(format!("image cache: {e}")))?;
    let backend = fcx_runtime::OciBackend::new(fcx_runtime::OciConfig {
        runtime: runtime_path,
        run_dir: run_dir.to_owned(),
        layer_dir: data_dir.join("instances").join(prefix),
        log_dir: data_dir.join("logs"),
        prefix: prefix.to_owned(),
        pids_limit: config.pids_limit,
        resolv_conf: fcx_runtime::egress::resolv_conf(),
    });
    let reaped = backend.reap();
    if reaped > 0 {
        tracing::warn!(
            count = reaped,
            "removed containers left behind by a previous run"
        );
    }
    Ok(Some(fcx_scheduler::Containers {
        backend: Arc::new(backend),
        images: Arc::new(images),
    }))
}

/// `name` found on PATH (or as given when it holds a `/`).
fn executable(name: &str) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs the server until `shutdown` completes, then stops every instance.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if !config.listen.ip().is_loopback() && config.auth == AuthMode::None {
        return Err(ServerError::Refused(format!(
            "refusing to listen on {} with --auth none: unauthenticated requests are allowed \
             on loopback addresses only (127.0.0.1, ::1); use --auth signature (the default) \
             to listen on other addresses",
            config.listen
        )));
    }
    if !fcx_runtime::is_root() {
        return Err(ServerError::Refused(
            "fcx server must run as root: it creates a network namespace per instance and \
             starts instances as an unprivileged user"
                .into(),
        ));
    }
    let (uid, gid) = fcx_runtime::lookup_user(&config.instance_user)
        .map_err(io(format!("instance user '{}'", config.instance_user)))?;

    std::fs::create_dir_all(&config.data_dir).map_err(io("creating the data dir"))?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .map_err(io("resolving the data dir"))?;
    // Function code runs as another user and must not read keys or the database.
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("securing the data dir"))?;
    let prefix = prefix_for(&data_dir);
    let run_dir = config.run_root.join(&prefix);
    for dir in [&config.run_root, &run_dir, &run_dir.join("code")] {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        // The instance user must reach the unpacked code below it.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(io(format!("setting permissions of {}", dir.display())))?;
    }
    // systemd mounts /run noexec: instances could not run their unpacked code.
    if fcx_runtime::code::allow_exec(&config.run_root)
        .map_err(io("making the run dir executable"))?
    {
        tracing::info!(dir = %config.run_root.display(), "the run dir was on a noexec mount: bind-mounted it with exec allowed");
    }

    let cgroups = fcx_runtime::CgroupRoot::open(&prefix);
    let cgroup_root = cgroups.clone();
    let reaped =
        fcx_runtime::pidfile::reap(&run_dir) + cgroups.as_ref().map(|c| c.reap()).unwrap_or(0);
    if reaped > 0 {
        tracing::warn!(
            count = reaped,
            "stopped instances left behind by a previous run"
        );
    }

    let db = data_dir.join("fcx.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db)?);
    let queue = fcx_store::queue::Queue::open(&db)?;
    let code = CodeStore::open(&data_dir.join("code"))?;
    let account_id = account_id(store.as_ref())?;
    let verifier = match config.auth {
        AuthMode::Signature => Some(Arc::new(Verifier::new(open_keys(&data_dir)?))),
        AuthMode::None => {
            tracing::warn!(
                listen = %config.listen,
                "authentication is off (--auth none): anyone who can reach this address can \
                 deploy and run code"
            );
            None
        }
    };
    let backend = ProcessBackend::new(ProcessConfig {
        run_dir: run_dir.clone(),
        log_dir: data_dir.join("logs"),
        uid,
        gid,
        cgroups,
    });
    let containers = containers(&config, &data_dir, &run_dir, &prefix)?;
    let scheduler = Scheduler::new(
        backend,
        CodeCache::new(run_dir.join("code")),
        SchedulerConfig {
            region: config.region.clone(),
            account_id: account_id.clone(),
            start_timeout: config.start_timeout,
            idle_timeout: config.idle_timeout,
            freeze_after: config.freeze_after,
            max_instances: config.max_instances,
            sandboxes_per_function: config.sandboxes_per_function,
            sandbox_limit: config.sandbox_limit,
        },
        containers,
    );
    let asyncs = fcx_async::AsyncService::new(
        queue,
        Arc::clone(&scheduler),
        fcx_async::AsyncSettings {
            workers: config.async_workers,
            retry_base: config.async_retry_base,
            region: config.region.clone(),
            account_id: account_id.clone(),
        },
    );
    let app = Arc::new(App {
        store,
        code,
        scheduler,
        asyncs,
        aliases: Default::default(),
        log_dir: data_dir.join("logs"),
        region: config.region.clone(),
        account_id,
    });
    load_functions(&app)?;
    crate::scaling::apply_all(&app)?;
    crate::async_api::load_all(&app)?;
    app.scheduler.start_maintenance();
    // Resumes whatever the queue holds from before a restart.
    app.asyncs.start();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(io(format!("listening on {}", config.listen)))?;
    let local = listener
        .local_addr()
        .map_err(io("reading the bound address"))?;
    // Tests and scripts read this line to find the server.
    println!(
        "fcx server listening on http://{local} (data dir {}, run dir {})",
        data_dir.display(),
        run_dir.display()
    );
    let router = crate::routes::router(Arc::clone(&app), verifier);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .into_future(),
    );
    tokio::pin!(serving);
    let served = tokio::select! {
        result = &mut serving => Some(result),
        () = shutdown => None,
    };
    let served = match served {
        Some(result) => result,
        None => {
            // Stop accepting, let in-flight requests finish (bounded), then stop instances.
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stop_tx.send(());
            match tokio::time::timeout(config.shutdown_timeout, &mut serving).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        timeout = ?config.shutdown_timeout,
                        "in-flight requests did not finish in time; stopping instances anyway"
                    );
                    Ok(Ok(()))
                }
            }
        }
    };
    tracing::info!("stopping instances");
    app.asyncs.shutdown();
    app.scheduler.shutdown().await;
    if let Some(root) = cgroup_root {
        tokio::task::spawn_blocking(move || root.remove())
            .await
            .ok();
    }
    // Unpacked code and pid files are cheap to recreate; a clean stop leaves nothing behind.
    if let Err(e) = std::fs::remove_dir_all(&run_dir) {
        tracing::warn!(dir = %run_dir.display(), error = %e, "cannot remove the run dir");
    }
    served
        .map_err(|e| ServerError::Refused(format!("server task failed: {e}")))?
        .map_err(io("serving HTTP"))
}

/// The data dir's AccessKeys; a data dir without any gets an admin key, written to
/// `<data dir>/credentials` (0600).
fn open_keys(data_dir: &Path) -> Result<Keys, ServerError> {
    let keys = Keys::new(fcx_store::KeyStore::open(data_dir)?);
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

/// Every stored function goes to the scheduler, so a restart serves what was deployed.
fn load_functions(app: &App) -> Result<(), ServerError> {
    let mut after: Option<String> = None;
    let mut count = 0;
    loop {
        let page = app.store.list_functions(None, after.as_deref(), 500)?;
        let Some(last) = page.last() else { break };
        after = Some(last.function_name.clone());
        for f in page {
            let name = f.function_name.clone();
            app.deploy(f);
            crate::versions::load_all(app, &name)?;
            count += 1;
        }
    }
    tracing::info!(count, "functions loaded");
    Ok(())
}

/// A 16-digit account id, generated once per data dir.
fn account_id(store: &dyn Store) -> Result<String, ServerError> {
    if let Some(id) = store.meta("account_id")? {
        return Ok(id);
    }
    let n = uuid::Uuid::new_v4().as_u128() % 9_000_000_000_000_000 + 1_000_000_000_000_000;
    let id = n.to_string();
    store.set_meta("account_id", &id)?;
    Ok(id)
}
