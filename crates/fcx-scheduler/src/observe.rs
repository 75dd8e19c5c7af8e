//! What the scheduler tells the metrics about each invocation: its outcome, latencies and
//! cold start, recorded into the handles its function version registered at deploy time.
//! Every caller of [`Scheduler::invoke`](crate::Scheduler::invoke) (the API, async workers,
//! triggers) is counted the same way. A streamed answer is recorded by its body when the
//! last byte is sent ([`crate::stream::InvocationBody`]).

use std::time::{Duration, Instant};

use fcx_metrics::recent::Short;
use fcx_metrics::{Finished, FunctionMetrics, Outcome, Phase};

use crate::{CallContext, InvokeResponse, SchedulerError};

/// An invocation being observed: what is needed after the request moved into the call.
pub struct Call {
    request_id: Short,
    started: Instant,
}

impl Call {
    pub fn new(ctx: &CallContext) -> Call {
        Call {
            request_id: Short::new(&ctx.request_id),
            started: ctx.started,
        }
    }

    pub fn record(
        &self,
        metrics: &FunctionMetrics,
        result: &Result<InvokeResponse, SchedulerError>,
        error_code: fn(&SchedulerError) -> &'static str,
    ) {
        let done = match result {
            Ok(resp) if resp.facts.streamed => return,
            Ok(resp) => {
                let (outcome, code) = match resp.facts.function_error {
                    Some(kind) => (Outcome::FunctionError, kind),
                    None => (Outcome::Success, ""),
                };
                Finished {
                    request_id: self.request_id.as_str(),
                    instance_id: &resp.instance_id,
                    outcome,
                    code,
                    total: self.started.elapsed(),
                    in_instance: Some(resp.facts.duration),
                    cold_start: resp.facts.cold_start,
                }
            }
            Err(e) => {
                let (outcome, code) = failure(e, error_code);
                Finished {
                    request_id: self.request_id.as_str(),
                    instance_id: e.instance_id().unwrap_or(""),
                    outcome,
                    code,
                    total: self.started.elapsed(),
                    in_instance: None,
                    cold_start: false,
                }
            }
        };
        metrics.finished(&done);
    }
}

impl Call {
    /// Records an HTTP-trigger request that did not stream to its end through
    /// [`crate::stream::InvocationBody`]: refused, failed, answered by fcx for a failed
    /// initializer, or an upgraded connection (counted when it is handed over).
    pub fn record_http(
        &self,
        metrics: &FunctionMetrics,
        result: &Result<crate::HttpInvokeResponse, SchedulerError>,
        error_code: fn(&SchedulerError) -> &'static str,
    ) {
        let done = match result {
            Ok(resp) => match resp.error_type {
                Some(kind) => Finished {
                    request_id: self.request_id.as_str(),
                    instance_id: &resp.instance_id,
                    outcome: Outcome::FunctionError,
                    code: kind,
                    total: self.started.elapsed(),
                    in_instance: None,
                    cold_start: false,
                },
                // Streamed: its body records it at the last byte.
                None if !resp.upgraded => return,
                None => Finished {
                    request_id: self.request_id.as_str(),
                    instance_id: &resp.instance_id,
                    outcome: Outcome::Success,
                    code: "",
                    total: self.started.elapsed(),
                    in_instance: None,
                    cold_start: false,
                },
            },
            Err(e) => {
                let (outcome, code) = failure(e, error_code);
                Finished {
                    request_id: self.request_id.as_str(),
                    instance_id: e.instance_id().unwrap_or(""),
                    outcome,
                    code,
                    total: self.started.elapsed(),
                    in_instance: None,
                    cold_start: false,
                }
            }
        };
        metrics.finished(&done);
    }
}

/// How a failed call is counted: refused at a limit (its name), the request's own fault
/// (its FC code), or fcx could not run it (its FC code).
fn failure(
    e: &SchedulerError,
    error_code: fn(&SchedulerError) -> &'static str,
) -> (Outcome, &'static str) {
    if let Some(limit) = e.limit_name() {
        (Outcome::Throttled, limit)
    } else if e.is_client_error() {
        (Outcome::ClientError, error_code(e))
    } else {
        (Outcome::PlatformError, error_code(e))
    }
}

/// The phases of one cold start as they are timed.
#[derive(Default)]
pub struct ColdStart {
    phases: Vec<(Phase, Duration)>,
}

