//! Runs invocations: per-function instance pools (concurrency slots, de-duplicated cold
//! starts, the initializer once per instance, crash and timeout replacement), limits that
//! throttle with FC's 429, minimum instances, idle reclaim and freezing with their lifecycle
//! hooks, and what an instance did as an answer or a [`SchedulerError`]. The control plane
//! calls [`Scheduler::invoke`]; the [`Backend`]s in its registry ([`Backends`]) start the
//! instances.

mod backends;
mod container;
mod context;
mod error;
mod event;
mod http;
mod launch;
mod lifecycle;
mod limits;
pub use limits::Demand;
mod maintain;
mod observe;
mod pool;
mod sandbox;
pub mod snapshot;
mod stream;
#[cfg(test)]
mod tests;
mod timer_floor;
mod web;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fcx_image::ImageStore;
use fcx_model::Function;
use fcx_runtime::body::Body;
use fcx_runtime::CodeCache;

pub use crate::backends::Backends;
pub use crate::error::{Cause, SchedulerError};
pub use crate::http::{HttpInvokeRequest, HttpInvokeResponse};
pub use fcx_image::ImageError;
pub use fcx_metrics::Metrics;
pub use fcx_runtime::{
    Backend, BackendKind, CallError, CodeError, ExitReason, StartError, StartFailure,
};

use crate::limits::{FunctionLimits, InstanceBudget};
use crate::pool::Pool;

/// A function as deployed: its resolved record and where its code package is.
#[derive(Debug)]
pub struct Deployed {
    /// The stored record, defaults filled in.
    pub function: Function,
    /// The published version this is (`None`: LATEST, the unpublished function).
    pub version_id: Option<String>,
    /// The stored zip of the code (`None` for image-based functions).
    pub code_zip: Option<PathBuf>,
    /// The function's own instance uid (= gid) for the process backend, allocated once per
    /// function and kept by the store (`None`: none could be allocated; code packages then
    /// do not start).
    pub run_as: Option<u32>,
}

/// Server-wide settings the scheduler needs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Region in FC's environment variables and context headers.
    pub region: String,
    /// Account id in the same places.
    pub account_id: String,
    /// How long a new instance has to start listening.
    pub start_timeout: Duration,
    /// Idle time after which an instance is reclaimed (a function's `idleTimeout` wins).
    pub idle_timeout: Duration,
    /// Idle time after which an instance is frozen (`None`: never).
    pub freeze_after: Option<Duration>,
    /// Most instances this server runs at once.
    pub max_instances: u32,
    /// Pre-created sandboxes kept per custom-container function (0: none).
    pub sandboxes_per_function: u32,
    /// Most pre-created sandboxes on this server.
    pub sandbox_limit: u32,
    /// Where invocations, cold starts and instances are counted.
    pub metrics: Arc<fcx_metrics::Metrics>,
    /// The FC code a platform error is answered with (the gateway's one mapping, handed in
    /// by the binary), the `code` label of `fcx_invocations_total`.
    pub error_code: fn(&SchedulerError) -> &'static str,
}

/// One invocation as the control plane hands it over.
pub struct InvokeRequest {
    /// Who asks for what: request id, qualifier, log tail.
    pub context: CallContext,
    /// The event; it streams into web-server instances without being buffered.
    pub payload: Body,
}

/// Everything about a call but its body: what the context headers are made of.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// `x-fc-request-id`; also in the log markers.
    pub request_id: String,
    /// How the caller named the version (LATEST, an id or an alias); borrowed for the
    /// usual `LATEST`, which then costs no allocation per request.
    pub qualifier: std::borrow::Cow<'static, str>,
    /// Return the log tail (`x-fc-log-type: Tail`).
    pub tail_log: bool,
    /// FC 2.0 service name, passed on as `x-fc-service-name`.
    pub service_name: Option<String>,
    /// When the request arrived (end-to-end latency is measured from here).
    pub started: Instant,
    /// W3C trace context forwarded to the instance.
    pub trace: Option<TraceHeaders>,
    /// The trigger the call came through, named in the instance log.
    pub trigger: Option<std::sync::Arc<str>>,
}

/// The `traceparent` (and `tracestate`) headers an instance receives with a call.
#[derive(Debug, Clone)]
pub struct TraceHeaders {
    /// The `traceparent` naming fcx's invoke span as the parent.
    pub traceparent: ::http::HeaderValue,
    /// The client's `tracestate`, passed on unchanged.
    pub tracestate: Option<::http::HeaderValue>,
}

