//! The `process` backend: instances are host processes started from the unpacked code
//! directory, each function under its own unprivileged uid and gid, each instance in its own
//! network, PID, mount and IPC namespaces (its own `/proc`, a private tmpfs `/tmp`,
//! `/var/tmp` and `/dev/shm`), in cgroups that limit its memory (`memorySize`) and processes.
//! Its pid 1 is a small init (`init.rs`) that runs the function as pid 2.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::backend::{Backend, BackendKind, Control, InstanceStats, Sandbox};
use crate::cgroup::{Cgroup, CgroupRoot};
use crate::egress::{Egress, PendingEgress};
use crate::group::InstanceGroup;
use crate::instance::{Dial, Instance, InstanceParts};
use crate::logs::InstanceLog;
use crate::pidfile;
use crate::procnet::Listener;
use crate::snapshot::{
    self, Criu, LazyPages, PendingSnapshot, Snapshot, SnapshotError, SnapshotMeta,
};
use crate::spec::{EventOutcome, ExitReason, InstanceSpec};
use crate::sys;
use crate::{StartError, StartFailure};

/// Where the process backend keeps its files and whom instances run as.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// Per-server run directory (pid files of live instances).
    pub run_dir: PathBuf,
    /// The log task that stores instance logs (under `<data dir>/logs`).
    pub logs: std::sync::Arc<crate::logs::LogWriter>,
    /// The program exec'd as each instance's init, with [`crate::init::SUBCOMMAND`] as its
    /// first argument (the fcx binary, best as [`crate::init::program`] gives it).
    pub init: PathBuf,
    /// Where instance cgroups go (`None`: no cgroup2 on this host; no freezing).
    pub cgroups: Option<CgroupRoot>,
    /// CRIU for snapshot starts (`None`: none usable; snapshot-enabled functions start cold).
    pub criu: Option<Arc<Criu>>,
    /// The server's prefix: instance limit groups are `fcx/<prefix>/<id>` in every hierarchy.
    pub prefix: String,
    /// Most processes one instance may run.
    pub pids_limit: i64,
    /// The scheduling policy instances run under.
    pub scheduling: crate::Scheduling,
}

/// Starts instances as host processes.
pub struct ProcessBackend {
    config: ProcessConfig,
    /// Pre-made namespaces for restores (kept only where snapshots work).
    netns_pool: crate::netns::NetNsPool,
}

impl ProcessBackend {
    /// A backend with `config`.
    pub fn new(config: ProcessConfig) -> ProcessBackend {
        let pooled = usize::from(config.criu.is_some()) * 2;
        let netns_pool = crate::netns::NetNsPool::new(pooled);
        netns_pool.refill();
        ProcessBackend { config, netns_pool }
    }

