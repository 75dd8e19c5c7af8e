//! The runtime's seam: [`Backend`], the one trait every way of running instances implements
//! (`process`, `oci`, the test fake), and [`Control`], the handles a backend leaves in each
//! [`Instance`] it starts (kill, signal, freeze, stats, teardown). The scheduler holds
//! `Arc<dyn Backend>` values and never sees a pid, a cgroup or a container.

use std::any::Any;
use std::io;
use std::time::Duration;

use async_trait::async_trait;

use crate::cgroup::Cgroup;
use crate::instance::Instance;
use crate::snapshot::{PendingSnapshot, Snapshot, SnapshotError, SnapshotMeta};
use crate::spec::{EventOutcome, InstanceSpec};
use crate::StartError;

/// The kinds of backend a function can run on, chosen from its record: a code package runs
/// on `Process`, a `customContainerConfig.image` on `Oci`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Host processes in their own network namespace, as an unprivileged user.
    Process,
    /// OCI containers under crun (or another OCI runtime).
    Oci,
}

impl BackendKind {
    /// The name used in flags, logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Process => "process",
            BackendKind::Oci => "oci",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource use of one instance, from its cgroup where the backend has one (`None`: the
/// backend or the host cannot tell).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Memory in use now (cgroup `memory.current`).
    pub memory_current_bytes: Option<u64>,
    /// Most memory used since the start (cgroup `memory.peak`).
    pub memory_peak_bytes: Option<u64>,
    /// CPU time used by every process of the instance.
    pub cpu_usage: Option<Duration>,
}

/// An instance created ahead of demand by [`Backend::prepare`], waiting to be started by
/// [`Backend::start`]. Dropping it removes it.
pub struct Sandbox {
    instance: Instance,
}

impl Sandbox {
    /// Wraps a prepared (not yet serving) instance; for backends.
    pub fn new(instance: Instance) -> Sandbox {
        Sandbox { instance }
    }

    /// Whether it died while it waited (it is then useless).
    pub fn is_dead(&self) -> bool {
        self.instance.exited().is_some()
    }

    /// The prepared instance; for the backend that made it.
    pub fn into_instance(self) -> Instance {
        self.instance
    }
}

/// One way of running instances. Methods that act on an instance have defaults that use the
/// [`Control`] handles the backend put into it.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Which kind this is (what the scheduler's registry files it under).
    fn kind(&self) -> BackendKind;

    /// Whether [`Backend::prepare`] is supported.
    fn prepares_sandboxes(&self) -> bool {
        false
    }

    /// Creates a sandbox for `spec` ahead of demand. Default: not supported.
    async fn prepare(&self, spec: &InstanceSpec) -> Result<Sandbox, StartError> {
        let _ = spec;
        Err(StartError::Unsupported {
            backend: self.kind(),
            what: "pre-created sandboxes",
        })
    }

    /// Starts a web-server instance (from `sandbox` when given) and returns once its server
    /// listens on the function's port.
    async fn start(
        &self,
        spec: &InstanceSpec,
        sandbox: Option<Sandbox>,
    ) -> Result<Instance, StartError>;

    /// Runs one non-web-server invocation: the command with the event in
    /// `FC_CUSTOM_CONTAINER_EVENT`, until it exits or `timeout` passes.
    async fn run_event(
        &self,
        spec: &InstanceSpec,
        event: &[u8],
        timeout: Duration,
        request_id: &str,
    ) -> Result<EventOutcome, StartError>;

    /// Whether [`Backend::snapshot`] and [`Backend::restore`] can work (CRIU is usable).
    fn snapshots(&self) -> bool {
        false
    }

    /// Dumps `instance` (started from a spec with `snapshot` set, initialized, not yet
    /// serving) into `into`, leaving it running. Default: not supported.
    async fn snapshot(
        &self,
        instance: &Instance,
        into: &PendingSnapshot,
    ) -> Result<SnapshotMeta, SnapshotError> {
        let _ = (instance, into);
        Err(SnapshotError::Unsupported(format!(
            "the {} backend does not take snapshots",
            self.kind()
        )))
    }

    /// Starts a fresh instance of `spec` from `from` (a snapshot this backend took) and
    /// returns once it listens. Default: not supported.
    async fn restore(&self, spec: &InstanceSpec, from: &Snapshot) -> Result<Instance, StartError> {
        let _ = (spec, from);
        Err(StartError::Unsupported {
            backend: self.kind(),
            what: "snapshots",
        })
    }

    /// Asks the instance to end (SIGTERM or the backend's equivalent), and kills it when it
    /// has not ended after `grace`.
    async fn stop(&self, instance: &Instance, grace: Duration) {
        crate::instance::stop(instance, grace).await
    }

    /// Freezes every process of the instance.
    async fn freeze(&self, instance: &Instance) -> io::Result<()> {
        instance.control().freeze().await
    }

    /// Thaws a frozen instance.
    async fn thaw(&self, instance: &Instance) -> io::Result<()> {
        instance.control().thaw().await
    }

    /// The instance's memory and CPU use.
    fn stats(&self, instance: &Instance) -> io::Result<InstanceStats> {
        instance.control().stats()
    }

    /// Removes what a previous run of this server left behind; returns how many instances
    /// were still there.
    fn reap(&self) -> usize {
        0
    }

    /// Clean shutdown, once every instance has stopped: removes what [`Backend::reap`]
    /// removes and the backend's own directories and groups. Blocking.
    fn remove_all(&self) {}
}

/// The backend-specific handles of one instance, behind [`Instance`]. Dropping it tears down
/// what the backend set up for the instance (groups, bundles, pid files, egress).
#[async_trait]
pub trait Control: Send + Sync + 'static {
    /// Kills every process of the instance at once.
    fn kill(&self);

    /// Asks the instance to end (SIGTERM to what the backend runs).
    fn terminate(&self);

    /// The instance's cgroup v2 group, if it has one: the default freeze, thaw and stats
    /// go through it.
    fn cgroup(&self) -> Option<&Cgroup> {
        None
    }

    /// Stops every process of the instance in place.
    async fn freeze(&self) -> io::Result<()> {
        match self.cgroup() {
            Some(c) => c.freeze().await,
            None => Err(io::Error::other(
                "freezing needs a cgroup v2 mount, which this host lacks",
            )),
        }
    }

    /// Lets frozen processes run again (without a group nothing was frozen).
    async fn thaw(&self) -> io::Result<()> {
        match self.cgroup() {
            Some(c) => c.thaw().await,
            None => Ok(()),
        }
    }

    /// The instance's resource use (without a group: nothing known).
    fn stats(&self) -> io::Result<InstanceStats> {
        Ok(self.cgroup().map(Cgroup::stats).unwrap_or_default())
    }

    /// For the backend that made it (e.g. to reach its container).
    fn as_any(&self) -> &dyn Any;
}
