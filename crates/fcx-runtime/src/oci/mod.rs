//! The `oci` backend: each instance is an OCI container run by an OCI runtime CLI (`crun`
//! by default; `runc` and `youki` take the same commands), from a bundle fcx generates:
//! the cached image as the read-only lower layer of an overlay rootfs, the function's
//! process, pid/mount/ipc/uts namespaces plus the instance's own network namespace (made
//! by fcx, reached by the netns dialing thread), cgroup limits from `memorySize`, `cpu` and
//! a pids limit, and Docker's default security profile.

mod config;
mod container;

mod profile;
mod restore;
mod rootfs;
mod user;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;

pub use container::Container;

use crate::backend::{Backend, BackendKind, Control, InstanceStats, Sandbox};
use crate::cgroup::Cgroup;
use crate::egress::{Egress, PendingEgress};
use crate::instance::{Dial, Instance, InstanceParts};
use crate::logs::InstanceLog;
use crate::netns::NetNs;
use crate::snapshot::{self, Criu, PendingSnapshot, Snapshot, SnapshotError, SnapshotMeta};
use crate::spec::{ContainerSpec, EventOutcome, ExitReason, InstanceSpec};
use crate::{group, process, sys, StartError, StartFailure};

/// Where the OCI backend keeps its files and which runtime it drives.
#[derive(Debug, Clone)]
pub struct OciConfig {
    /// The OCI runtime binary (`crun`, `runc`, `youki`, or a path).
    pub runtime: PathBuf,
    /// Per-server run directory: bundles in `oci/`, the runtime's state in `oci-state/`.
    pub run_dir: PathBuf,
    /// Where instances' writable layers go (on disk, under the data dir).
    pub layer_dir: PathBuf,
    /// The log task that stores instance logs (under `<data dir>/logs`).
    pub logs: std::sync::Arc<crate::logs::LogWriter>,
    /// The server's prefix (`fcx-<8 hex>`): container names and cgroup paths carry it.
    pub prefix: String,
    /// Most processes one instance may have (fork bombs stop here).
    pub pids_limit: i64,
    /// `/etc/resolv.conf` for instances with outbound networking.
    pub resolv_conf: String,
    /// CRIU for snapshot starts (`None`: none usable).
    pub criu: Option<Arc<Criu>>,
    /// The scheduling policy containers run under (the runtime passes it on to them).
    pub scheduling: crate::Scheduling,
}

/// Starts instances as OCI containers.
pub struct OciBackend {
    config: OciConfig,
    /// Pre-made namespaces for restores (kept only where snapshots work).
    netns_pool: crate::netns::NetNsPool,
    state_root: PathBuf,
    /// `cat`, the pre-created sandboxes' start-gate hook where no static busybox exists.
    cat: PathBuf,
    /// A static busybox: the start gate then runs inside the container, after `pivot_root`.
    busybox: Option<PathBuf>,
}

impl OciBackend {
    /// A backend with `config`; its runtime state lives under `<run>/oci-state`.
    pub fn new(config: OciConfig) -> OciBackend {
        let state_root = config.run_dir.join("oci-state");
        let cat = ["/usr/bin/cat", "/bin/cat"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/bin/cat"));
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| is_static_executable(p));
        OciBackend {
            busybox,
            netns_pool: crate::netns::NetNsPool::new(usize::from(config.criu.is_some()) * 2),
            config,
            state_root,
            cat,
        }
    }

    /// The OCI runtime binary (`--oci-runtime`).
    pub fn runtime(&self) -> &Path {
        &self.config.runtime
    }