    async fn spawn(
        &self,
        spec: &InstanceSpec,
        extra_env: &[(&str, &[u8])],
        stdout: Option<OwnedFd>,
    ) -> Result<(Instance, PendingEgress), StartError> {
        let uid = spec.run_as.ok_or_else(|| {
            StartError::spawn(
                spec,
                "the function has no instance uid (the server allocates one per function)".into(),
            )
        })?;
        if spec.command.is_empty() {
            return Err(StartError::spawn(
                spec,
                "the function has no start command".into(),
            ));
        }
        let id = crate::instance::new_id();
        let log = InstanceLog::for_instance(&self.config.logs, &spec.function_name, &id);
        let (netns, egress) = PendingEgress::with_namespace(&id, spec.internet_access)
            .map_err(StartError::Namespace)?;
        let (program, args) = spec
            .command
            .split_first()
            .ok_or_else(|| StartError::spawn(spec, "the function has no start command".into()))?;
        let snapshot_shape = spec.snapshot && self.config.criu.is_some();
        // Snapshot-enabled instances run under the snapshot init (`sys::pidns_init`): the
        // shape CRIU can dump and restore (see docs/snapshots.md); the others under the
        // instance init (`init.rs`).
        // Snapshot-enabled inits are exec'd by their path, resolved inside their own mount
        // namespace (where a private mount that hides it is undone by `keep`): CRIU must find
        // the executable of every task it dumps on a mount of that namespace, and a
        // descriptor opened by fcx names the host's.
        let init_path = if snapshot_shape {
            std::fs::read_link(&self.config.init).unwrap_or_else(|_| self.config.init.clone())
        } else {
            self.config.init.clone()
        };
        let mut cmd = tokio::process::Command::new(&init_path);
        if snapshot_shape {
            cmd.arg(crate::snapshot::INIT_ARG);
        } else {
            cmd.arg(crate::init::SUBCOMMAND);
        }
        cmd.arg(uid.to_string())
            .arg(uid.to_string())
            .arg("--")
            .arg(program)
            .args(args)
            .current_dir(&spec.code_dir)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("FC_INSTANCE_ID", &id)
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            use std::os::unix::ffi::OsStrExt;
            cmd.env(k, std::ffi::OsStr::from_bytes(v));
        }
        let (read_end, write_end) = sys::pipe().map_err(StartError::Namespace)?;
        let pipe = format!(
            "pipe:[{}]",
            snapshot::inode(write_end.as_fd()).map_err(StartError::Namespace)?
        );
        let stderr = write_end.try_clone().map_err(StartError::Namespace)?;
        match stdout {
            Some(fd) => cmd.stdout(Stdio::from(fd)),
            None => cmd.stdout(Stdio::from(write_end)),
        };
        cmd.stderr(Stdio::from(stderr));
        let cgroup = match &self.config.cgroups {
            Some(root) => Some(root.create(&id).map_err(StartError::Namespace)?),
            None => None,
        };
        let rel = std::path::Path::new("fcx")
            .join(&self.config.prefix)
            .join(&id);
        let limits = InstanceGroup::for_process(&rel, spec.memory_mb, self.config.pids_limit)
            .map_err(|e| {
                StartError::failed(
                    crate::StartFailure::CgroupRefused,
                    format!(
                        "cannot create the instance's cgroups {} with its memory and pids \
                         limits: {e}",
                        rel.display()
                    ),
                )
            })?;
        let mut procs: Vec<std::ffi::CString> = cgroup.iter().map(|c| c.procs.clone()).collect();
        for p in &limits.procs {
            procs.push(cstring(p.as_os_str().as_encoded_bytes()).map_err(StartError::Namespace)?);
        }
        self.config.scheduling.apply(&mut cmd);
        let (status_read, status_write) = sys::pipe().map_err(StartError::Namespace)?;
        // Snapshot-enabled instances run as PID 1 of their own PID namespace, with their
        // identity file as fd 3: the shape CRIU dumps and restores.
        let identity = if snapshot_shape {
            let path = snapshot::write_identity(&self.config.run_dir.join("identity"), &id)
                .map_err(StartError::Namespace)?;
            let file = std::fs::File::open(&path).map_err(StartError::Namespace)?;
            cmd.env(snapshot::IDENTITY_ENV, snapshot::PROCESS_IDENTITY_PATH);
            sys::prepare_pidns_command(
                &mut cmd,
                sys::PidnsSetup {
                    netns: netns.fd().as_raw_fd(),
                    cgroup_procs: procs,
                    user: None,
                    fds: vec![(file.as_raw_fd(), 3)],
                    subreaper: false,
                    private: Some(
                        snapshot_namespace(spec, &init_path).map_err(StartError::Namespace)?,
                    ),
                },
            );
            Some((path, file))
        } else {
            sys::prepare_instance_command(
                &mut cmd,
                netns.fd().as_raw_fd(),
                procs,
                private_mounts(spec.disk_mb).map_err(StartError::Namespace)?,
                status_write.as_raw_fd(),
            );
            None
        };
        let spawned = if identity.is_some() {
            let spawned = cmd.spawn();
            drop(cmd);
            spawned
        } else {
            netns.spawn_init(cmd).await
        };
        let mut child = spawned
            .map_err(|e| StartError::spawn(spec, format!("cannot start {program:?}: {e}")))?;
        // The parent's copies of the write ends closed with `cmd`, so EOF means every
        // process ended.
        drop(status_write);
        log.attach(read_end, &id);
        let pid = child.id().unwrap_or(0);
        let pidfile = pidfile::write(&self.config.run_dir, &id, pid);
        let waiter = identity.is_some();
        let (exit_tx, exit_rx) = watch::channel(None);
        let limits = Arc::new(limits.group);
        let watcher = Arc::clone(&limits);
        let memory_mb = spec.memory_mb;
        tokio::spawn(async move {
            let init = match child.wait().await {
                Ok(status) => waiter_exit(ExitReason::from_status(status), waiter),
                Err(_) => ExitReason::Code(-1),
            };
            let reason = match function_ending(status_read).await {
                Some(crate::init::Ended::Exit(code)) => ExitReason::Code(code),
                Some(crate::init::Ended::Signal(sig)) => ExitReason::Signal(sig),
                // The init itself was killed (by fcx, or with the whole instance).
                None => init,
            };
            let reason = match reason {
                ExitReason::Signal(libc::SIGKILL) if watcher.hit_memory_limit() => {
                    ExitReason::OutOfMemory(memory_mb)
                }
                other => other,
            };
            let _ = exit_tx.send(Some(reason));
        });
        // The waiter forks the program before it execs, so the program is its only child.
        let init = OnceLock::new();
        if waiter {
            if let Some(p) = first_child(pid) {
                let _ = init.set(p);
            }
        }
        let control = ProcessControl {
            pid,
            init,
            init_file: None,
            pidfile,
            cgroup,
            limits,
            egress: std::sync::OnceLock::new(),
            identity: identity.map(|(path, _)| path),
            work: None,
            pipe,
            uid,
            gid: uid,
        };
        let instance = Instance::new(InstanceParts {
            id,
            dial: Dial::Netns {
                netns,
                port: spec.port,
            },
            log,
            exit: exit_rx,
            control: Box::new(control),
        });
        Ok((instance, egress))
    }

    /// Restores `snap` into a fresh instance: its own namespace, cgroup, log pipe and
    /// identity file; `criu restore -d` under a subreaper waiter, which then stands for the
    /// instance's main process.
    async fn restore_instance(
        &self,
        criu: &Criu,
        spec: &InstanceSpec,
        snap: &Snapshot,
    ) -> Result<Instance, StartError> {
        let started = Instant::now();
        let uid = spec.run_as.ok_or_else(|| {
            StartError::spawn(
                spec,
                "the function has no instance uid (the server allocates one per function)".into(),
            )
        })?;
        let id = crate::instance::new_id();
        let log = InstanceLog::for_instance(&self.config.logs, &spec.function_name, &id);
        let (netns, egress) =
            PendingEgress::with_pooled_namespace(&self.netns_pool, &id, spec.internet_access)
                .map_err(StartError::Namespace)?;
        let identity = snapshot::write_identity(&self.config.run_dir.join("identity"), &id)
            .map_err(StartError::Namespace)?;
        let identity_file = std::fs::File::open(&identity).map_err(StartError::Namespace)?;
        let work = self.config.run_dir.join("restore").join(&id);
        std::fs::create_dir_all(&work).map_err(StartError::Namespace)?;
        let (read_end, write_end) = sys::pipe().map_err(StartError::Namespace)?;
        let pipe = format!(
            "pipe:[{}]",
            snapshot::inode(write_end.as_fd()).map_err(StartError::Namespace)?
        );
        let cgroup = match &self.config.cgroups {
            Some(root) => Some(root.create(&id).map_err(StartError::Namespace)?),
            None => None,
        };
        // The same memory and pids limits as a cold-started instance.
        let rel = std::path::Path::new("fcx")
            .join(&self.config.prefix)
            .join(&id);
        let limits = InstanceGroup::for_process(&rel, spec.memory_mb, self.config.pids_limit)
            .map_err(|e| {
                StartError::failed(
                    crate::StartFailure::CgroupRefused,
                    format!(
                        "cannot create the restored instance's cgroups {} with its memory and \
                         pids limits: {e}",
                        rel.display()
                    ),
                )
            })?;
        let mut procs: Vec<std::ffi::CString> = cgroup.iter().map(|c| c.procs.clone()).collect();
        for p in &limits.procs {
            procs.push(cstring(p.as_os_str().as_encoded_bytes()).map_err(StartError::Namespace)?);
        }
        let lazy = if criu.lazy_for(snap.meta.pages_bytes) {
            Some(
                LazyPages::start(criu, &snap.images(), &work)
                    .await
                    .map_err(|e| StartError::failed(StartFailure::Sandbox, e))?,
            )
        } else {
            None
        };
        let mut args = snapshot::criu::restore_args(
            &snap.images(),
            &work,
            &work.join("pid"),
            &snap.meta.pipe,
            Some(&snap.meta.identity),
        );
        if lazy.is_some() {
            args.push("--lazy-pages".into());
        }
        // The instance's mount namespace comes back from the image, on the host's root.
        args.extend(snapshot::criu::HOST_MOUNTS.map(String::from));
        args.extend(["--root".to_owned(), "/".to_owned()]);
        let mut cmd = snapshot::criu::restore_command(
            &criu.path,
            &args,
            &work,
            netns.fd().as_raw_fd(),
            procs,
            &[
                (write_end.as_raw_fd(), snapshot::criu::FD_LOG),
                (identity_file.as_raw_fd(), snapshot::criu::FD_IDENTITY),
            ],
        );
        let prepared_in = started.elapsed();
        let mut child = cmd.spawn().map_err(|e| {
            StartError::failed(
                StartFailure::Sandbox,
                format!("cannot run {}: {e}", criu.path.display()),
            )
        })?;
        drop(cmd);
        drop(write_end);
        drop(identity_file);
        log.attach(read_end, &id);
        let pid = child.id().unwrap_or(0);
        let pidfile = pidfile::write(&self.config.run_dir, &id, pid);
        let (exit_tx, exit_rx) = watch::channel(None);
        let limits = Arc::new(limits.group);
        let watcher = Arc::clone(&limits);
        let memory_mb = spec.memory_mb;
        tokio::spawn(async move {
            let reason = match child.wait().await {
                Ok(status) => waiter_exit(ExitReason::from_status(status), true),
                Err(_) => ExitReason::Code(-1),
            };
            let reason = match reason {
                ExitReason::Signal(libc::SIGKILL) if watcher.hit_memory_limit() => {
                    ExitReason::OutOfMemory(memory_mb)
                }
                other => other,
            };
            let _ = exit_tx.send(Some(reason));
        });
        let control = ProcessControl {
            pid,
            init: OnceLock::new(),
            init_file: Some(work.join("pid")),
            pidfile,
            cgroup,
            limits,
            egress: std::sync::OnceLock::new(),
            identity: Some(identity),
            work: Some(work.clone()),
            pipe,
            uid,
            gid: uid,
        };
        let instance = Instance::new(InstanceParts {
            id,
            dial: Dial::Netns {
                netns,
                port: spec.port,
            },
            log,
            exit: exit_rx,
            control: Box::new(control),
        });
        let (listening, egress) =
            tokio::join!(wait_listening(&instance, spec, started), egress.ready());
        attach_egress(&instance, egress.map_err(StartError::Namespace)?);
        if let Err(e) = listening {
            return Err(StartError::failed(
                StartFailure::Sandbox,
                format!(
                    "the restored instance did not come up ({e}); criu: {}",
                    snapshot::criu::log_errors(&work.join("restore.log"))
                ),
            ));
        }
        if let Some(lazy) = lazy {
            lazy.detach();
        }
        tracing::debug!(
            instance = %instance.id,
            prepared_ms = prepared_in.as_secs_f64() * 1e3,
            listening_ms = started.elapsed().as_secs_f64() * 1e3,
            "process instance restored"
        );
        Ok(instance)
    }
}

