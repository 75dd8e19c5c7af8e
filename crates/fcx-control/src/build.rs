//! Assembling the core from a [`CoreConfig`]: data and run directories, leftover reaping, the
//! store and the async queue, the backends (process; OCI with the image cache after the host
//! checks), the scheduler, the async service, and everything the store holds. And stopping
//! it again.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fcx_async::{AsyncService, AsyncSettings};
use fcx_runtime::{Backend, CgroupRoot, CodeCache, ProcessBackend, ProcessConfig};
use fcx_scheduler::{Backends, Scheduler, SchedulerConfig};
use fcx_store::queue::TaskQueue;
use fcx_store::{CodeStore, KeyStore, SqliteStore, Store, StoreError, StoreUrl};
use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use crate::node::Live;
use crate::{ControlPlane, Paths};

/// Everything the core of `fcx server` is told on its command line.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Where the store, code packages, images and logs live (`--data-dir`).
    pub data_dir: PathBuf,
    /// Parent of per-server run directories (`<run_root>/<prefix>`).
    pub run_root: PathBuf,
    /// How long a new instance has to start listening.
    pub start_timeout: Duration,
    /// Where each function's own instance uid (and gid) comes from.
    pub instance_uids: crate::UidRange,
    /// Region reported to functions (`FC_REGION`, `x-fc-region`) and in ARNs.
    pub region: String,
    /// Idle time after which instances are reclaimed (a function's `idleTimeout` wins).
    pub idle_timeout: Duration,
    /// Idle time after which instances are frozen (`None`: never).
    pub freeze_after: Option<Duration>,
    /// Most instances running at once on this server.
    pub max_instances: u32,
    /// Async invocations run at once.
    pub async_workers: usize,
    /// First retry delay of a failed async invocation (doubles per attempt).
    pub async_retry_base: Duration,
    /// OCI runtime for custom-container functions (`None`: code packages only).
    pub oci_runtime: Option<String>,
    /// Most processes one container instance may run.
    pub pids_limit: i64,
    /// The scheduling policy instance processes and containers run under.
    pub instance_scheduling: fcx_runtime::Scheduling,
    /// Pre-created sandboxes per custom-container function (0: none).
    pub sandboxes_per_function: u32,
    /// Most pre-created sandboxes on this server.
    pub sandbox_limit: u32,
    /// The CRIU binary for snapshot starts (`None`: looked up on PATH).
    pub criu: Option<PathBuf>,
    /// Bytes the snapshots under `<data>/snapshots` may take.
    pub snapshot_budget: u64,
    /// Restores of snapshots with more memory than this (bytes) use lazy pages.
    pub snapshot_lazy_above: u64,
    /// How a failed async run reads in its task record (`Code: message`): the gateway's one
    /// mapping of errors to FC codes, handed in by the binary.
    pub async_error_text: fn(&fcx_async::AsyncError) -> String,
    /// The FC code of a scheduler error (the same mapping), for the metrics' `code` label.
    pub scheduler_error_code: fn(&fcx_scheduler::SchedulerError) -> &'static str,
    /// Most function versions with series of their own in the metrics.
    pub metrics_max_functions: usize,
    /// Instance log retention and buffering.
    pub logs: fcx_runtime::LogSettings,
    /// Record invocation metrics (off only for the warm-path benchmark's baseline).
    pub record_metrics: bool,
    /// `--trigger-domain`: HTTP triggers answer at `<function>.<this>` (`DOMAIN[:PORT]`).
    pub trigger_domain: String,
    /// Outbound networking of instances with internetAccess (`--egress`).
    pub egress: fcx_runtime::egress::Requested,
    /// Range veth egress leases this server's address block from (`--egress-range`).
    pub egress_range: fcx_runtime::egress::Ipv4Net,
    /// Namespaces with veth egress kept made ahead of demand (`--egress-pool`).
    pub egress_pool: usize,
    /// Where functions, configs, keys and the async queue are kept (`--store`).
    pub store: StoreUrl,
    /// With a shared store: this node's id (`--node-id`; `None`: host name and prefix).
    pub node_id: Option<String>,
    /// With a shared store: the address other nodes reach this node's API at.
    pub advertise: Option<String>,
    /// With a shared store: how often everything is re-read (`--sync-interval`).
    pub sync_interval: Duration,
    /// With a shared store: most instances all nodes together run
    /// (`--cluster-max-instances`; `None`: each node's `--max-instances` only).
    pub cluster_max_instances: Option<u32>,
    /// With a shared store: a request this node has no capacity for goes to a node that has
    /// some (`--forward`).
    pub forward: bool,
}