    /// Removes what a previous run of this server left: containers in its runtime state
    /// root, overlay mounts and bundles under its run dir, writable layers, cgroups.
    /// Returns how many containers were still there.
    fn reap_leftovers(&self) -> usize {
        let mut reaped = 0;
        if let Ok(entries) = std::fs::read_dir(&self.state_root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with(&self.config.prefix) {
                    continue;
                }
                reaped += 1;
                let _ = std::process::Command::new(&self.config.runtime)
                    .arg("--root")
                    .arg(&self.state_root)
                    .args(["delete", "--force", &name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let bundles = self.config.run_dir.join("oci");
        for m in rootfs::mounts_under(&bundles) {
            rootfs::unmount(&m);
        }
        let _ = std::fs::remove_dir_all(&bundles);
        for m in rootfs::mounts_under(&self.config.layer_dir) {
            rootfs::unmount(&m);
        }
        let _ = std::fs::remove_dir_all(&self.config.layer_dir);
        group::remove_tree(&self.cgroup_root());
        reaped
    }

    fn cgroup_root(&self) -> PathBuf {
        Path::new("fcx").join(&self.config.prefix)
    }

    async fn spawn(
        &self,
        spec: &InstanceSpec,
        extra_env: &[(&str, &[u8])],
        stdout: Option<OwnedFd>,
        gated: bool,
    ) -> Result<(Instance, PendingEgress), StartError> {
        let c = spec.container.as_ref().ok_or_else(|| {
            StartError::failed(
                StartFailure::Sandbox,
                "the OCI backend got a function without an image".into(),
            )
        })?;
        let id = crate::instance::new_id();
        let name = format!("{}-{id}", self.config.prefix);
        let log = InstanceLog::for_instance(&self.config.logs, &spec.function_name, &id);
        // Egress comes ready with a pooled namespace, or is set up while the rootfs is
        // mounted and the container starts; the instance is ready only with both.
        let (netns, egress) = PendingEgress::with_namespace(&id, spec.internet_access)
            .map_err(StartError::Namespace)?;
        let bundle = self.config.run_dir.join("oci").join(&id);
        let layer_dir = self.config.layer_dir.join(&id);
        let prepared = {
            let (bundle, layer_dir, rootfs) = (bundle.clone(), layer_dir.clone(), c.rootfs.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<rootfs::Rootfs> {
                std::fs::create_dir_all(&bundle)?;
                rootfs::Rootfs::mount(&rootfs, &layer_dir, &bundle.join("rootfs"))
            })
            .await
            .map_err(|e| StartError::Namespace(std::io::Error::other(e)))?
        };
        let rootfs = prepared.map_err(|e| {
            let _ = std::fs::remove_dir_all(&bundle);
            StartError::failed(
                StartFailure::Sandbox,
                format!("cannot mount the instance's rootfs: {e}"),
            )
        })?;
        let group_rel = self.cgroup_root().join(&id);
        let group = match group::InstanceGroup::create(&group_rel, c.memory_mb) {
            Ok(g) => g,
            Err(e) => {
                rootfs.remove();
                let _ = std::fs::remove_dir_all(&bundle);
                return Err(StartError::failed(
                    StartFailure::CgroupRefused,
                    format!(
                        "cannot create the instance's cgroup {} with its memory limit: {e}; \
                         run `fcx doctor` to check the host's cgroups",
                        group_rel.display()
                    ),
                ));
            }
        };
        let container = Container::new(
            self.config.runtime.clone(),
            self.state_root.clone(),
            name.clone(),
            bundle.clone(),
            rootfs,
            group,
            gated.then(|| bundle.join("start")),
        );
        if let Some(gate) = &container.gate {
            if let Err(e) =
                nix::unistd::mkfifo(gate, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(std::io::Error::from)
                    .and_then(|()| {
                        // The in-container hook runs as the function's user: it must read it.
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(gate, std::fs::Permissions::from_mode(0o644))
                    })
            {
                container.teardown(&watch::channel(Some(ExitReason::Code(0))).1);
                return Err(StartError::failed(
                    StartFailure::Sandbox,
                    format!("cannot make the sandbox's start gate: {e}"),
                ));
            }
        }
        if let Err(message) = self.write_bundle(
            spec,
            c,
            &container,
            &id,
            &netns,
            extra_env,
            spec.internet_access,
        ) {
            container.teardown(&watch::channel(Some(ExitReason::Code(0))).1);
            return Err(StartError::failed(StartFailure::Sandbox, message));
        }
        let (read_end, write_end) = crate::sys::pipe().map_err(StartError::Namespace)?;
        let pipe = format!(
            "pipe:[{}]",
            snapshot::inode(std::os::fd::AsFd::as_fd(&write_end)).map_err(StartError::Namespace)?
        );
        let stderr = write_end.try_clone().map_err(StartError::Namespace)?;
        let mut cmd = tokio::process::Command::new(&self.config.runtime);
        cmd.arg("--root")
            .arg(&self.state_root)
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg("--pid-file")
            .arg(bundle.join("pid"))
            .arg(&name)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr))
            .process_group(0);
        match stdout {
            Some(fd) => cmd.stdout(Stdio::from(fd)),
            None => cmd.stdout(Stdio::from(write_end)),
        };
        crate::sys::die_with_fcx(&mut cmd);
        self.config.scheduling.apply(&mut cmd);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                container.teardown(&watch::channel(Some(ExitReason::Code(0))).1);
                return Err(StartError::failed(
                    StartFailure::RuntimeMissing,
                    format!(
                        "cannot run the OCI runtime {}: {e}; install it (apt-get install -y crun) \
                         or pick another with `fcx server --oci-runtime`, and run `fcx doctor`",
                        self.config.runtime.display()
                    ),
                ));
            }
        };
        drop(cmd);
        log.attach(read_end, &id);
        let pid = child.id().unwrap_or(0);
        container
            .runtime_pid
            .store(pid, std::sync::atomic::Ordering::Release);
        let container = Arc::new(container);
        let exit_rx = watch_exit(child, Arc::clone(&container), c.memory_mb);
        let control = OciControl {
            runtime_pid: pid,
            cgroup: container.group.container_v2_dir().map(Cgroup::existing),
            container,
            exit: exit_rx.clone(),
            egress: OnceLock::new(),
            user: user::resolve(&c.rootfs, &c.user)
                .map(|u| (u.uid, u.gid))
                .unwrap_or((0, 0)),
            pipe,
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

    /// Starts a sandbox made by [`Backend::prepare`] and waits until its server listens:
    /// the cold start left is the function's own.
    async fn start_prepared(
        &self,
        sandbox: Sandbox,
        spec: &InstanceSpec,
    ) -> Result<Instance, StartError> {
        let started = Instant::now();
        let instance = sandbox.into_instance();
        let container = &control_of(&instance)
            .ok_or_else(|| {
                StartError::failed(StartFailure::Sandbox, "the sandbox has no container".into())
            })?
            .container;
        // The hook waits on the gate within milliseconds of `prepare`; wait (bounded) in
        // case this sandbox is younger than that.
        let mut delay = Duration::from_micros(200);
        loop {
            match container.open_gate() {
                Ok(()) => break,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) && instance.exited().is_none() => {
                    if started.elapsed() > spec.start_timeout {
                        return Err(StartError::failed(
                            StartFailure::Sandbox,
                            "the pre-created sandbox never reached its start gate".into(),
                        ));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(StartError::failed(
                        StartFailure::Sandbox,
                        format!("cannot open the sandbox's start gate: {e}"),
                    ))
                }
            }
        }
        let gate_opened = started.elapsed();
        match process::wait_listening(&instance, spec, started).await {
            Ok(()) => {
                tracing::debug!(
                    instance = %instance.id,
                    gate_ms = gate_opened.as_secs_f64() * 1e3,
                    listening_ms = started.elapsed().as_secs_f64() * 1e3,
                    "pre-created sandbox started"
                );
                Ok(instance)
            }
            Err(e) => Err(explain(e, &instance)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bundle(
        &self,
        spec: &InstanceSpec,
        c: &ContainerSpec,
        container: &Container,
        id: &str,
        netns: &NetNs,
        extra_env: &[(&str, &[u8])],
        egress: bool,
    ) -> Result<(), String> {
        let user = user::resolve(&c.rootfs, &c.user)?;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(format!("FC_INSTANCE_ID={id}"));
        let identity = container.bundle.join("instance-id");
        if spec.snapshot {
            std::fs::write(&identity, format!("{id}\n")).map_err(|e| e.to_string())?;
            env.push(format!(
                "{}={}",
                snapshot::IDENTITY_ENV,
                snapshot::CONTAINER_IDENTITY_PATH
            ));
        }
        for (k, v) in extra_env {
            env.push(format!("{k}={}", String::from_utf8_lossy(v)));
        }
        let resolv = container.bundle.join("resolv.conf");
        let hosts = container.bundle.join("hosts");
        let resolv_text = if egress {
            self.config.resolv_conf.as_str()
        } else {
            ""
        };
        std::fs::write(&resolv, resolv_text).map_err(|e| e.to_string())?;
        std::fs::write(
            &hosts,
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n127.0.1.1\t{id}\n"),
        )
        .map_err(|e| e.to_string())?;
        let netns_path = netns.path();
        let cgroups_path = container.group.container_path();
        let cwd = if c.working_dir.is_empty() {
            "/"
        } else {
            c.working_dir.as_str()
        };
        let doc = config::render(&config::BundleConfig {
            args: &spec.command,
            env: &env,
            cwd,
            uid: user.uid,
            gid: user.gid,
            additional_gids: &user.additional_gids,
            hostname: id,
            netns: &netns_path,
            cgroups_path: &cgroups_path,
            cgroup_namespace: group::unified(),
            memory_mb: None,
            cpu: c.cpu,
            pids_limit: self.config.pids_limit,
            tmp_mb: c.disk_mb,
            resolv_conf: &resolv,
            hosts: &hosts,
            gate: container.gate.as_deref().map(|fifo| match &self.busybox {
                Some(busybox) => config::Gate::InContainer { busybox, fifo },
                None => config::Gate::Host {
                    cat: &self.cat,
                    fifo,
                },
            }),
            identity: spec.snapshot.then_some(identity.as_path()),
        });
        let text = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(container.bundle.join("config.json"), text).map_err(|e| e.to_string())
    }
}

/// Whether `path` is an ELF executable without a program interpreter (statically linked),
/// so it runs in any container's rootfs, even one without a libc.
fn is_static_executable(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else {
        return false;
    };
    // 64-bit little-endian ELF: e_phoff at 32, e_phentsize at 54, e_phnum at 56.
    if elf.len() < 64 || elf[..4] != *b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap_or_default()) as usize;
    let (size, count) = (u16_at(54), u16_at(56));
    const PT_INTERP: u32 = 3;
    (0..count).all(|i| {
        let at = phoff.saturating_add(i * size);
        elf.get(at..at.saturating_add(4))
            .is_some_and(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != PT_INTERP)
    })
}

#[async_trait]
impl Backend for OciBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Oci
    }

    fn prepares_sandboxes(&self) -> bool {
        true
    }

    /// Creates a sandbox ahead of demand: namespace, egress, rootfs, cgroup, bundle and the
    /// runtime's container, stopped just before the function's process would start.
    async fn prepare(&self, spec: &InstanceSpec) -> Result<Sandbox, StartError> {
        let (instance, egress) = self.spawn(spec, &[], None, true).await?;
        attach_egress(
            &instance,
            egress.ready().await.map_err(StartError::Namespace)?,
        );
        Ok(Sandbox::new(instance))
    }

    /// Starts a web-server instance (from a pre-created sandbox when given) and waits until
    /// it listens on `0.0.0.0:<port>`.
    async fn start(
        &self,
        spec: &InstanceSpec,
        sandbox: Option<Sandbox>,
    ) -> Result<Instance, StartError> {
        if let Some(sandbox) = sandbox {
            return self.start_prepared(sandbox, spec).await;
        }
        let started = Instant::now();
        let (instance, egress) = self.spawn(spec, &[], None, false).await?;
        let (listening, egress) = tokio::join!(
            process::wait_listening(&instance, spec, started),
            egress.ready()
        );
        attach_egress(&instance, egress.map_err(StartError::Namespace)?);
        match listening {
            Ok(()) => Ok(instance),
            Err(e) => Err(explain(e, &instance)),
        }
    }

    /// Runs one non-web-server invocation: a container with the event in
    /// `FC_CUSTOM_CONTAINER_EVENT`, until it exits or `timeout` passes.
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
                false,
            )
            .await?;
        attach_egress(
            &instance,
            egress.ready().await.map_err(StartError::Namespace)?,
        );
        Ok(process::run_to_exit(instance, stdout_read, timeout, request_id).await)
    }

