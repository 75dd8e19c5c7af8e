//! fcx's Prometheus metrics (`GET /metrics`): every series, registered with
//! `prometheus-client` and encoded by it in the Prometheus text format; the per-function
//! handles the invocation path records into without locks or allocations
//! ([`FunctionMetrics`], registered when a function version is deployed, with a cap on
//! their number); scrape-time collectors of other crates (instances, the async queue); the
//! process's own series; and the ring of recent invocations the status page shows. Used by
//! the scheduler, the async service, the log writer, the control plane and the gateway.

mod function;
mod histogram;
pub mod labels;
mod process;
pub mod recent;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

pub use crate::function::{Finished, FunctionMetrics, Outcome, Phase, PHASES};
pub use crate::histogram::{AtomicHistogram, LATENCY_BUCKETS};
use crate::labels::{
    FunctionKindLabels, FunctionLabels, InvocationLabels, KindLabels, LimitLabels, PhaseLabels,
};
pub use crate::recent::{Invocation, Recent};
pub use prometheus_client;

/// Default cap on function versions with series of their own; later ones share the
/// overflow label set `function="_other", qualifier="_other"`.
pub const DEFAULT_MAX_FUNCTIONS: usize = 1000;
/// The label value of the overflow set.
pub const OVERFLOW: &str = "_other";

type HistogramFamily<L> = Family<L, AtomicHistogram>;

/// Every labelled family fcx records into.
pub(crate) struct Families {
    pub invocations: Family<InvocationLabels, Counter>,
    pub duration: HistogramFamily<FunctionLabels>,
    pub instance_duration: HistogramFamily<FunctionLabels>,
    pub cold_starts: Family<FunctionLabels, Counter>,
    pub cold_start: HistogramFamily<FunctionLabels>,
    pub cold_start_phase: HistogramFamily<PhaseLabels>,
    pub throttles: Family<LimitLabels, Counter>,
    pub async_attempts: Family<FunctionKindLabels, Counter>,
    pub trigger_fires: Family<FunctionKindLabels, Counter>,
    pub rejected: Family<KindLabels, Counter>,
    pub store: HistogramFamily<KindLabels>,
    pub image_pulls: Family<KindLabels, Counter>,
}

/// Totals over every function, for the status page.
#[derive(Default)]
pub struct Totals {
    /// Invocations that succeeded.
    pub success: AtomicU64,
    /// Invocations the function failed.
    pub function_errors: AtomicU64,
    /// Invocations fcx could not run.
    pub platform_errors: AtomicU64,
    /// Invocations refused for the request's own fault (a broken or oversized body: 4xx).
    pub client_errors: AtomicU64,
    /// Invocations refused at a concurrency limit.
    pub throttles: AtomicU64,
}

pub(crate) struct Shared {
    pub families: Families,
    pub totals: Totals,
    pub recent: Recent,
    /// Off only for the warm-path benchmark's baseline (`fcx server --no-observability`).
    pub recording: std::sync::atomic::AtomicBool,
}

/// Series outside any function's handles: async queue, images, logs.
#[derive(Clone, Default)]
pub struct Counters {
    /// Time from enqueue to the start of an async task's first attempt.
    pub async_queue_wait: AtomicHistogram,
    /// Bytes of image blobs pulled from registries (`fcx_image_pull_bytes_total`).
    pub image_pull_bytes: Counter,
    /// Output chunks (or markers) an instance log dropped because its buffer was full.
    pub log_dropped: Counter,
    /// Bytes written to instance log segments (`fcx_log_written_bytes_total`).
    pub log_written_bytes: Counter,
    /// Bytes of instance log segments removed by retention (`fcx_log_pruned_bytes_total`).
    pub log_pruned_bytes: Counter,
    /// Client connections over `--max-connections`, by what they got: `answered` (503
    /// TooManyConnections) or `closed` (too many refusals at once: closed unanswered).
    pub connections_refused: Family<KindLabels, Counter>,
}

/// All of fcx's metrics; one per server, shared by every layer.
pub struct Metrics {
    registry: RwLock<Registry>,
    shared: Arc<Shared>,
    functions: Mutex<HashMap<FunctionLabels, Arc<FunctionMetrics>>>,
    max_functions: usize,
    /// Registered when the cap is first reached.
    overflow: OnceLock<Arc<FunctionMetrics>>,
    /// The series outside any function's handles, shared with the layers that record them.
    pub counters: Counters,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("max_functions", &self.max_functions)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(DEFAULT_MAX_FUNCTIONS)
    }
}