/// Why the core did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or the host cannot run the core (the message says what to change).
    #[error("{0}")]
    Refused(String),
    /// A directory or file the core needs could not be made or read.
    #[error("{what}: {source}")]
    Io {
        /// What fcx was doing (a path or a step).
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored function or document could not be loaded into the node.
    #[error("loading what the store holds: {0}")]
    Load(#[source] crate::ControlError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// The name that marks what one server creates, derived from its data dir, so servers side
/// by side never touch each other's instances.
pub fn prefix_for(data_dir: &Path) -> String {
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("fcx-{hex}")
}

impl ControlPlane {
    /// Assembles the core, loads what the store holds, and starts the background work
    /// (minimum instances, idle reclaim, async workers resuming the queue).
    pub async fn start(config: CoreConfig) -> Result<Arc<ControlPlane>, StartError> {
        let control = tokio::task::spawn_blocking(move || assemble(&config))
            .await
            .map_err(|e| StartError::Refused(format!("start-up did not finish: {e}")))??;
        control.scheduler.start_maintenance();
        control.asyncs.start();
        control.start_cluster();
        Ok(control)
    }

    /// The AccessKeys, where the store keeps them (the gateway's signature check).
    pub fn open_keys(&self) -> Result<KeyStore, StoreError> {
        match &self.pg {
            Some(pg) => KeyStore::open_postgres(&self.paths.data_dir, Arc::clone(pg)),
            None => KeyStore::open(&self.paths.data_dir),
        }
    }

    /// The nonces every node sharing the store accepted (`None` on the embedded store).
    pub fn shared_nonces(&self) -> Option<fcx_store::postgres::nonces::PgNonces> {
        self.pg
            .as_ref()
            .map(|pg| fcx_store::postgres::nonces::PgNonces::new(Arc::clone(pg)))
    }

    /// Stops the async workers, then every instance (with its pre-stop hook), and removes
    /// what this server created at run time.
    pub async fn shutdown(&self) {
        tracing::info!("stopping instances");
        self.timers.stop_all();
        self.asyncs.shutdown();
        self.leave_cluster().await;
        self.scheduler.stop_instances().await;
        // After the instances, before the backends' cleanup removes the cgroup root (pasta's
        // group lives under it).
        let egress = self.egress.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(egress) = egress {
            let _ = tokio::task::spawn_blocking(move || egress.shutdown()).await;
        }
        // Each backend removes what it made (groups, bundles).
        self.scheduler.remove_backends().await;
        let run_dir = self.paths.run_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            // Unpacked code and pid files are cheap to recreate; a clean stop leaves nothing.
            if let Err(e) = std::fs::remove_dir_all(&run_dir) {
                tracing::warn!(dir = %run_dir.display(), error = %e, "cannot remove the run dir");
            }
        })
        .await;
    }
}