/// A waiter exits with 128+N when its program died of signal N.
fn waiter_exit(reason: ExitReason, waiter: bool) -> ExitReason {
    match reason {
        ExitReason::Code(c) if waiter && c > 128 && c <= 128 + 64 => ExitReason::Signal(c - 128),
        other => other,
    }
}

/// The first child of `pid` (`/proc/<pid>/task/<pid>/children`).
fn first_child(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cstring(bytes: &[u8]) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(bytes).map_err(|_| std::io::Error::other("path contains NUL"))
}

/// What each instance gets of its own: `/proc` of its PID namespace (other instances'
/// processes are not there), and empty tmpfs `/tmp` (`diskSize` MB), `/var/tmp` and `/dev/shm`
/// instead of the host's shared, world-writable ones.
fn private_mounts(disk_mb: u32) -> std::io::Result<Vec<sys::PrivateMount>> {
    let flags = (libc::MS_NOSUID | libc::MS_NODEV) as libc::c_ulong;
    let mount = |target: &str, fstype: &str, flags: libc::c_ulong, data: Option<String>| {
        Ok::<_, std::io::Error>(sys::PrivateMount {
            target: cstring(target.as_bytes())?,
            fstype: cstring(fstype.as_bytes())?,
            flags,
            data: data.map(|d| cstring(d.as_bytes())).transpose()?,
        })
    };
    let tmp = |mb: u32| Some(format!("size={mb}m,mode=1777"));
    Ok(vec![
        mount(
            "/proc",
            "proc",
            flags | libc::MS_NOEXEC as libc::c_ulong,
            None,
        )?,
        mount("/tmp", "tmpfs", flags, tmp(disk_mb.max(1)))?,
        mount("/var/tmp", "tmpfs", flags, tmp(disk_mb.max(1)))?,
        mount("/dev/shm", "tmpfs", flags, tmp(64))?,
    ])
}