    fn snapshots(&self) -> bool {
        self.config.criu.is_some()
    }

    /// Dumps a snapshot-enabled container's process tree with CRIU (its network namespace
    /// and bind mounts named external, its rootfs as the root), leaving it running, and
    /// keeps a copy of its writable layer.
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
        let c = control_of(instance)
            .ok_or_else(|| SnapshotError::Unsupported("not a container instance".into()))?;
        let init = c
            .container
            .init_pid()
            .ok_or_else(|| SnapshotError::Unsupported("the container has no init yet".into()))?;
        let netns = instance
            .netns()
            .ok_or_else(|| SnapshotError::Unsupported("the instance has no namespace".into()))?;
        let ino = snapshot::inode(netns.fd()).map_err(|source| SnapshotError::Io {
            what: "the instance's namespace".into(),
            source,
        })?;
        let images = into.images();
        let externals = external_mounts(init);
        let mut cmd = tokio::process::Command::new(&criu.path);
        cmd.args(snapshot::criu::dump_args(
            init,
            &images,
            ino,
            Some(&c.container.rootfs.target),
        ));
        for (i, (target, _)) in externals.iter().enumerate() {
            cmd.arg("--external").arg(format!("mnt[{target}]:m{i}"));
        }
        sys::run_as_real_ids(&mut cmd, c.user.0, c.user.1);
        let memory_bytes = snapshot::rss_bytes(init);
        snapshot::run_criu(cmd, &images, "dump.log", Duration::from_secs(120))
            .await
            .map_err(SnapshotError::Dump)?;
        let (upper, seed) = (c.container.rootfs.upper(), into.upper());
        tokio::task::spawn_blocking(move || rootfs::copy_tree(&upper, &seed))
            .await
            .map_err(|e| SnapshotError::Dump(e.to_string()))?
            .map_err(|source| SnapshotError::Io {
                what: "copying the writable layer".into(),
                source,
            })?;
        Ok(SnapshotMeta {
            backend: BackendKind::Oci.as_str().into(),
            pipe: c.pipe.clone(),
            identity: String::new(),
            external_mounts: externals
                .into_iter()
                .enumerate()
                .map(|(i, (_, kind))| (format!("m{i}"), kind.to_owned()))
                .collect(),
            pages_bytes: snapshot::pages_bytes(&images),
            memory_bytes,
        })
    }

    async fn restore(&self, spec: &InstanceSpec, from: &Snapshot) -> Result<Instance, StartError> {
        let Some(criu) = self.config.criu.clone() else {
            return Err(StartError::Unsupported {
                backend: BackendKind::Oci,
                what: "snapshots (no usable criu)",
            });
        };
        self.restore_container(&criu, spec, from).await
    }

    fn reap(&self) -> usize {
        self.reap_leftovers()
    }

    /// Clean shutdown: everything `reap` removes, and the server's own groups.
    fn remove_all(&self) {
        self.reap_leftovers();
        group::remove_root(&self.cgroup_root());
    }
}