impl CallContext {
    /// A call fcx makes on its own (hooks, provisioned starts), with a fresh request id.
    pub fn internal() -> CallContext {
        CallContext {
            request_id: uuid::Uuid::new_v4().to_string(),
            qualifier: "LATEST".into(),
            tail_log: false,
            service_name: None,
            started: Instant::now(),
            trace: None,
            trigger: None,
        }
    }
}

/// The answer to an invocation that reached the function (it may still be a function error).
pub struct InvokeResponse {
    /// The result; streamed from the instance when no log tail was asked for.
    pub body: Body,
    /// The instance's `Content-Type` (visible ASCII only), passed on.
    pub content_type: Option<::http::HeaderValue>,
    /// [`instance_id`](Self::instance_id) as a header value, when the instance's slot made
    /// one already (`None`: the gateway makes it).
    pub instance_header: Option<::http::HeaderValue>,
    /// The instance that answered (`x-fc-instance-id`).
    pub instance_id: String,
    /// `Some(UnhandledInvocationError)` when the function failed.
    pub error_type: Option<&'static str>,
    /// The invocation's log tail (at most 4 KB), when asked for.
    pub log_tail: Option<Vec<u8>>,
    /// What fcx and the metrics know about the call (`X-Fc-*` response headers).
    pub facts: CallFacts,
}

/// Per-invocation facts behind FC's response headers and the metrics.
#[derive(Debug, Clone, Default)]
pub struct CallFacts {
    /// The function error's type (`UnhandledInvocationError`, `FunctionTimeout`,
    /// `InitializationError`, `ProcessExitError`, ...) when it failed.
    pub function_error: Option<&'static str>,
    /// An instance was started for this request.
    pub cold_start: bool,
    /// Time in the instance: to the answer's headers when it streams, else to its end.
    pub duration: Duration,
    /// The serving instance's peak memory in MB, as last read from its cgroup.
    pub max_memory_mb: Option<u64>,
    /// `X-Fc-Code-Checksum` of the version that ran.
    pub code_checksum: Option<::http::HeaderValue>,
    /// The answer streams: the metrics are recorded when its last byte is sent.
    pub(crate) streamed: bool,
}

/// A running instance, as ListInstances shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceInfo {
    /// See [`fcx_runtime::Instance::id`].
    pub instance_id: String,
    /// Always `LATEST`: only the unpublished function's instances are listed.
    pub qualifier: String,
    /// Always `0`, for the same reason.
    pub version_id: String,
    /// `Running` or `Frozen`.
    pub status: &'static str,
    /// When it was started (ms since the Unix epoch).
    pub created_time_ms: u64,
    /// The node running it, when several share a store (an fcx addition to FC's fields:
    /// ListInstances answers for every node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

/// Pools are keyed by function name (LATEST) or `name@version`.
fn pool_key(name: &str, version: Option<&str>) -> String {
    match version {
        None => name.to_owned(),
        Some(v) => format!("{name}@{v}"),
    }
}

/// Owns every function's instance pool and limits.
pub struct Scheduler {
    backends: Backends,
    code: Arc<CodeCache>,
    /// The image cache custom-container functions run from (`None`: code packages only).
    images: Option<Arc<ImageStore>>,
    config: SchedulerConfig,
    pools: Mutex<HashMap<String, Arc<Pool>>>,
    limits: Mutex<HashMap<String, Arc<FunctionLimits>>>,
    budget: Arc<InstanceBudget>,
    /// Snapshot starts (unset: functions that opt in start cold, uncounted).
    snapshots: std::sync::OnceLock<Arc<snapshot::Snapshots>>,
}

impl Scheduler {
    /// A scheduler starting instances on `backends`; `images` is needed for custom-container functions.
    pub fn new(
        backends: Backends,
        code: CodeCache,
        config: SchedulerConfig,
        images: Option<Arc<ImageStore>>,
    ) -> Arc<Scheduler> {
        let sched = Arc::new(Scheduler {
            backends,
            code: Arc::new(code),
            images,
            budget: InstanceBudget::new(config.max_instances),
            config,
            pools: Mutex::default(),
            limits: Mutex::default(),
            snapshots: std::sync::OnceLock::new(),
        });
        sched
            .config
            .metrics
            .add_collector(Box::new(observe::Instances(Arc::downgrade(&sched))));
        sched
            .config
            .metrics
            .add_collector(Box::new(observe::SnapshotStarts(Arc::downgrade(&sched))));
        sched
    }

