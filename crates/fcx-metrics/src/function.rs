//! The series of one deployed function version, registered when it is deployed: the
//! invocation path only increments atomics it already holds (success counter, latency
//! histograms), with no lookup, lock or allocation. Function errors, throttles, platform
//! and client errors look their series up in the family (a read lock, once per failed invocation):
//! their codes form a small fixed set.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;

use crate::histogram::AtomicHistogram;
use crate::labels::{FunctionLabels, InvocationLabels, LimitLabels, PhaseLabels};
use crate::recent::{Invocation, Short};
use crate::Shared;

/// How an invocation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered without an error.
    Success,
    /// The function failed (`code` is the error type).
    FunctionError,
    /// Refused at a limit (`code` is the limit).
    Throttled,
    /// fcx could not run it (`code` is the FC error code).
    PlatformError,
    /// The request itself was at fault, answered 4xx: its body broke or timed out mid-upload,
    /// was too large, or cannot be passed as an event (`code` is the FC error code).
    ClientError,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::FunctionError => "function_error",
            Outcome::Throttled => "throttled",
            Outcome::PlatformError => "platform_error",
            Outcome::ClientError => "client_error",
        }
    }
}

/// The phases of a cold start, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Fetching the image (custom containers; a cached image takes microseconds).
    Image,
    /// Unpacking the code package (once per checksum).
    Unpack,
    /// Creating the instance: namespace, cgroup, process or container.
    Create,
    /// From the process start until it listens on its port.
    Ready,
    /// `POST /initialize`.
    Initialize,
}

/// Every phase, in the order a cold start runs them.
pub const PHASES: [Phase; 5] = [
    Phase::Image,
    Phase::Unpack,
    Phase::Create,
    Phase::Ready,
    Phase::Initialize,
];

impl Phase {
    /// The `phase` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Image => "image",
            Phase::Unpack => "unpack",
            Phase::Create => "create",
            Phase::Ready => "ready",
            Phase::Initialize => "initialize",
        }
    }
}

/// One finished invocation, as the scheduler reports it.
pub struct Finished<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// The instance that ran it (empty when it reached none).
    pub instance_id: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// Error type, limit or FC code; empty on success.
    pub code: &'static str,
    /// From the request's arrival to its answer's last byte.
    pub total: Duration,
    /// Time spent in the instance (`None`: it never reached one).
    pub in_instance: Option<Duration>,
    /// Whether it started an instance.
    pub cold_start: bool,
}

/// The pre-registered series of one function version.
pub struct FunctionMetrics {
    /// The version's `function` and `qualifier` labels.
    pub labels: Arc<FunctionLabels>,
    success: Counter,
    duration: AtomicHistogram,
    instance_duration: AtomicHistogram,
    cold_starts: Counter,
    cold_start: AtomicHistogram,
    phases: [AtomicHistogram; 5],
    shared: Arc<Shared>,
    /// Error series created on demand, removed with the function.
    lazy: Mutex<Vec<InvocationLabels>>,
}

impl FunctionMetrics {
    pub(crate) fn register(labels: FunctionLabels, shared: Arc<Shared>) -> FunctionMetrics {
        let f = &shared.families;
        let phase = |p: Phase| {
            f.cold_start_phase.get_or_create_owned(&PhaseLabels {
                function: labels.function.clone(),
                qualifier: labels.qualifier.clone(),
                phase: p.as_str(),
            })
        };
        FunctionMetrics {
            success: f
                .invocations
                .get_or_create_owned(&invocation(&labels, Outcome::Success, "")),
            duration: f.duration.get_or_create_owned(&labels),
            instance_duration: f.instance_duration.get_or_create_owned(&labels),
            cold_starts: f.cold_starts.get_or_create_owned(&labels),
            cold_start: f.cold_start.get_or_create_owned(&labels),
            phases: PHASES.map(phase),
            lazy: Mutex::default(),
            labels: Arc::new(labels),
            shared,
        }
    }

    /// Records a finished invocation: outcome, latencies, and the status page's ring.
    pub fn finished(&self, done: &Finished) {
        if !self.shared.recording.load(Ordering::Relaxed) {
            return;
        }
        let totals = &self.shared.totals;
        match done.outcome {
            Outcome::Success => {
                self.success.inc();
            }
            outcome => {
                self.error_series(outcome, done.code).inc();
            }
        }
        match done.outcome {
            Outcome::Success => &totals.success,
            Outcome::FunctionError => &totals.function_errors,
            Outcome::Throttled => &totals.throttles,
            Outcome::PlatformError => &totals.platform_errors,
            Outcome::ClientError => &totals.client_errors,
        }
        .fetch_add(1, Ordering::Relaxed);
        if done.outcome == Outcome::Throttled {
            self.shared
                .families
                .throttles
                .get_or_create(&LimitLabels {
                    function: self.labels.function.clone(),
                    qualifier: self.labels.qualifier.clone(),
                    limit: done.code,
                })
                .inc();
        } else {
            self.duration.observe(done.total);
        }
        if let Some(d) = done.in_instance {
            self.instance_duration.observe(d);
        }
        self.shared.recent.record(Invocation {
            at_ms: now_ms(),
            labels: Arc::clone(&self.labels),
            request_id: Short::new(done.request_id),
            instance_id: Short::new(done.instance_id),
            outcome: done.outcome.as_str(),
            code: done.code,
            duration: done.total,
            cold_start: done.cold_start,
        });
    }

    fn error_series(&self, outcome: Outcome, code: &'static str) -> Counter {
        let labels = invocation(&self.labels, outcome, code);
        let family = &self.shared.families.invocations;
        if family.get(&labels).is_none() {
            let mut lazy = self.lazy.lock().unwrap_or_else(|p| p.into_inner());
            if !lazy.contains(&labels) {
                lazy.push(labels.clone());
            }
        }
        family.get_or_create_owned(&labels)
    }

    /// Records a cold start that took `phases` (a phase that did not happen is `None`).
    pub fn cold_started(&self, phases: &[(Phase, Duration)]) {
        if !self.shared.recording.load(Ordering::Relaxed) {
            return;
        }
        self.cold_starts.inc();
        let mut total = Duration::ZERO;
        for (phase, d) in phases {
            total += *d;
            self.phases[*phase as usize].observe(*d);
        }
        self.cold_start.observe(total);
    }

    /// Removes this version's series from the exposition (the function was deleted).
    pub(crate) fn unregister(&self) {
        let f = &self.shared.families;
        let labels = &*self.labels;
        f.invocations
            .remove(&invocation(labels, Outcome::Success, ""));
        for l in self.lazy.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            f.invocations.remove(l);
        }
        f.duration.remove(labels);
        f.instance_duration.remove(labels);
        f.cold_starts.remove(labels);
        f.cold_start.remove(labels);
        for p in PHASES {
            f.cold_start_phase.remove(&PhaseLabels {
                function: labels.function.clone(),
                qualifier: labels.qualifier.clone(),
                phase: p.as_str(),
            });
        }
        for limit in ["reservedConcurrency", "maxInstances", "clusterMaxInstances"] {
            f.throttles.remove(&LimitLabels {
                function: labels.function.clone(),
                qualifier: labels.qualifier.clone(),
                limit,
            });
        }
    }
}

fn invocation(labels: &FunctionLabels, outcome: Outcome, code: &'static str) -> InvocationLabels {
    InvocationLabels {
        function: labels.function.clone(),
        qualifier: labels.qualifier.clone(),
        outcome: outcome.as_str(),
        code,
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