/// An OCI instance's handles: the container and its host-side parts, the runtime process,
/// the container's cgroup2 group (freezing) and its outbound networking.
struct OciControl {
    container: Arc<Container>,
    /// The container's user (CRIU dumps it with these real ids).
    user: (u32, u32),
    /// The log pipe's write end as CRIU names it.
    pipe: String,
    /// `crun run`, fcx's child, leading its own process group.
    runtime_pid: u32,
    cgroup: Option<Cgroup>,
    exit: watch::Receiver<Option<ExitReason>>,
    /// Only held: pasta runs exactly as long as the instance.
    egress: OnceLock<Egress>,
}

fn control_of(instance: &Instance) -> Option<&OciControl> {
    instance.control().as_any().downcast_ref::<OciControl>()
}

fn attach_egress(instance: &Instance, egress: Option<Egress>) {
    if let (Some(egress), Some(c)) = (egress, control_of(instance)) {
        let _ = c.egress.set(egress);
    }
}

#[async_trait]
impl Control for OciControl {
    /// SIGKILL to the container's init (its whole pid namespace goes), its group and the
    /// runtime's process group.
    fn kill(&self) {
        self.container.signal(libc::SIGKILL);
        if let Some(c) = &self.cgroup {
            c.kill();
        }
        sys::kill_group(self.runtime_pid as i32, libc::SIGKILL);
    }