/// The key CRIU names descriptor `fd` of `pid` by when it is external
/// ([`snapshot::criu::external_file`]): its mount id (`fdinfo`) and inode.
fn fd_external_key(pid: u32, fd: i32) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    let mnt_id = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("no mnt_id in /proc/{pid}/fdinfo/{fd}: {info:?}"),
            )
        })?;
    let inode = std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))?.ino();
    Ok(snapshot::criu::external_file(mnt_id, inode))
}

/// The mount and IPC namespaces of a snapshot-enabled instance: the same private mounts as
/// every process instance, without the host mounts that come and go with other instances
/// (overlay root file systems, namespace files: a restore needs every mount the image names
/// still there), with the code directory and the init's directory kept reachable.
fn snapshot_namespace(
    spec: &InstanceSpec,
    init: &std::path::Path,
) -> std::io::Result<sys::PrivateNamespace> {
    let mut detach: Vec<std::path::PathBuf> = crate::mountinfo::current()
        .into_iter()
        .filter(|m| {
            matches!(m.fstype.as_str(), "overlay" | "nsfs")
                || m.fstype.starts_with("fuse")
                || (m.mount_point.starts_with("/run/netns") && m.mount_point != *"/run/netns")
        })
        .map(|m| m.mount_point)
        .collect();
    // Innermost first.
    detach.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    detach.dedup();
    let mut keep = vec![sys::KeepVisible::new(&std::path::absolute(
        &spec.code_dir,
    )?)?];
    if let Some(dir) = init.parent().filter(|d| d.is_absolute()) {
        keep.push(sys::KeepVisible::new(dir)?);
    }
    Ok(sys::PrivateNamespace {
        mounts: private_mounts(spec.disk_mb)?,
        detach: detach
            .iter()
            .map(|p| cstring(p.as_os_str().as_encoded_bytes()))
            .collect::<std::io::Result<_>>()?,
        keep,
    })
}