/// Everything but the background tasks; blocking (file system, host checks, SQLite).
fn assemble(config: &CoreConfig) -> Result<Arc<ControlPlane>, StartError> {
    if !fcx_runtime::is_root() {
        return Err(StartError::Refused(
            "fcx server must run as root: it creates a network namespace per instance and \
             starts instances as an unprivileged user"
                .into(),
        ));
    }
    check_uid_range(config.instance_uids)?;
    let (paths, prefix) = directories(config)?;
    let data_dir_lock = lock_data_dir(&paths.data_dir)?;
    let criu = fcx_runtime::snapshot::Criu::probe(config.criu.as_deref()).map(|mut c| {
        c.lazy_pages_above = config.snapshot_lazy_above;
        Arc::new(c)
    });
    match &criu {
        Ok(c) => {
            tracing::info!(criu = %c.path.display(), version = %c.version, lazy_pages = c.lazy_pages, "snapshot starts available")
        }
        Err(why) => {
            tracing::info!(reason = %why, "snapshot starts unavailable: functions with fcxSnapshot start cold")
        }
    }
    let metrics = Arc::new(fcx_metrics::Metrics::new(config.metrics_max_functions));
    metrics.set_recording(config.record_metrics);
    let logs = fcx_runtime::LogWriter::start(
        paths.log_dir.clone(),
        config.logs.clone(),
        metrics.counters.clone(),
    )
    .map_err(io("starting the instance log writer"))?;

    let backend = ProcessBackend::new(ProcessConfig {
        run_dir: paths.run_dir.clone(),
        logs: Arc::clone(&logs),
        init: fcx_runtime::init::program()
            .map_err(io("opening the fcx binary (instances' init)"))?,
        cgroups: CgroupRoot::open(&prefix),
        criu: criu.clone().ok(),
        prefix: prefix.clone(),
        pids_limit: config.pids_limit,
        scheduling: config.instance_scheduling,
    });
    let reaped = backend.reap();
    if reaped > 0 {
        tracing::warn!(
            count = reaped,
            "stopped instances left behind by a previous run"
        );
    }

    let (store, queue, cluster, pg) = open_store(config, &paths, &prefix)?;
    let store: Arc<dyn Store> = Arc::new(crate::timed_store::TimedStore::new(store, &metrics));
    let code = CodeStore::open(&paths.data_dir.join("code"))?;
    let account_id = account_id(store.as_ref())?;
    let mut backends = Backends::new().with(Arc::new(backend));
    let mut images = None;
    if let Some((oci, image_store)) = containers(config, &paths, &prefix, &logs, criu.clone().ok())?
    {
        backends = backends.with(oci);
        images = Some(image_store);
    }
    // After the OCI reap, which removes the server's cgroups (pasta's among them).
    let egress = start_egress(config, &prefix)?;
    let scheduler = Scheduler::new(
        backends,
        CodeCache::new(paths.run_dir.join("code")),
        SchedulerConfig {
            region: config.region.clone(),
            account_id: account_id.clone(),
            start_timeout: config.start_timeout,
            idle_timeout: config.idle_timeout,
            freeze_after: config.freeze_after,
            max_instances: config.max_instances,
            sandboxes_per_function: config.sandboxes_per_function,
            sandbox_limit: config.sandbox_limit,
            metrics: Arc::clone(&metrics),
            error_code: config.scheduler_error_code,
        },
        images,
    );
    let snapshots = fcx_runtime::snapshot::SnapshotStore::open(
        &paths.data_dir.join("snapshots"),
        config.snapshot_budget,
    )
    .map_err(|e| StartError::Refused(e.to_string()))?;
    scheduler.set_snapshots(fcx_scheduler::snapshot::Snapshots::new(snapshots, criu));
    let asyncs = AsyncService::new(
        queue,
        Arc::clone(&scheduler),
        AsyncSettings {
            workers: config.async_workers,
            retry_base: config.async_retry_base,
            region: config.region.clone(),
            account_id: account_id.clone(),
            error_text: config.async_error_text,
            metrics: Arc::clone(&metrics),
        },
    );
    let control = Arc::new(ControlPlane {
        store,
        code,
        node: Arc::new(Live {
            scheduler: Arc::clone(&scheduler),
            asyncs: Arc::clone(&asyncs),
        }),
        scheduler,
        asyncs,
        aliases: Default::default(),
        publishing: Mutex::new(()),
        cluster,
        pg,
        seen: Mutex::default(),
        paths,
        region: config.region.clone(),
        account_id,
        metrics,
        logs,
        instance_uids: config.instance_uids,
        web: Default::default(),
        trigger_domain: config.trigger_domain.clone(),
        timers: Default::default(),
        me: OnceLock::new(),
        egress: Mutex::new(Some(egress)),
        _data_dir_lock: Some(data_dir_lock),
    });
    let _ = control.me.set(Arc::downgrade(&control));
    control.timers.run_on(tokio::runtime::Handle::current());
    if let Some(cluster) = &control.cluster {
        // Before anything starts an instance (loading starts minimum instances).
        cluster.lease_instances_now(&control.scheduler);
    }
    control.load().map_err(StartError::Load)?;
    if control.cluster.is_some() {
        control.record_loaded().map_err(StartError::Load)?;
    }
    Ok(control)
}