impl Metrics {
    /// Metrics with at most `max_functions` function versions labelled on their own.
    pub fn new(max_functions: usize) -> Metrics {
        let families = Families {
            invocations: Family::default(),
            duration: Family::default(),
            instance_duration: Family::default(),
            cold_starts: Family::default(),
            cold_start: Family::default(),
            cold_start_phase: Family::default(),
            throttles: Family::default(),
            async_attempts: Family::default(),
            trigger_fires: Family::default(),
            rejected: Family::default(),
            store: Family::default(),
            image_pulls: Family::default(),
        };
        let counters = Counters::default();
        let mut r = Registry::default();
        let f = &families;
        r.register(
            "fcx_invocations",
            "Invocations by function version and outcome (success, function_error by error \
             type, throttled by limit, platform_error by FC code, client_error by FC code for a \
             request at fault: its body broke, stalled or was too large)",
            f.invocations.clone(),
        );
        r.register_with_unit(
            "fcx_invocation_duration",
            "End-to-end invocation latency, from the request's arrival to its answer's last byte",
            Unit::Seconds,
            f.duration.clone(),
        );
        r.register_with_unit(
            "fcx_instance_duration",
            "Time an invocation spent in its instance (the /invoke call, body included)",
            Unit::Seconds,
            f.instance_duration.clone(),
        );
        r.register(
            "fcx_cold_starts",
            "Instances started for a request",
            f.cold_starts.clone(),
        );
        r.register_with_unit(
            "fcx_cold_start_duration",
            "Cold start time, all phases",
            Unit::Seconds,
            f.cold_start.clone(),
        );
        r.register_with_unit(
            "fcx_cold_start_phase_duration",
            "Cold start time by phase (image, unpack, create, ready, initialize)",
            Unit::Seconds,
            f.cold_start_phase.clone(),
        );
        r.register(
            "fcx_throttles",
            "Invocations refused with 429 by limit (reservedConcurrency, maxInstances, \
             clusterMaxInstances)",
            f.throttles.clone(),
        );
        r.register(
            "fcx_invocations_rejected",
            "Invocation requests refused before they ran: unknown function or alias, bad \
             headers, async events not accepted (bodies unreadable or too large, StorageFull), \
             by FC code",
            f.rejected.clone(),
        );
        r.register(
            "fcx_async_attempts",
            "Async invocation attempts by function and result (succeeded, retrying, failed, \
             throttled, expired, invalid, stopped)",
            f.async_attempts.clone(),
        );
        r.register_with_unit(
            "fcx_async_queue_wait",
            "Time an async invocation waited in the queue before an attempt started",
            Unit::Seconds,
            counters.async_queue_wait.clone(),
        );
        r.register(
            "fcx_trigger_fires",
            "Trigger fires by function and trigger type (timer)",
            f.trigger_fires.clone(),
        );
        r.register(
            "fcx_image_pulls",
            "Image pulls from a registry by result (pulled, failed)",
            f.image_pulls.clone(),
        );
        r.register_with_unit(
            "fcx_image_pull",
            "Bytes of image blobs downloaded",
            Unit::Bytes,
            counters.image_pull_bytes.clone(),
        );
        r.register_with_unit(
            "fcx_store_operation_duration",
            "Store (database) operation latency by operation",
            Unit::Seconds,
            f.store.clone(),
        );
        r.register(
            "fcx_log_dropped",
            "Instance output chunks and markers dropped because the log buffer was full",
            counters.log_dropped.clone(),
        );
        r.register_with_unit(
            "fcx_log_written",
            "Bytes written to instance log files",
            Unit::Bytes,
            counters.log_written_bytes.clone(),
        );
        r.register_with_unit(
            "fcx_log_pruned",
            "Bytes of instance log files removed by retention",
            Unit::Bytes,
            counters.log_pruned_bytes.clone(),
        );
        r.register(
            "fcx_client_connections_refused",
            "Client connections refused at --max-connections, by what they got (answered: \
             503 TooManyConnections; closed: closed unanswered, too many refusals at once)",
            counters.connections_refused.clone(),
        );
        r.register_collector(Box::new(process::ProcessCollector));
        let shared = Arc::new(Shared {
            families,
            totals: Totals::default(),
            recent: Recent::default(),
            recording: std::sync::atomic::AtomicBool::new(true),
        });
        Metrics {
            registry: RwLock::new(r),
            shared,
            functions: Mutex::default(),
            max_functions,
            overflow: OnceLock::new(),
            counters,
        }
    }