/// What the init reported about the function's end on its status pipe (nothing when the
/// init was killed before it could).
async fn function_ending(pipe: OwnedFd) -> Option<crate::init::Ended> {
    let mut text = String::new();
    let mut receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(pipe).ok()?;
    receiver.read_to_string(&mut text).await.ok()?;
    crate::init::Ended::decode(&text)
}

#[async_trait]
impl Backend for ProcessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Process
    }

    /// Starts a web-server instance and waits until it listens on `0.0.0.0:<port>`.
    async fn start(
        &self,
        spec: &InstanceSpec,
        sandbox: Option<Sandbox>,
    ) -> Result<Instance, StartError> {
        if sandbox.is_some() {
            return Err(StartError::Unsupported {
                backend: BackendKind::Process,
                what: "pre-created sandboxes",
            });
        }
        let started = Instant::now();
        let (instance, egress) = self.spawn(spec, &[], None).await?;
        let (listening, egress) =
            tokio::join!(wait_listening(&instance, spec, started), egress.ready());
        attach_egress(&instance, egress.map_err(StartError::Namespace)?);
        listening?;
        Ok(instance)
    }

    async fn run_event(
        &self,
        spec: &InstanceSpec,
        event: &[u8],
        timeout: Duration,
        request_id: &str,
    ) -> Result<EventOutcome, StartError> {
        let (stdout_read, stdout_write) = sys::pipe().map_err(StartError::Namespace)?;
        let (instance, egress) = self
            .spawn(
                spec,
                &[("FC_CUSTOM_CONTAINER_EVENT", event)],
                Some(stdout_write),
            )
            .await?;
        attach_egress(
            &instance,
            egress.ready().await.map_err(StartError::Namespace)?,
        );
        Ok(run_to_exit(instance, stdout_read, timeout, request_id).await)
    }

    fn snapshots(&self) -> bool {
        self.config.criu.is_some()
    }

    /// Dumps a snapshot-enabled instance (PID 1 of its namespace) with CRIU, leaving it
    /// running.
    async fn snapshot(
        &self,
        instance: &Instance,
        into: &PendingSnapshot,
    ) -> Result<SnapshotMeta, SnapshotError> {
        let criu = self
            .config
            .criu
            .as_ref()
            .ok_or_else(|| SnapshotError::Unsupported("no usable criu on this host".into()))?;
        let c = instance
            .control()
            .as_any()
            .downcast_ref::<ProcessControl>()
            .ok_or_else(|| SnapshotError::Unsupported("not a process instance".into()))?;
        let (Some(init), Some(_)) = (c.init_pid(), &c.identity) else {
            return Err(SnapshotError::Unsupported(
                "the instance was not started for snapshots (no PID namespace)".into(),
            ));
        };
        let netns = instance
            .netns()
            .ok_or_else(|| SnapshotError::Unsupported("the instance has no namespace".into()))?;
        let ino = snapshot::inode(netns.fd()).map_err(|source| SnapshotError::Io {
            what: "the instance's namespace".into(),
            source,
        })?;
        let images = into.images();
        // The identity file (fd 3) was opened by fcx, on a host mount the instance's mount
        // namespace does not have: named external, and passed in afresh on restore.
        let identity_key = fd_external_key(init, 3).map_err(|source| SnapshotError::Io {
            what: format!("the identity file (fd 3) of pid {init}"),
            source,
        })?;
        let mut cmd = tokio::process::Command::new(&criu.path);
        cmd.args(snapshot::criu::dump_args(init as i32, &images, ino, None))
            .args(snapshot::criu::HOST_MOUNTS)
            .arg("--external")
            .arg(&identity_key);
        sys::run_as_real_ids(&mut cmd, c.uid, c.gid);
        let memory_bytes = snapshot::rss_bytes(init as i32);
        snapshot::run_criu(cmd, &images, "dump.log", Duration::from_secs(120))
            .await
            .map_err(SnapshotError::Dump)?;
        Ok(SnapshotMeta {
            backend: BackendKind::Process.as_str().into(),
            pipe: c.pipe.clone(),
            identity: identity_key,
            external_mounts: Vec::new(),
            pages_bytes: snapshot::pages_bytes(&images),
            memory_bytes,
        })
    }

    async fn restore(&self, spec: &InstanceSpec, from: &Snapshot) -> Result<Instance, StartError> {
        let Some(criu) = &self.config.criu else {
            return Err(StartError::Unsupported {
                backend: BackendKind::Process,
                what: "snapshots (no usable criu)",
            });
        };
        self.restore_instance(criu, spec, from).await
    }

    /// Kills what a previous run left: instances named by pid files, and their cgroups.
    fn reap(&self) -> usize {
        let reaped = pidfile::reap(&self.config.run_dir)
            + self.config.cgroups.as_ref().map(|c| c.reap()).unwrap_or(0);
        // The limit groups in the v1 hierarchies, now that their processes are gone.
        crate::group::remove_tree(&std::path::Path::new("fcx").join(&self.config.prefix));
        reaped
    }

    /// Removes the (emptied) instance groups and the server's own cgroup directory.
    fn remove_all(&self) {
        if let Some(root) = &self.config.cgroups {
            root.remove();
        }
        let rel = std::path::Path::new("fcx").join(&self.config.prefix);
        crate::group::remove_tree(&rel);
        crate::group::remove_root(&rel);
    }
}