/// What `--store` opens: the store, the async queue, and with a shared store this node's
/// place among the others.
type Opened = (
    Arc<dyn Store>,
    Arc<dyn TaskQueue>,
    Option<crate::cluster::ClusterNode>,
    Option<Arc<fcx_store::postgres::Pg>>,
);

fn open_store(config: &CoreConfig, paths: &Paths, prefix: &str) -> Result<Opened, StartError> {
    let url = match &config.store {
        StoreUrl::Sqlite => {
            if let Some(cap) = config.cluster_max_instances {
                return Err(StartError::Refused(format!(
                    "--cluster-max-instances {cap} caps instances over several nodes sharing \
                     a store: it needs --store postgres://...; a single node is capped by \
                     --max-instances"
                )));
            }
            let db = paths.data_dir.join("fcx.db");
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db)?);
            let queue = fcx_store::queue::Queue::open(&db)?;
            return Ok((store, Arc::new(queue), None, None));
        }
        StoreUrl::Postgres(url) => url,
    };
    let pg = fcx_store::postgres::Pg::connect(url)?;
    let node_id = config.node_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{prefix}", host.trim())
    });
    let queue = fcx_store::postgres::PgQueue::new(Arc::clone(&pg), &node_id);
    // What a previous run of this node leased runs again now, not when the leases expire.
    let released = pg.block({
        let pg = Arc::clone(&pg);
        let node = node_id.clone();
        async move { fcx_store::postgres::release_leases(&pg, &node).await }
    })?;
    if released > 0 {
        tracing::warn!(
            count = released,
            "async invocations a previous run of this node had leased run again"
        );
    }
    let advertise = config.advertise.clone().ok_or_else(|| {
        StartError::Refused(
            "with a shared store (--store postgres://...) the node must say where other nodes \
             reach it: --advertise HOST:PORT"
                .into(),
        )
    })?;
    tracing::info!(store = %config.store, node = %node_id, %advertise, "shared store");
    let cluster = crate::cluster::ClusterNode::new(
        fcx_store::postgres::cluster::Cluster::new(Arc::clone(&pg), &node_id),
        crate::cluster::ClusterSettings {
            advertise,
            sync_interval: config.sync_interval,
            max_instances: config.cluster_max_instances,
            forward: config.forward,
            // Nodes authenticate their requests to each other with it (`peers.rs`).
            node_key: fcx_store::derived_key(&paths.data_dir, crate::peers::KEY_PURPOSE)?,
        },
    );
    // Every node holds the same secret.key (ARCHITECTURE.md, "Several nodes").
    let sealer = fcx_store::Sealer::open(&paths.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(fcx_store::postgres::PgStore::new(
        Arc::clone(&pg),
        sealer,
        &node_id,
    ));
    Ok((store, Arc::new(queue), Some(cluster), Some(pg)))
}

/// Refuses a uid range that holds a user of this host (`/etc/passwd`): instances would run
/// as that user.
fn check_uid_range(range: crate::UidRange) -> Result<(), StartError> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for line in passwd.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(uid)) = (fields.next(), fields.nth(1)) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>() {
            if (range.first..=range.last).contains(&uid) {
                return Err(StartError::Refused(format!(
                    "--instance-uids {}-{} holds uid {uid}, the host's user '{name}': \
                     instances would run as that user; give a range no user has",
                    range.first, range.last
                )));
            }
        }
    }
    Ok(())
}