    /// SIGTERM to the container's init: a pid-namespace init ignores signals it does not
    /// handle, as in Docker.
    fn terminate(&self) {
        self.container.signal(libc::SIGTERM);
    }

    fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    fn stats(&self) -> std::io::Result<InstanceStats> {
        let mut stats = self.cgroup.as_ref().map(Cgroup::stats).unwrap_or_default();
        let (current, peak) = self.container.group.memory_usage();
        stats.memory_current_bytes = stats.memory_current_bytes.or(current);
        stats.memory_peak_bytes = stats.memory_peak_bytes.or(peak);
        Ok(stats)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Drop for OciControl {
    fn drop(&mut self) {
        let (container, exit) = (Arc::clone(&self.container), self.exit.clone());
        let teardown = move || container.teardown(&exit);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(teardown)),
            Err(_) => teardown(),
        }
        if let Some(cgroup) = self.cgroup.take() {
            crate::cgroup::remove_in_background(cgroup);
        }
    }
}

/// Bind mounts of a container that CRIU must leave to the restorer, by where they are inside
/// it: fcx's resolv.conf, hosts and identity files, and `/dev/null` over masked files.
fn external_mounts(init: i32) -> Vec<(String, &'static str)> {
    let text = std::fs::read_to_string(format!("/proc/{init}/mountinfo")).unwrap_or_default();
    let mut found = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(target) = fields.nth(4) else {
            continue;
        };
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("");
        let kind = match target {
            "/etc/resolv.conf" => "resolv",
            "/etc/hosts" => "hosts",
            t if t == snapshot::CONTAINER_IDENTITY_PATH => "identity",
            t if profile::MASKED_PATHS.contains(&t) && fstype != "tmpfs" => "null",
            _ => continue,
        };
        if !found.iter().any(|(t, _)| t == target) {
            found.push((target.to_owned(), kind));
        }
    }
    found
}