fn attach_egress(instance: &Instance, egress: Option<Egress>) {
    if let (Some(egress), Some(c)) = (
        egress,
        instance.control().as_any().downcast_ref::<ProcessControl>(),
    ) {
        let _ = c.egress.set(egress);
    }
}

/// A process instance's handles: its init (pid 1 of its namespace, leading its session, or
/// for snapshot-enabled instances the waiter in front of it), its cgroups, its pid file and
/// its outbound networking; for snapshot-enabled instances also its PID-namespace init,
/// identity file and log pipe.
struct ProcessControl {
    /// fcx's child: the program, or the waiter in front of a PID namespace.
    pid: u32,
    /// PID 1 of the instance's PID namespace (on the host), once known.
    init: OnceLock<u32>,
    /// Where a restorer wrote `init` (CRIU's `--pidfile`).
    init_file: Option<PathBuf>,
    pidfile: PathBuf,
    cgroup: Option<Cgroup>,
    /// The memory and pids limits (and the memory counters that tell an OOM kill).
    limits: Arc<InstanceGroup>,
    /// Only held: pasta runs exactly as long as the instance.
    egress: std::sync::OnceLock<Egress>,
    /// The identity file (snapshot-enabled instances), removed with the instance.
    identity: Option<PathBuf>,
    /// A restore's work directory, removed with the instance.
    work: Option<PathBuf>,
    /// The log pipe's write end as CRIU names it.
    pipe: String,
    uid: u32,
    gid: u32,
}