/// The data dir (0700: function code runs as another user and must not read keys or the
/// database) and this server's run dir (0755: the instance user reaches the unpacked code).
fn directories(config: &CoreConfig) -> Result<(Paths, String), StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(io("creating the data dir"))?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .map_err(io("resolving the data dir"))?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("securing the data dir"))?;
    let prefix = prefix_for(&data_dir);
    let run_dir = config.run_root.join(&prefix);
    // The instances reach their own code under <run>/code/<uid> (0750, their group); pid
    // files are root's.
    for (dir, mode) in [
        (config.run_root.clone(), 0o755),
        (run_dir.clone(), 0o755),
        (run_dir.join("code"), 0o711),
        (run_dir.join("instances"), 0o700),
    ] {
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("setting permissions of {}", dir.display())))?;
    }
    // systemd mounts /run noexec: instances could not run their unpacked code.
    if fcx_runtime::code::allow_exec(&config.run_root)
        .map_err(io("making the run dir executable"))?
    {
        tracing::info!(dir = %config.run_root.display(), "the run dir was on a noexec mount: bind-mounted it with exec allowed");
    }
    let paths = Paths {
        log_dir: data_dir.join("logs"),
        data_dir,
        run_dir,
    };
    Ok((paths, prefix))
}

/// Takes the data dir's `server.lock` (an exclusive `flock`, released when the process ends,
/// also by `kill -9`) and writes this server's PID in it. A second server on the same data
/// dir is refused: it would take the first one's instances for a crashed run's leftovers and
/// kill them, share its run dir and remove it when it stops.
fn lock_data_dir(data_dir: &Path) -> Result<Flock<std::fs::File>, StartError> {
    use std::io::Write;
    let path = data_dir.join("server.lock");
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    let deadline = std::time::Instant::now() + ORPHANED_LOCK_WAIT;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                let mut f: &std::fs::File = &lock;
                f.set_len(0)
                    .and_then(|()| writeln!(f, "{}", std::process::id()))
                    .map_err(io(format!("writing {}", path.display())))?;
                return Ok(lock);
            }
            Err((back, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                // The server that wrote its PID is gone, yet the lock is held: by a child
                // it forked that has not reached `exec` yet (a `flock` belongs to the open
                // file, which a fork shares until exec closes it). That child execs or dies
                // within moments, so a restart right after a `kill -9` waits for it.
                if !process_alive(holder) && std::time::Instant::now() < deadline {
                    file = back;
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let holder = match holder {
                    "" => String::new(),
                    pid => format!(" (pid {pid})"),
                };
                return Err(StartError::Refused(format!(
                    "the data dir {} is in use by another fcx server{holder}: stop that \
                     server first, or give this one a --data-dir of its own",
                    data_dir.display()
                )));
            }
            Err((_, e)) => return Err(io(format!("locking {}", path.display()))(e.into())),
        }
    }
}

/// How long a start waits for a lock whose server is gone (see [`lock_data_dir`]).
const ORPHANED_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Whether `pid` (as written in `server.lock`) names a running process (not a zombie). An
/// empty or unreadable PID counts as running, so the start is refused at once as before.
fn process_alive(pid: &str) -> bool {
    pid.parse().map_or(true, fcx_runtime::pidfile::running)
}

/// The OCI backend and the image cache it runs from.
type Containers = (Arc<dyn Backend>, Arc<fcx_image::ImageStore>);