/// OCI runtimes exit with 128+N when the container's init died of signal N.
fn runtime_exit(reason: ExitReason) -> ExitReason {
    match reason {
        ExitReason::Code(c) if c > 128 && c <= 128 + 64 => ExitReason::Signal(c - 128),
        other => other,
    }
}

/// Waits in a task for the container's runtime process (`crun run`, or the subreaper
/// waiter of a restore) to end and reports why on the returned channel: a runtime's 128+N
/// exit as signal N, and a SIGKILL by the memory cgroup's OOM killer as out of memory at
/// `memory_mb`.
fn watch_exit(
    mut child: tokio::process::Child,
    container: Arc<Container>,
    memory_mb: u32,
) -> watch::Receiver<Option<ExitReason>> {
    let (exit_tx, exit_rx) = watch::channel(None);
    tokio::spawn(async move {
        let reason = match child.wait().await {
            Ok(status) => runtime_exit(ExitReason::from_status(status)),
            Err(_) => ExitReason::Code(-1),
        };
        let reason = match reason {
            ExitReason::Signal(libc::SIGKILL) if container.hit_memory_limit() => {
                ExitReason::OutOfMemory(memory_mb)
            }
            other => other,
        };
        let _ = exit_tx.send(Some(reason));
    });
    exit_rx
}

