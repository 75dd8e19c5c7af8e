//! Durable asynchronous invocation: accepts events into the store's queue (committed before
//! the caller's 202), runs them through the scheduler with the same instances and limits as
//! synchronous calls, retries with exponential backoff and jitter, drops events past their
//! max age, delivers records to destinations, and answers the async task APIs.

mod destination;
mod error;
mod origin;
mod task_view;
#[cfg(test)]
mod tests;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fcx_model::async_config::AsyncConfig;
use fcx_scheduler::Scheduler;
use fcx_store::queue::{Enqueued, NewTask, TaskFilter, TaskQueue};
use tokio::sync::{oneshot, Notify};

pub use error::{AsyncError, ErrorText};
pub use origin::{HttpRequestShape, Origin};
pub use task_view::task_json;

/// Settings of the async machinery.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    /// Invocations run at once by this node.
    pub workers: usize,
    /// First retry delay; doubles per failed attempt (with ±25 % jitter).
    pub retry_base: Duration,
    /// Region in the function ARNs of task records and destinations.
    pub region: String,
    /// Account id in those ARNs.
    pub account_id: String,
    /// How a failed run's error reads in its task record: the gateway's one mapping of
    /// errors to FC codes (`Code: message`).
    pub error_text: ErrorText,
    /// Attempts by result, queue wait, and (at scrape time) the backlog.
    pub metrics: Arc<fcx_metrics::Metrics>,
}

/// An accepted invocation.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The invocation's request id (`x-fc-request-id` of the 202).
    pub request_id: String,
    /// Shown to the caller when the function has async tasks enabled or the id was given.
    pub task_id: Option<String>,
}

/// This node's async machinery: the durable queue, its workers, the per-function configs and the stop signals of running tasks.
pub struct AsyncService {
    queue: Arc<dyn TaskQueue>,
    /// Sequence numbers of the tasks this node runs now (their leases are renewed).
    leased: Mutex<std::collections::HashSet<i64>>,
    scheduler: Arc<Scheduler>,
    settings: AsyncSettings,
    configs: Mutex<HashMap<String, AsyncConfig>>,
    /// Stop signals of tasks running on this node.
    running: Mutex<HashMap<String, oneshot::Sender<()>>>,
    wake: Notify,
    /// Set at shutdown: nothing new is leased, and outcomes of runs cut short by the
    /// stopping instances are not recorded (the tasks run again after the restart).
    stopping: std::sync::atomic::AtomicBool,
    clock: Clock,
}

/// Wall-clock time in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Where the service reads the time (created, due and end times of tasks).
enum Clock {
    Wall,
    /// Wall-clock time at `base` plus tokio's time since then: tests move it with tokio's
    /// paused clock.
    #[cfg(test)]
    Tokio {
        base_ms: i64,
        base: tokio::time::Instant,
    },
}

impl AsyncService {
    /// A service over `queue` that runs tasks through `scheduler`; nothing runs before [`start`](Self::start).
    pub fn new(
        queue: Arc<dyn TaskQueue>,
        scheduler: Arc<Scheduler>,
        settings: AsyncSettings,
    ) -> Arc<AsyncService> {
        Self::with_clock(queue, scheduler, settings, Clock::Wall)
    }

    /// Like [`AsyncService::new`], on tokio's clock (which a test may pause and move).
    #[cfg(test)]
    pub(crate) fn on_tokio_clock(
        queue: Arc<dyn TaskQueue>,
        scheduler: Arc<Scheduler>,
        settings: AsyncSettings,
    ) -> Arc<AsyncService> {
        let clock = Clock::Tokio {
            base_ms: now_ms(),
            base: tokio::time::Instant::now(),
        };
        Self::with_clock(queue, scheduler, settings, clock)
    }

    fn with_clock(
        queue: Arc<dyn TaskQueue>,
        scheduler: Arc<Scheduler>,
        settings: AsyncSettings,
        clock: Clock,
    ) -> Arc<AsyncService> {
        let metrics = Arc::clone(&settings.metrics);
        let svc = Arc::new(AsyncService {
            queue,
            leased: Mutex::default(),
            scheduler,
            settings,
            configs: Mutex::default(),
            running: Mutex::default(),
            wake: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            clock,
        });
        metrics.add_collector(Box::new(Backlog(Arc::downgrade(&svc.queue))));
        svc
    }