/// The OCI backend and image cache, after checking that the host can run containers (the
/// server refuses to start otherwise, instead of failing every container invocation), with
/// what a previous run left behind removed.
fn containers(
    config: &CoreConfig,
    paths: &Paths,
    prefix: &str,
    logs: &Arc<fcx_runtime::LogWriter>,
    criu: Option<Arc<fcx_runtime::snapshot::Criu>>,
) -> Result<Option<Containers>, StartError> {
    let Some(runtime) = &config.oci_runtime else {
        return Ok(None);
    };
    let data_dir = &paths.data_dir;
    fcx_runtime::host::ensure_oci_ready(runtime, data_dir).map_err(|report| {
        StartError::Refused(format!(
            "the OCI backend (--oci-runtime {runtime}) cannot run on this host:\n{report}\n\
             Fix the above (`fcx doctor --fix` applies the safe fixes), or start with \
             --oci-runtime none to run code-package functions only."
        ))
    })?;
    let images = fcx_image::ImageStore::open(data_dir.join("images"))
        .map_err(|e| StartError::Refused(format!("image cache: {e}")))?;
    let backend = fcx_runtime::OciBackend::new(fcx_runtime::OciConfig {
        runtime: executable(runtime),
        run_dir: paths.run_dir.clone(),
        layer_dir: data_dir.join("instances").join(prefix),
        logs: Arc::clone(logs),
        prefix: prefix.to_owned(),
        pids_limit: config.pids_limit,
        resolv_conf: fcx_runtime::egress::resolv_conf(),
        criu,
        scheduling: config.instance_scheduling,
    });
    let reaped = backend.reap();
    if reaped > 0 {
        tracing::warn!(
            count = reaped,
            "removed containers left behind by a previous run"
        );
    }
    Ok(Some((Arc::new(backend), Arc::new(images))))
}

/// Sets up outbound networking (after reaping what a previous run left) and says which mode
/// runs and why.
fn start_egress(
    config: &CoreConfig,
    prefix: &str,
) -> Result<fcx_runtime::egress::Active, StartError> {
    use fcx_runtime::egress;
    let active = egress::start(&egress::Settings {
        requested: config.egress,
        veth: egress::VethSettings {
            prefix: prefix.to_owned(),
            range: config.egress_range,
            capacity: config.max_instances.saturating_add(config.sandbox_limit),
            state_dir: egress::STATE_DIR.into(),
            uplinks: None,
        },
        pool: config.egress_pool,
    })
    .map_err(StartError::Refused)?;
    match active.mode() {
        egress::Mode::Veth => tracing::info!("egress: {}", active.describe()),
        egress::Mode::Pasta => tracing::warn!("egress: {}", active.describe()),
    }
    Ok(active)
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

/// A 16-digit account id, generated once per store (nodes starting together agree on one).
fn account_id(store: &dyn Store) -> Result<String, StoreError> {
    if let Some(id) = store.meta("account_id")? {
        return Ok(id);
    }
    let n = uuid::Uuid::new_v4().as_u128() % 9_000_000_000_000_000 + 1_000_000_000_000_000;
    store.init_meta("account_id", &n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock held through another open file (as a forked child of a dead server holds
    /// it), with `pid` written in it.
    fn held_lock(dir: &Path, pid: &str) -> Flock<std::fs::File> {
        let path = dir.join("server.lock");
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        Flock::lock(file, FlockArg::LockExclusiveNonblock).unwrap()
    }

    #[test]
    fn a_lock_outliving_its_server_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        // No process has this PID (PIDs stay below pid_max, at most 2^22).
        let held = held_lock(dir.path(), &u32::MAX.to_string());
        let released = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(held);
        });
        let lock = lock_data_dir(dir.path()).expect("taken once the leftover let go");
        released.join().unwrap();
        let written = std::fs::read_to_string(dir.path().join("server.lock")).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        drop(lock);
    }

    #[test]
    fn a_lock_of_a_running_server_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id().to_string();
        let held = held_lock(dir.path(), &me);
        let Err(StartError::Refused(why)) = lock_data_dir(dir.path()) else {
            panic!("a running holder's lock was taken");
        };
        assert!(
            why.contains(&format!("in use by another fcx server (pid {me})")),
            "{why}"
        );
        drop(held);
    }

    #[test]
    fn missing_pids_are_not_running() {
        assert!(process_alive(&std::process::id().to_string()));
        assert!(!process_alive(&u32::MAX.to_string()));
        assert!(process_alive(""), "an unreadable PID refuses as before");
    }
}