impl ProcessControl {
    fn init_pid(&self) -> Option<u32> {
        if let Some(p) = self.init.get() {
            return Some(*p);
        }
        let text = std::fs::read_to_string(self.init_file.as_ref()?).ok()?;
        let pid: u32 = text.trim().parse().ok().filter(|p| *p > 1)?;
        Some(*self.init.get_or_init(|| pid))
    }
}

#[async_trait]
impl Control for ProcessControl {
    /// Kills the instance's processes at once: its cgroup, and its init (the kernel then
    /// kills everything in the init's PID namespace).
    fn kill(&self) {
        if let Some(c) = &self.cgroup {
            c.kill();
        }
        // Killing a PID namespace's init kills everything in it.
        if let Some(init) = self.init_pid() {
            sys::kill(init, libc::SIGKILL);
        }
        sys::kill_group(self.pid as i32, libc::SIGKILL);
    }

    /// SIGTERM: to the snapshot init (which passes it on) or to the instance init (which
    /// passes it on to the function's process group).
    fn terminate(&self) {
        match self.init_pid() {
            Some(init) => sys::kill(init, libc::SIGTERM),
            None => sys::kill(self.pid, libc::SIGTERM),
        }
    }

    /// The v2 group's counters, with the memory figures of the limit group where the v2
    /// group has none (a v1 or hybrid host).
    fn stats(&self) -> std::io::Result<InstanceStats> {
        let mut stats = self.cgroup.as_ref().map(Cgroup::stats).unwrap_or_default();
        let (current, peak) = self.limits.memory_usage();
        stats.memory_current_bytes = stats.memory_current_bytes.or(current);
        stats.memory_peak_bytes = stats.memory_peak_bytes.or(peak);
        Ok(stats)
    }

    fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Drop for ProcessControl {
    fn drop(&mut self) {
        if !self.pidfile.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.pidfile);
        }
        if let Some(path) = &self.identity {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = &self.work {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(cgroup) = self.cgroup.take() {
            crate::cgroup::remove_in_background(cgroup);
        }
        let limits = Arc::clone(&self.limits);
        let remove = move || {
            // The groups can go once the kernel has reaped the instance's processes.
            for _ in 0..100 {
                if limits.remove_when_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Drives a non-web-server instance to its end: collects its stdout and log, and kills it
/// at `timeout` (then `exit` is `None`).
pub(crate) async fn run_to_exit(
    instance: Instance,
    stdout_read: OwnedFd,
    timeout: Duration,
    request_id: &str,
) -> EventOutcome {
    let log = Arc::clone(instance.log());
    log.begin(request_id, crate::logs::Marker::Invoke, true)
        .await;
    let reader = tokio::spawn(read_stdout(stdout_read, Arc::clone(&log)));
    let exit = match tokio::time::timeout(timeout, instance.wait_exit(Duration::MAX)).await {
        Ok(reason) => reason,
        Err(_) => {
            instance.kill();
            None
        }
    };
    // Children may keep stdout open; the group kill ends them so the reader sees EOF.
    instance.kill();
    let stdout = reader.await.unwrap_or_default();
    let log_bytes = log.end(request_id, crate::logs::Marker::Invoke).await;
    EventOutcome {
        instance_id: instance.id.clone(),
        exit,
        stdout,
        log: log_bytes,
    }
}

/// Collects stdout (up to the cap) and copies its lines into the log.
async fn read_stdout(fd: OwnedFd, log: Arc<InstanceLog>) -> Vec<u8> {
    let max = fcx_protocol::limits::EVENT_STDOUT_MAX;
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..room.min(n)]);
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            line.extend_from_slice(part);
            if line.ends_with(b"\n") || line.len() > 4096 {
                log.line(String::from_utf8_lossy(&line).trim_end_matches('\n'));
                line.clear();
            }
        }
    }
    if !line.is_empty() {
        log.line(&String::from_utf8_lossy(&line));
    }
    out
}

/// Waits until the server listens on the wildcard address at its port, the process exits,
/// or the start timeout passes.
///
/// Readiness is probed by connecting to the port inside the instance's namespace: a refused
/// connect costs microseconds, while reading `/proc/<pid>/net/tcp` walks the kernel's whole
/// (host-wide) TCP hash table, about a millisecond of CPU per read. The socket table is
/// read only once something accepts, to check the address is `0.0.0.0` as FC requires, and
/// for the diagnosis at the timeout.
pub(crate) async fn wait_listening(
    instance: &Instance,
    spec: &InstanceSpec,
    started: Instant,
) -> Result<(), StartError> {
    // Servers usually listen within tens of milliseconds: probe closely at first, back off
    // for slow starters.
    let mut delay = Duration::from_micros(250);
    loop {
        if instance.accepts_connections().await {
            let listeners = instance.listeners();
            if listeners
                .iter()
                .any(|l| l.port == spec.port && l.is_wildcard())
            {
                return Ok(());
            }
            // Listening on loopback only: FC's ping fails; keep looking (slowly) until the
            // server rebinds or the timeout gives the diagnosis.
            delay = delay.max(Duration::from_millis(50));
        }
        if let Some(exit) = instance.exited() {
            instance.log().settle().await;
            return Err(StartError::not_started(
                started.elapsed(),
                format!(
                    "the process exited ({exit}) before listening on 0.0.0.0:{}",
                    spec.port
                ),
                instance.log().recent(2048),
            ));
        }
        if started.elapsed() >= spec.start_timeout {
            return Err(StartError::not_started(
                started.elapsed(),
                diagnose(&instance.listeners(), spec),
                instance.log().recent(2048),
            ));
        }
        tokio::time::sleep(delay).await;
        let cap = if started.elapsed() < Duration::from_secs(2) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        };
        delay = (delay * 2).min(cap.max(delay));
    }
}

/// Says what the process listens on instead of `0.0.0.0:<port>`.
fn diagnose(listeners: &[Listener], spec: &InstanceSpec) -> String {
    let port = spec.port;
    let waited = spec.start_timeout.as_secs_f64();
    let head = format!("nothing listens on 0.0.0.0:{port} after {waited}s");
    if listeners.is_empty() {
        return format!("{head}; the process listens on no TCP port at all");
    }
    let list: Vec<String> = listeners.iter().map(ToString::to_string).collect();
    let list = list.join(", ");
    if listeners.iter().any(|l| l.port == port) {
        format!(
            "{head}; the process listens on {list}, which is loopback only: \
             the server must bind 0.0.0.0:{port} (or [::]:{port}), not 127.0.0.1"
        )
    } else {
        format!(
            "{head}; the process listens on {list}: make the server listen on port {port} \
             (FC_CUSTOM_LISTEN_PORT) or set the function's port to the one it uses"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn spec() -> InstanceSpec {
        InstanceSpec {
            function_name: "f".into(),
            code_dir: PathBuf::from("/"),
            command: vec!["x".into()],
            env: vec![],
            port: 9000,
            start_timeout: Duration::from_secs(2),
            internet_access: false,
            container: None,
            snapshot: false,
            memory_mb: 128,
            disk_mb: 512,
            run_as: Some(100_000),
        }
    }

    fn l(addr: &str, port: u16) -> Listener {
        Listener {
            addr: addr.parse::<IpAddr>().unwrap(),
            port,
        }
    }

    #[test]
    fn diagnosis_names_loopback_bind() {
        let d = diagnose(&[l("127.0.0.1", 9000)], &spec());
        assert!(d.contains("127.0.0.1:9000"), "{d}");
        assert!(d.contains("must bind 0.0.0.0:9000"), "{d}");
    }

    #[test]
    fn diagnosis_names_other_port() {
        let d = diagnose(&[l("0.0.0.0", 8080)], &spec());
        assert!(d.contains("listens on 0.0.0.0:8080"), "{d}");
    }

    #[test]
    fn diagnosis_says_nothing_listens() {
        assert!(diagnose(&[], &spec()).contains("no TCP port"));
    }
}