    /// The time now, in ms since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        match &self.clock {
            Clock::Wall => now_ms(),
            #[cfg(test)]
            Clock::Tokio { base_ms, base } => base_ms + base.elapsed().as_millis() as i64,
        }
    }

    /// Starts the workers (resuming whatever the queue holds).
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(worker::run(Arc::clone(self)));
        if let Some(every) = self.queue.lease_policy().renew_every_ms {
            tokio::spawn(worker::renew(Arc::clone(self), every));
        }
    }

    /// Stops leasing; call before the scheduler stops its instances.
    pub fn shutdown(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_waiters();
        // Also a loop not waiting yet (between its lease and its wait) stops at once.
        self.wake.notify_one();
    }

    pub(crate) fn leases(&self) -> MutexGuard<'_, std::collections::HashSet<i64>> {
        self.leased.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    fn configs(&self) -> MutexGuard<'_, HashMap<String, AsyncConfig>> {
        self.configs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The function's PutAsyncInvokeConfig, FC's defaults when it has none.
    pub fn config(&self, function: &str) -> AsyncConfig {
        self.configs().get(function).cloned().unwrap_or_default()
    }

    /// Sets (`Some`) or removes (`None`) the function's config; later runs use it.
    pub fn set_config(&self, function: &str, config: Option<AsyncConfig>) {
        match config {
            Some(c) => self.configs().insert(function.to_owned(), c),
            None => self.configs().remove(function),
        };
    }

    /// Durably enqueues an invocation of `function`; returns once it is on disk.
    pub async fn enqueue(
        &self,
        function: &str,
        qualifier: &str,
        payload: Vec<u8>,
        request_id: String,
        task_id: Option<String>,
        origin: Origin,
    ) -> Result<Accepted, AsyncError> {
        // Read in place: no clone of the whole config (destinations, retry settings) on
        // every event for one flag.
        let configured = self
            .configs()
            .get(function)
            .is_some_and(AsyncConfig::task_enabled);
        let task_enabled = configured || task_id.is_some();
        let id = task_id.unwrap_or_else(|| request_id.clone());
        let outcome = self
            .queue
            .enqueue(NewTask {
                task_id: id.clone(),
                request_id: request_id.clone(),
                function: function.to_owned(),
                qualifier: qualifier.to_owned(),
                payload,
                is_task: task_enabled,
                now_ms: self.now_ms(),
                origin: origin.encode(),
            })
            .await
            .map_err(AsyncError::Enqueue)?;
        self.wake.notify_one();
        let request_id = match outcome {
            Enqueued::New => request_id,
            Enqueued::Duplicate { request_id } => request_id,
        };
        Ok(Accepted {
            request_id,
            task_id: task_enabled.then_some(id),
        })
    }

    /// GetAsyncTask.
    pub fn get_task(
        &self,
        function: &str,
        task_id: &str,
    ) -> Result<Option<serde_json::Value>, AsyncError> {
        let row = self
            .queue
            .get(function, task_id)
            .map_err(AsyncError::Store)?;
        Ok(row.map(|r| task_json(&r, &self.settings, true)))
    }

    /// ListAsyncTasks: tasks and the next page token.
    pub fn list_tasks(
        &self,
        function: &str,
        filter: &TaskFilter,
        include_payload: bool,
    ) -> Result<(Vec<serde_json::Value>, Option<String>), AsyncError> {
        let mut rows = self
            .queue
            .list(
                function,
                &TaskFilter {
                    limit: filter.limit + 1,
                    ..filter.clone()
                },
            )
            .map_err(AsyncError::Store)?;
        let next = (rows.len() > filter.limit).then(|| {
            rows.truncate(filter.limit);
            rows.last().map(|(seq, _)| seq.to_string())
        });
        let tasks = rows
            .iter()
            .map(|(_, r)| task_json(r, &self.settings, include_payload))
            .collect();
        Ok((tasks, next.flatten()))
    }

    /// StopAsyncTask: an enqueued task stops at once, a running one is cancelled.
    pub async fn stop_task(
        &self,
        function: &str,
        task_id: &str,
    ) -> Result<Option<String>, AsyncError> {
        let status = self
            .queue
            .stop(function, task_id, self.now_ms())
            .await
            .map_err(AsyncError::Store)?;
        if status.as_deref() == Some("Stopping") {
            let cancel = self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(task_id);
            if let Some(cancel) = cancel {
                let _ = cancel.send(());
            }
        }
        Ok(status)
    }
}

/// `fcx_async_queue_depth` and `fcx_async_oldest_event_age_seconds`, read from the queue at
/// scrape time.
struct Backlog(std::sync::Weak<dyn TaskQueue>);

impl std::fmt::Debug for Backlog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backlog")
    }
}

impl fcx_metrics::prometheus_client::collector::Collector for Backlog {
    fn encode(
        &self,
        mut encoder: fcx_metrics::prometheus_client::encoding::DescriptorEncoder,
    ) -> std::fmt::Result {
        use fcx_metrics::prometheus_client::encoding::EncodeMetric;
        use fcx_metrics::prometheus_client::metrics::gauge::ConstGauge;
        use fcx_metrics::prometheus_client::registry::Unit;

        let Some(queue) = self.0.upgrade() else {
            return Ok(());
        };
        let Ok((depth, oldest)) = queue.backlog() else {
            return Ok(());
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
        let depth = ConstGauge::new(depth as i64);
        depth.encode(encoder.encode_descriptor(
            "fcx_async_queue_depth",
            "Async invocations waiting or running (Enqueued, Retrying, Running)",
            None,
            depth.metric_type(),
        )?)?;
        let age = ConstGauge::new(age);
        age.encode(encoder.encode_descriptor(
            "fcx_async_oldest_event_age",
            "Age of the oldest async invocation still waiting or running",
            Some(&Unit::Seconds),
            age.metric_type(),
        )?)
    }
}
