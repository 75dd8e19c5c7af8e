//! The `process` backend: instances are host processes started from the unpacked code
//! directory, each function under its own unprivileged uid and gid, each instance in its own
//! network, PID, mount and IPC namespaces (its own `/proc`, a private tmpfs `/tmp`,
//! `/var/tmp` and `/dev/shm`), in cgroups that limit its memory (`memorySize`) and processes.
//! Its pid 1 is a small init (`init.rs`) that runs the function as pid 2.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
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
use crate::spec::{EventOutcome, ExitReason, InstanceSpec};
use crate::sys;
use crate::StartError;

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
    /// The server's prefix: instance limit groups are `fcx/<prefix>/<id>` in every hierarchy.
    pub prefix: String,
    /// Most processes one instance may run.
    pub pids_limit: i64,
}

/// Starts instances as host processes.
pub struct ProcessBackend {
    config: ProcessConfig,
}

impl ProcessBackend {
    /// A backend with `config`.
    pub fn new(config: ProcessConfig) -> ProcessBackend {
        ProcessBackend { config }
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
        let mut cmd = tokio::process::Command::new(&self.config.init);
        cmd.arg(crate::init::SUBCOMMAND)
            .arg(uid.to_string())
            .arg(uid.to_string())
            .arg("--")
            .args(&spec.command)
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
        let (status_read, status_write) = sys::pipe().map_err(StartError::Namespace)?;
        sys::prepare_instance_command(
            &mut cmd,
            netns.fd().as_raw_fd(),
            procs,
            private_mounts(spec.disk_mb).map_err(StartError::Namespace)?,
            status_write.as_raw_fd(),
        );
        let program = &spec.command[0];
        let mut child = netns
            .spawn_init(cmd)
            .await
            .map_err(|e| StartError::spawn(spec, format!("cannot start {program:?}: {e}")))?;
        // The parent's copies of the write ends closed with `cmd`, so EOF means every
        // process ended.
        drop(status_write);
        log.attach(read_end, &id);
        let pid = child.id().unwrap_or(0);
        let pidfile = pidfile::write(&self.config.run_dir, &id, pid);
        let (exit_tx, exit_rx) = watch::channel(None);
        let limits = Arc::new(limits.group);
        let watcher = Arc::clone(&limits);
        let memory_mb = spec.memory_mb;
        tokio::spawn(async move {
            let init = match child.wait().await {
                Ok(status) => ExitReason::from_status(status),
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
        let control = ProcessControl {
            pid,
            pidfile,
            cgroup,
            limits,
            egress: std::sync::OnceLock::new(),
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

/// A process instance's handles: its init (pid 1 of its namespace, leading its session),
/// its cgroups, its pid file and its outbound networking.
struct ProcessControl {
    pid: u32,
    pidfile: PathBuf,
    cgroup: Option<Cgroup>,
    /// The memory and pids limits (and the memory counters that tell an OOM kill).
    limits: Arc<InstanceGroup>,
    /// Only held: pasta runs exactly as long as the instance.
    egress: std::sync::OnceLock<Egress>,
}

#[async_trait]
impl Control for ProcessControl {
    /// Kills the instance's processes at once: its cgroup, and its init (the kernel then
    /// kills everything in the init's PID namespace).
    fn kill(&self) {
        if let Some(c) = &self.cgroup {
            c.kill();
        }
        sys::kill_group(self.pid as i32, libc::SIGKILL);
    }

    /// SIGTERM to the init, which passes it on to the function's process group (a PID
    /// namespace's init would ignore it itself).
    fn terminate(&self) {
        sys::kill(self.pid, libc::SIGTERM);
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