/// Turns "the container exited before listening" into the runtime's own diagnosis when its
/// log says why (bad entrypoint, cgroup refusal, out of memory).
fn explain(e: StartError, instance: &Instance) -> StartError {
    let StartError::NotStarted {
        elapsed,
        cause,
        logs,
    } = e
    else {
        return e;
    };
    if let Some(ExitReason::OutOfMemory(mb)) = instance.exited() {
        return StartError::failed(
            StartFailure::OutOfMemory,
            format!("the instance was killed for exceeding its memorySize of {mb} MB while starting; raise memorySize"),
        )
        .with_logs(logs);
    }
    match classify_runtime_error(&logs) {
        Some((kind, message)) => StartError::failed(kind, message).with_logs(logs),
        None => StartError::NotStarted {
            elapsed,
            cause,
            logs,
        },
    }
}

/// Recognizes the OCI runtime's own errors in the instance's output.
pub fn classify_runtime_error(logs: &str) -> Option<(StartFailure, String)> {
    let line = |needle: &str| logs.lines().find(|l| l.contains(needle)).map(str::trim);
    if let Some(l) = line("cgroups in hybrid mode") {
        return Some((
            StartFailure::CgroupRefused,
            format!(
                "the OCI runtime refused the host's cgroups: {l}. Fix, as root: \
                 mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup \
                 /sys/fs/cgroup/hugetlb (or run `fcx doctor --fix`)"
            ),
        ));
    }
    if let Some(l) = line("not found in $PATH")
        .or_else(|| line("No such file or directory").filter(|l| l.contains("exec")))
    {
        return Some((
            StartFailure::EntrypointNotFound,
            format!(
                "the container's command does not exist in the image: {l}. Check \
                 customContainerConfig.entrypoint/command and the image's ENTRYPOINT/CMD"
            ),
        ));
    }
    if let Some(l) = line("Exec format error") {
        return Some((
            StartFailure::EntrypointNotExecutable,
            format!(
                "the container's command cannot be executed: {l}. It must be a linux/amd64 \
                 binary or a script starting with #!"
            ),
        ));
    }
    if let Some(l) = line("Permission denied").filter(|l| l.contains("exec")) {
        return Some((
            StartFailure::EntrypointNotExecutable,
            format!("the container's command is not executable: {l}. Make it executable (chmod +x) in the image"),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_are_recognized() {
        let k = |s: &str| classify_runtime_error(s).map(|(k, _)| k);
        assert_eq!(
            k("executable file `nosuch` not found in $PATH: No such file or directory"),
            Some(StartFailure::EntrypointNotFound)
        );
        assert_eq!(
            k("exec container process `/bin/bad`: Exec format error"),
            Some(StartFailure::EntrypointNotExecutable)
        );
        assert_eq!(
            k("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"),
            Some(StartFailure::CgroupRefused)
        );
        assert_eq!(k("listening on 8080"), None);
    }

    #[test]
    fn signal_exit_codes_become_signals() {
        assert_eq!(runtime_exit(ExitReason::Code(137)), ExitReason::Signal(9));
        assert_eq!(runtime_exit(ExitReason::Code(1)), ExitReason::Code(1));
    }

    #[test]
    fn only_executables_without_an_interpreter_are_static() {
        let dir = tempfile::tempdir().unwrap();
        // A 64-bit ELF header with no program headers: nothing asks for an interpreter.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        let path = dir.path().join("static");
        std::fs::write(&path, &elf).unwrap();
        assert!(is_static_executable(&path));
        // The test binary itself is dynamically linked (PT_INTERP).
        assert!(!is_static_executable(&std::env::current_exe().unwrap()));
        assert!(!is_static_executable(&dir.path().join("missing")));
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        assert!(!is_static_executable(&path));
    }
}