impl ColdStart {
    pub fn add(&mut self, phase: Phase, took: Duration) {
        self.phases.push((phase, took));
    }

    pub fn record(&self, metrics: &FunctionMetrics) {
        metrics.cold_started(&self.phases);
    }
}

/// `fcx_instances{state}` and `fcx_concurrency_slots_in_use` / `_capacity`, counted from
/// the pools at scrape time (the invocation path keeps no gauges of its own).
pub struct Instances(pub std::sync::Weak<crate::Scheduler>);

impl std::fmt::Debug for Instances {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Instances")
    }
}

impl fcx_metrics::prometheus_client::collector::Collector for Instances {
    fn encode(
        &self,
        mut encoder: fcx_metrics::prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use fcx_metrics::labels::{FunctionLabels, StateLabels};
        use fcx_metrics::prometheus_client::encoding::EncodeMetric;
        use fcx_metrics::prometheus_client::metrics::gauge::ConstGauge;
        use fcx_metrics::prometheus_client::metrics::MetricType;

        let Some(sched) = self.0.upgrade() else {
            return Ok(());
        };
        let pools: Vec<_> = sched.pools().values().cloned().collect();
        let census: Vec<(std::sync::Arc<FunctionLabels>, crate::pool::Census)> = pools
            .iter()
            .map(|p| (std::sync::Arc::clone(&p.metrics.labels), p.census()))
            .collect();
        let mut states = encoder.encode_descriptor(
            "fcx_instances",
            "Instances by function version and state (starting, idle, busy, frozen)",
            None,
            MetricType::Gauge,
        )?;
        for (labels, c) in &census {
            for (state, n) in [
                ("starting", c.starting),
                ("idle", c.idle),
                ("busy", c.busy),
                ("frozen", c.frozen),
            ] {
                let l = StateLabels {
                    function: labels.function.clone(),
                    qualifier: labels.qualifier.clone(),
                    state,
                };
                ConstGauge::new(n as i64).encode(states.encode_family(&l)?)?;
            }
        }
        for (name, help, pick) in [
            (
                "fcx_concurrency_slots_in_use",
                "Requests in flight on instances (instanceConcurrency slots taken)",
                (|c: &crate::pool::Census| c.slots_in_use) as fn(&crate::pool::Census) -> u64,
            ),
            (
                "fcx_concurrency_slots",
                "instanceConcurrency slots of the live instances",
                |c: &crate::pool::Census| c.slot_capacity,
            ),
        ] {
            let mut gauge = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, c) in &census {
                ConstGauge::new(pick(c) as i64).encode(gauge.encode_family(&**labels)?)?;
            }
        }
        Ok(())
    }
}

/// `fcx_snapshot_dumps_total`, `fcx_snapshot_restores_total` and
/// `fcx_snapshot_fallbacks_total{reason}`: read from the snapshot counters at scrape time;
/// nothing while snapshot starts are off.
pub struct SnapshotStarts(pub std::sync::Weak<crate::Scheduler>);

impl std::fmt::Debug for SnapshotStarts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotStarts")
    }
}

impl fcx_metrics::prometheus_client::collector::Collector for SnapshotStarts {
    fn encode(
        &self,
        mut encoder: fcx_metrics::prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use fcx_metrics::prometheus_client::encoding::EncodeMetric;
        use fcx_metrics::prometheus_client::metrics::counter::ConstCounter;
        use std::sync::atomic::Ordering;

        let Some(sched) = self.0.upgrade() else {
            return Ok(());
        };
        let Some(counters) = sched.snapshot_counters() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "fcx_snapshot_dumps",
                "Snapshots taken after a first successful /initialize",
                counters.dumps.load(Ordering::Relaxed),
            ),
            (
                "fcx_snapshot_restores",
                "Instances started from a snapshot instead of a cold start",
                counters.restores.load(Ordering::Relaxed),
            ),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        let mut family = encoder.encode_descriptor(
            "fcx_snapshot_fallbacks",
            "Snapshot starts that fell back to a cold start, by reason (no usable CRIU, dump or \
             restore failed, over the disk budget, restore hook failed)",
            None,
            fcx_metrics::prometheus_client::metrics::MetricType::Counter,
        )?;
        for (reason, n) in counters.fallbacks() {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason)])?)?;
        }
        Ok(())
    }
}
