//! The control plane: the one way into fcx's core, as firecracker's `VmmAction` is into its
//! VMM. The gateway turns an HTTP request into a typed [`Command`] (or an invocation) and
//! calls [`ControlPlane`]; nothing else reaches the store, the scheduler or the async service.
//!
//! It owns:
//! - deploying, updating and deleting functions (with their code packages), versions, aliases,
//!   triggers and per-function configs (`functions`, `versions`, `aliases`, `triggers`,
//!   `scaling`, `asyncs`), and the answers about them (`logs` too);
//! - keeping the store and what this node runs consistent, in one place (`sync`: every write
//!   is followed by a change that the node applies from the store);
//! - the store's key scheme (`keys`) and the alias cache with qualifier resolution
//!   (`alias_cache`), which no other crate knows;
//! - the invoke entry (`invoke`: qualifier → scheduler or durable queue), the hot path;
//! - assembling the core from a [`CoreConfig`] and stopping it (`build`), and loading what
//!   the store holds at start (`load`).
//!
//! Management commands run on tokio's blocking pool ([`ControlPlane::execute`]), so store
//! calls never block an async worker; the invoke path touches memory only.

mod alias_cache;
pub mod aliases;
pub mod asyncs;
mod build;
mod cluster;
mod command;
pub mod domains;
mod error;
pub mod functions;
pub mod invoke;
mod keys;
mod load;
pub mod logs;
mod node;
mod package;
mod params;
pub mod peers;
pub mod scaling;
pub mod status;
mod sync;
#[cfg(test)]
mod testing;
pub mod time;
mod timed_store;
mod timers;
pub mod triggers;
pub mod versions;
pub mod web;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use fcx_async::AsyncService;
use fcx_scheduler::Scheduler;
use fcx_store::{CodeStore, Store};

pub use build::{prefix_for, CoreConfig, StartError};
pub use cluster::{NODE_FRESH_MS, SHARE_TTL_MS, TICK as CLUSTER_TICK};
pub use command::{BodyCommand, Command, OffWorker, WithBody};
pub use error::{AsyncError, ControlError, SchedulerError};
/// The serving threads' shard index and count (the gateway's `--serve-threads`), which the
/// instances' per-shard connection pools follow.
pub use fcx_runtime::shard;

/// The core's error types, for the gateway's one mapping of errors to FC codes.
pub mod errors {
    pub use fcx_async::AsyncError;
    pub use fcx_scheduler::{ExitReason, ImageError, SchedulerError, StartError, StartFailure};
}

use crate::alias_cache::AliasCache;
use crate::node::Node;
use crate::timers::Timers;
use crate::web::Web;

/// The core of one fcx server: the store, the scheduler, the async service, and the
/// in-memory views the invoke path reads. Shared by every request (`Arc`).
pub struct ControlPlane {
    store: Arc<dyn Store>,
    code: CodeStore,
    /// What this node runs (the scheduler and async service in production).
    node: Arc<dyn Node>,
    scheduler: Arc<Scheduler>,
    asyncs: Arc<AsyncService>,
    aliases: AliasCache,
    /// Held while a version id is taken, so concurrent publishes never share one.
    publishing: Mutex<()>,
    /// This node among the others when the store is shared (`None`: a single node).
    cluster: Option<cluster::ClusterNode>,
    /// The shared store's connections (for the AccessKeys), when there is one.
    pg: Option<Arc<fcx_store::postgres::Pg>>,
    /// What this node applied last, per document (`sync`).
    seen: Mutex<sync::Seen>,
    paths: Paths,
    region: String,
    account_id: String,
    /// Every layer's series (`GET /metrics`, the status page).
    metrics: Arc<fcx_metrics::Metrics>,
    /// The instance log task (its handle keeps it running).
    #[allow(dead_code)]
    logs: Arc<fcx_runtime::LogWriter>,
    /// `--instance-uids`: the range each function's own instance uid comes from.
    instance_uids: UidRange,
    /// HTTP triggers and custom domains as served (lock-free reads).
    web: Web,
    /// `--trigger-domain` (`DOMAIN[:PORT]`).
    trigger_domain: String,
    /// Running timer triggers.
    timers: Timers,
    /// This control plane, for the tasks it starts (timers).
    me: OnceLock<Weak<ControlPlane>>,
    /// This server's outbound networking, ended at shutdown (`None` once ended, or in tests).
    egress: Mutex<Option<fcx_runtime::egress::Active>>,
    /// The data dir's `server.lock`, held for the server's life (`None` in tests).
    _data_dir_lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// A range of unprivileged uids (and the same gids), `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    /// The lowest uid of the range.
    pub first: u32,
    /// The highest uid of the range (inclusive).
    pub last: u32,
}

impl std::str::FromStr for UidRange {
    type Err = String;

    /// `FIRST-LAST`, both above 0 and below 2^32 − 1 (nobody's 65534 and root excluded).
    fn from_str(s: &str) -> Result<UidRange, String> {
        let bad = || {
            format!(
                "'{s}' is not a uid range: give FIRST-LAST, e.g. 100000-165535 (unprivileged \
                 uids no user of this host has)"
            )
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let first: u32 = a.trim().parse().map_err(|_| bad())?;
        let last: u32 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last || last == u32::MAX || (first..=last).contains(&65534) {
            return Err(format!(
                "{bad}: the range must be ascending, exclude root (0), nobody (65534) and \
                 4294967295",
                bad = bad()
            ));
        }
        Ok(UidRange { first, last })
    }
}

/// Where one server keeps things.
#[derive(Debug, Clone)]
struct Paths {
    data_dir: PathBuf,
    /// `<run root>/<prefix>`: unpacked code and pid files, removed at a clean stop.
    run_dir: PathBuf,
    /// `<data dir>/logs`: one directory per function, one file per instance.
    log_dir: PathBuf,
}

impl ControlPlane {
    /// Runs a management command on the blocking pool (it may read and write the store) and
    /// returns its answer.
    pub async fn execute<C: Command>(
        self: &Arc<Self>,
        command: C,
    ) -> Result<C::Output, ControlError> {
        let control = Arc::clone(self);
        tokio::task::spawn_blocking(move || command.run(&control, OffWorker(())))
            .await
            .map_err(ControlError::Interrupted)?
    }

    /// The data dir, canonical (keys, database, code packages, logs, images).
    pub fn data_dir(&self) -> &Path {
        &self.paths.data_dir
    }

    /// This server's run dir (`<run root>/<prefix>`).
    /// Every layer's series, for `GET /metrics`.
    pub fn metrics(&self) -> &Arc<fcx_metrics::Metrics> {
        &self.metrics
    }

    /// This server's run dir (unpacked code, pid files).
    pub fn run_dir(&self) -> &Path {
        &self.paths.run_dir
    }

    /// The function's record, or FunctionNotFound.
    fn function(&self, name: &str) -> Result<fcx_model::Function, ControlError> {
        self.store
            .get_function(name)?
            .ok_or_else(|| ControlError::FunctionNotFound(name.to_owned()))
    }

    /// The function's ARN, or FunctionNotFound.
    fn function_arn(&self, name: &str) -> Result<String, ControlError> {
        self.function(name).map(|f| f.function_arn)
    }
}

/// An update's field: it replaces the stored value when the update names it.
fn given<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}