    /// Turns snapshot starts on (once, before functions are deployed).
    pub fn set_snapshots(&self, snapshots: snapshot::Snapshots) {
        let _ = self.snapshots.set(Arc::new(snapshots));
    }

    /// Snapshot dumps, restores and fallbacks so far (`None`: snapshot starts are off).
    pub fn snapshot_counters(&self) -> Option<&snapshot::SnapshotCounters> {
        self.snapshots.get().map(|s| &s.counters)
    }

    /// Starts the background loop (minimum instances, idle reclaim, freezing, dead instances).
    pub fn start_maintenance(self: &Arc<Self>) {
        tokio::spawn(maintain::run(Arc::downgrade(self)));
    }

    fn pools(&self) -> MutexGuard<'_, HashMap<String, Arc<Pool>>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limits_of(&self, name: &str) -> Arc<FunctionLimits> {
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(limits.entry(name.to_owned()).or_default())
    }

    fn pool(&self, name: &str) -> Result<Arc<Pool>, SchedulerError> {
        self.pools()
            .get(name)
            .cloned()
            .ok_or_else(|| SchedulerError::FunctionNotFound {
                function: name.to_owned(),
            })
    }

    /// The pool of `version` of `name` (LATEST for `None`).
    fn version_pool(&self, name: &str, version: Option<&str>) -> Result<Arc<Pool>, SchedulerError> {
        match version {
            None => self.pool(name),
            Some(v) => {
                // Bound first: the pools guard must be gone before `has_function` locks again.
                let pool = self.pools().get(&pool_key(name, Some(v))).cloned();
                pool.ok_or_else(|| {
                    if self.has_function(name) {
                        SchedulerError::VersionNotFound {
                            function: name.to_owned(),
                            version: v.to_owned(),
                        }
                    } else {
                        SchedulerError::FunctionNotFound {
                            function: name.to_owned(),
                        }
                    }
                })
            }
        }
    }

    /// Makes `deployed` the version new invocations of its function use. Instances of the
    /// previous version finish their requests and stop.
    pub fn deploy(&self, deployed: Deployed) {
        let name = deployed.function.function_name.clone();
        let key = pool_key(&name, deployed.version_id.as_deref());
        if let Some(s) = self.snapshots.get() {
            s.invalidate(&name, deployed.version_id.as_deref(), Some(&deployed));
        }
        let headers = context::static_headers(&deployed, &self.config);
        let metrics = self
            .config
            .metrics
            .function(&name, deployed.version_id.as_deref().unwrap_or("LATEST"));
        let pool = Arc::new(Pool::new(
            Arc::new(deployed),
            self.limits_of(&name),
            headers,
            metrics,
        ));
        let old = self.pools().insert(key, pool);
        if let Some(old) = old {
            old.retire()
                .into_iter()
                .for_each(lifecycle::stop_in_background);
        }
    }

    /// Stops a deleted function's instances and forgets its limits.
    pub fn remove(&self, name: &str) {
        let old: Vec<Arc<Pool>> = {
            let mut pools = self.pools();
            let versions = format!("{name}@");
            let keys: Vec<String> = pools
                .keys()
                .filter(|k| k.as_str() == name || k.starts_with(&versions))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| pools.remove(k)).collect()
        };
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(s) = self.snapshots.get() {
            s.remove_function(name);
        }
        self.config.metrics.remove_all_versions(name);
        for pool in old {
            pool.retire()
                .into_iter()
                .for_each(lifecycle::stop_in_background);
        }
    }

    /// Stops the instances of a deleted version.
    pub fn remove_version(&self, name: &str, version: &str) {
        if let Some(s) = self.snapshots.get() {
            s.invalidate(name, Some(version), None);
        }
        self.config.metrics.remove_function(name, version);
        if let Some(old) = self.pools().remove(&pool_key(name, Some(version))) {
            old.retire()
                .into_iter()
                .for_each(lifecycle::stop_in_background);
        }
    }

    /// Sets a function's reserved concurrency (`None`: no limit).
    pub fn set_reserved_concurrency(&self, name: &str, reserved: Option<u32>) {
        self.limits_of(name).set_reserved(reserved);
    }

    /// This node's leased share of a function's reserved concurrency (`None`: all of it).
    pub fn set_limit_share(&self, name: &str, share: Option<u32>) {
        self.limits_of(name).set_share(share);
    }

    /// The cluster's instance cap and this node's leased share of it (`None`, `None`: no
    /// cluster cap).
    pub fn set_instance_share(&self, cluster: Option<u32>, share: Option<u32>) {
        self.budget.set_share(cluster, share);
    }

    /// What this node could use of the cluster's instance cap lately.
    pub fn instance_demand(&self) -> Demand {
        self.budget.demand()
    }

    /// What this node could use of each function's reserved concurrency lately (functions
    /// with a reserved concurrency only).
    pub fn limit_demands(&self) -> Vec<(String, Demand)> {
        let limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        limits
            .iter()
            .map(|(name, l)| (name.clone(), l.demand()))
            .filter(|(_, d)| d.reserved.is_some())
            .collect()
    }

    /// Sets how many instances are kept running (provisioned / minimum instances).
    pub fn set_min_instances(&self, name: &str, min: u32) {
        self.limits_of(name)
            .min_instances
            .store(min, std::sync::atomic::Ordering::Release);
    }

    /// Whether a function is deployed.
    pub fn has_function(&self, name: &str) -> bool {
        self.pools().contains_key(name)
    }

    /// How many more instances this server may start now (`--max-instances` less those
    /// running).
    pub fn free_instances(&self) -> u32 {
        self.budget.free()
    }

    /// Live instances of a function.
    pub fn list_instances(&self, name: &str) -> Result<Vec<InstanceInfo>, SchedulerError> {
        let pool = self.pool(name)?;
        Ok(pool
            .slots()
            .into_iter()
            .map(|s| InstanceInfo {
                instance_id: s.instance.id.clone(),
                qualifier: "LATEST".into(),
                version_id: "0".into(),
                status: if s.is_frozen() { "Frozen" } else { "Running" },
                created_time_ms: s.instance.created_ms,
                node_id: None,
            })
            .collect())
    }

    /// Stops every instance, calling pre-stop hooks (server shutdown).
    pub async fn shutdown(&self) {
        self.stop_instances().await;
        self.remove_backends().await;
    }

    /// Stops every instance, calling pre-stop hooks (the first half of [`Scheduler::shutdown`]).
    pub async fn stop_instances(&self) {
        let pools: Vec<Arc<Pool>> = self.pools().drain().map(|(_, p)| p).collect();
        let mut stopping = Vec::new();
        for pool in pools {
            for slot in pool.drain_all() {
                stopping.push(tokio::spawn(lifecycle::stop(slot, lifecycle::STOP_GRACE)));
            }
        }
        for task in stopping {
            let _ = task.await;
        }
    }

    /// Lets every backend remove what it made, once the instances are stopped (the second
    /// half of [`Scheduler::shutdown`]).
    pub async fn remove_backends(&self) {
        // Teardowns run in the background when instances drop; finish them (and anything
        // they missed) before the server removes its run directory. Last registered first:
        // the process backend's cgroup root holds the other backends' groups.
        let backends = self.backends.all().to_vec();
        let _ = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(50));
            backends.iter().rev().for_each(|b| b.remove_all());
        })
        .await;
    }

    /// Memory and CPU use of the live instances of function `name` (LATEST), by instance id.
    pub fn instance_stats(
        &self,
        name: &str,
    ) -> Result<Vec<(String, std::io::Result<fcx_runtime::InstanceStats>)>, SchedulerError> {
        let pool = self.pool(name)?;
        Ok(pool
            .slots()
            .into_iter()
            .map(|s| (s.instance.id.clone(), s.backend.stats(&s.instance)))
            .collect())
    }

    /// Runs one synchronous invocation of function `name` (LATEST).
    pub async fn invoke(
        &self,
        name: &str,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, SchedulerError> {
        self.invoke_version(name, None, req).await
    }

    /// Runs one synchronous invocation of `version` of function `name` (`None`: LATEST).
    pub async fn invoke_version(
        &self,
        name: &str,
        version: Option<&str>,
        req: InvokeRequest,
    ) -> Result<InvokeResponse, SchedulerError> {
        let pool = self.version_pool(name, version)?;
        // Copied inline (no allocation): the request is moved into the call.
        let call = observe::Call::new(&req.context);
        let result = async {
            // Held until the answer's last byte: a streamed answer is still in flight.
            let admission = pool.limits.admit(name)?;
            if pool.deployed.function.web_server_mode() {
                web::invoke(self, &pool, req, admission).await
            } else {
                // Boxed: the per-event container run is as large as the web path's call.
                Box::pin(event::invoke(self, &pool, req)).await
            }
        }
        .await;
        call.record(&pool.metrics, &result, self.config.error_code);
        result
    }
}