    /// The handles of `function` at `qualifier` (`LATEST` or a version id), registered on
    /// first use: the scheduler calls this when it deploys a version, never per request.
    /// Past the cap, versions share the overflow set.
    pub fn function(&self, function: &str, qualifier: &str) -> Arc<FunctionMetrics> {
        let labels = FunctionLabels {
            function: function.into(),
            qualifier: qualifier.into(),
        };
        let mut functions = self.functions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = functions.get(&labels) {
            return Arc::clone(m);
        }
        if functions.len() >= self.max_functions {
            let overflow = self.overflow.get_or_init(|| {
                Arc::new(FunctionMetrics::register(
                    FunctionLabels {
                        function: OVERFLOW.into(),
                        qualifier: OVERFLOW.into(),
                    },
                    Arc::clone(&self.shared),
                ))
            });
            return Arc::clone(overflow);
        }
        let m = Arc::new(FunctionMetrics::register(
            labels.clone(),
            Arc::clone(&self.shared),
        ));
        functions.insert(labels, Arc::clone(&m));
        m
    }

    /// Forgets the series of a deleted function version (its label set is free again).
    pub fn remove_function(&self, function: &str, qualifier: &str) {
        let labels = FunctionLabels {
            function: function.into(),
            qualifier: qualifier.into(),
        };
        let removed = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&labels);
        if let Some(m) = removed {
            m.unregister();
        }
    }

    /// Forgets every version of a deleted function.
    pub fn remove_all_versions(&self, function: &str) {
        let qualifiers: Vec<Arc<str>> = self
            .functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .filter(|l| &*l.function == function)
            .map(|l| l.qualifier.clone())
            .collect();
        for q in qualifiers {
            self.remove_function(function, &q);
        }
    }

    /// An invocation request refused before it reached a deployed function (unknown
    /// function or alias, bad headers), by FC code: no function label, since the name is
    /// the caller's.
    pub fn rejected(&self, code: &'static str) {
        self.shared
            .families
            .rejected
            .get_or_create(&KindLabels { kind: code })
            .inc();
    }

    /// A client connection was refused at `--max-connections` (`answered` with 503, or
    /// `closed` unanswered).
    pub fn connection_refused(&self, kind: &'static str) {
        self.counters
            .connections_refused
            .get_or_create(&KindLabels { kind })
            .inc();
    }

    /// One attempt of an async invocation of `function` ended as `result`.
    pub fn async_attempt(&self, function: &str, result: &'static str) {
        self.shared
            .families
            .async_attempts
            .get_or_create(&FunctionKindLabels {
                function: function.into(),
                kind: result,
            })
            .inc();
    }

    /// A trigger of `function` fired (`trigger_type`: `timer`, ...). The timer trigger
    /// records each fire here.
    pub fn trigger_fired(&self, function: &str, trigger_type: &'static str) {
        self.shared
            .families
            .trigger_fires
            .get_or_create(&FunctionKindLabels {
                function: function.into(),
                kind: trigger_type,
            })
            .inc();
    }

    /// A registry pull ended (`pulled` or `failed`).
    pub fn image_pull(&self, result: &'static str) {
        self.shared
            .families
            .image_pulls
            .get_or_create(&KindLabels { kind: result })
            .inc();
    }

    /// The latency histogram of store operation `operation`.
    pub fn store_operation(&self, operation: &'static str) -> AtomicHistogram {
        self.shared
            .families
            .store
            .get_or_create_owned(&KindLabels { kind: operation })
    }

    /// Adds series computed at scrape time (instances by state, the async queue).
    pub fn add_collector(&self, collector: Box<dyn Collector>) {
        self.registry
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .register_collector(collector);
    }

    /// The Prometheus text exposition (format 0.0.4). Collectors may read files or the
    /// database: call it off the async workers.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let registry = self.registry.read().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    /// Stops (or resumes) recording invocations and cold starts: the baseline of the
    /// warm-path benchmark, which measures what recording costs.
    pub fn set_recording(&self, on: bool) {
        self.shared
            .recording
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The recent invocations, newest first.
    pub fn recent(&self) -> Vec<Invocation> {
        self.shared.recent.snapshot()
    }

    /// Invocation counts over every function (the status page's totals).
    pub fn totals(&self) -> &Totals {
        &self.shared.totals
    }
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests;
