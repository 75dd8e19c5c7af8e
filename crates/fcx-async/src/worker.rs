//! The workers: lease runnable tasks, run each through the scheduler, record the outcome
//! (success, retry with backoff, failure, expiry, stop) and deliver destination records.

use std::sync::Arc;
use std::time::Duration;

use fcx_runtime::body;
use fcx_scheduler::{CallContext, HttpInvokeRequest, InvokeRequest, SchedulerError};
use fcx_store::queue::{Finish, Leased};
use serde_json::json;
use tokio::sync::{oneshot, Semaphore};

use crate::destination;
use crate::origin::{HttpRequestShape, Origin};
use crate::{AsyncError, AsyncService};

/// How often an idle worker loop looks for work in a queue other nodes fill too.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(50);
/// The longest an idle worker loop of a queue only this node fills waits without looking:
/// enqueues and ended runs wake it, and it knows when the next retry is due, so this only
/// bounds what a wall-clock step could delay.
pub(crate) const IDLE_MAX: Duration = Duration::from_secs(1);
/// Retry delay of a throttled run (it does not consume an attempt).
const THROTTLE_DELAY_MS: i64 = 500;

pub async fn run(svc: Arc<AsyncService>) {
    let slots = Arc::new(Semaphore::new(svc.settings.workers.max(1)));
    while !svc.is_stopping() {
        let free = slots.available_permits();
        if free == 0 {
            // Wait until a run ends.
            if let Ok(p) = Arc::clone(&slots).acquire_owned().await {
                drop(p);
            }
            continue;
        }
        let lease_ms = svc.queue.lease_policy().lease_ms;
        let leased = match svc.queue.lease(svc.now_ms(), lease_ms, free).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot lease async invocations");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if leased.is_empty() {
            let wait = idle_wait(&svc).await;
            let _ = tokio::time::timeout(wait, svc.wake.notified()).await;
            continue;
        }
        for task in leased {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let svc = Arc::clone(&svc);
            let seq = task.seq;
            svc.leases().insert(seq);
            tokio::spawn(async move {
                run_task(&svc, task).await;
                svc.leases().remove(&seq);
                drop(permit);
                // Its retry may be due before the loop's idle wait ends.
                svc.wake.notify_one();
            });
        }
    }
}

/// How long the idle loop waits for a wake-up before it leases again. A queue only this
/// node fills is woken by every enqueue and every ended run, so it waits until the next
/// retry or lease expiry is due (polling 20 times a second was a write transaction each
/// time on an idle server); a shared queue is polled.
pub(crate) async fn idle_wait(svc: &Arc<AsyncService>) -> Duration {
    if !svc.queue.lease_policy().filled_here {
        return IDLE_POLL;
    }
    let queue = Arc::clone(&svc.queue);
    let due = tokio::task::spawn_blocking(move || queue.next_due_ms()).await;
    match due {
        Ok(Ok(Some(due_ms))) => {
            let ms = due_ms.saturating_sub(svc.now_ms()).max(0) as u64;
            Duration::from_millis(ms).min(IDLE_MAX)
        }
        Ok(Ok(None)) => IDLE_MAX,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read when the next async task is due");
            IDLE_POLL
        }
        Err(_) => IDLE_POLL,
    }
}

/// Renews the leases of the tasks running here every `every_ms`, so a shared queue's short
/// leases last as long as the runs, and expire soon after this node dies.
pub async fn renew(svc: Arc<AsyncService>, every_ms: i64) {
    let every = Duration::from_millis(every_ms.max(1) as u64);
    while !svc.is_stopping() {
        tokio::time::sleep(every).await;
        let seqs: Vec<i64> = svc.leases().iter().copied().collect();
        if seqs.is_empty() {
            continue;
        }
        let until = svc.now_ms() + svc.queue.lease_policy().lease_ms;
        if let Err(e) = svc.queue.renew(seqs, until).await {
            tracing::warn!(error = %e, "cannot renew async leases (another node may run them again)");
        }
    }
}

/// What one run of a task came to.
enum RunResult {
    Succeeded { instance_id: String, body: Vec<u8> },
    FunctionError { instance_id: String, body: Vec<u8> },
    Platform(AsyncError),
    Stopped,
}

async fn run_task(svc: &AsyncService, t: Leased) {
    let config = svc.config(&t.function);
    let now = svc.now_ms();
    let age_ms = now - t.created_ms;
    if t.attempts == 0 {
        let waited = std::time::Duration::from_millis(age_ms.max(0) as u64);
        svc.settings
            .metrics
            .counters
            .async_queue_wait
            .observe(waited);
    }
    if age_ms > i64::from(config.max_age_secs()) * 1000 {
        let message = format!(
            "event expired: {age_ms} ms old, older than maxAsyncEventAgeInSeconds ({})",
            config.max_age_secs()
        );
        finish(
            svc,
            &t,
            "Expired",
            t.attempts,
            now,
            None,
            Some(message),
            None,
            None,
        )
        .await;
        return;
    }
    let (cancel_tx, cancel_rx) = oneshot::channel();
    svc.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(t.task_id.clone(), cancel_tx);
    let result = tokio::select! {
        r = invoke(svc, &t) => r,
        _ = cancel_rx => RunResult::Stopped,
    };
    svc.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&t.task_id);
    if svc.is_stopping() {
        return;
    }
    let now = svc.now_ms();
    match result {
        RunResult::Stopped => {
            finish(
                svc,
                &t,
                "Stopped",
                t.attempts,
                now,
                None,
                Some("stopped by user".into()),
                None,
                None,
            )
            .await;
        }
        RunResult::Succeeded { instance_id, body } => {
            let dest = config
                .destination_config
                .as_ref()
                .and_then(|d| d.on_success.as_ref());
            let dest_status = match dest {
                Some(d) => Some(
                    destination::deliver(svc, &d.destination, &t, "Success", &body, t.attempts + 1)
                        .await,
                ),
                None => None,
            };
            finish(
                svc,
                &t,
                "Succeeded",
                t.attempts,
                now,
                Some(instance_id),
                None,
                Some(body),
                dest_status,
            )
            .await;
        }
        RunResult::Platform(AsyncError::Run(e)) if e.is_throttle() => {
            // Throttled: try again soon, without consuming an attempt.
            let text = (svc.settings.error_text)(&AsyncError::Run(e));
            svc.settings.metrics.async_attempt(&t.function, "throttled");
            retry(
                svc,
                &t,
                t.attempts,
                now + jitter(THROTTLE_DELAY_MS),
                text,
                None,
            )
            .await;
        }
        RunResult::Platform(AsyncError::Run(e @ SchedulerError::FunctionNotFound { .. })) => {
            let text = (svc.settings.error_text)(&AsyncError::Run(e));
            finish(
                svc,
                &t,
                "Invalid",
                t.attempts,
                now,
                None,
                Some(text),
                None,
                None,
            )
            .await;
        }
        RunResult::Platform(e) => {
            let text = (svc.settings.error_text)(&e);
            failed_attempt(svc, &t, &config, text, None, Vec::new()).await
        }
        RunResult::FunctionError { instance_id, body } => {
            let message = format!(
                "UnhandledInvocationError: {}",
                String::from_utf8_lossy(&body[..body.len().min(1024)])
            );
            failed_attempt(svc, &t, &config, message, Some(instance_id), body).await;
        }
    }
}

async fn invoke(svc: &AsyncService, t: &Leased) -> RunResult {
    let origin = Origin::decode(t.origin.as_deref());
    let context = CallContext {
        request_id: t.request_id.clone(),
        qualifier: t.qualifier.clone().into(),
        tail_log: false,
        service_name: None,
        trigger: origin.trigger.as_deref().map(Into::into),
        started: std::time::Instant::now(),
        trace: None,
    };
    let version = (t.qualifier != "LATEST").then_some(t.qualifier.as_str());
    if let Some(http) = origin.http {
        return invoke_http(svc, t, context, http, version).await;
    }
    let req = InvokeRequest {
        context,
        payload: body::full(t.payload.clone()),
    };
    let resp = match svc
        .scheduler
        .invoke_version(&t.function, version, req)
        .await
    {
        Ok(r) => r,
        Err(e) => return RunResult::Platform(AsyncError::Run(e)),
    };
    let failed = resp.error_type.is_some();
    let bytes = match body::collect(resp.body).await {
        Ok(b) => b.to_vec(),
        Err(e) => return RunResult::Platform(AsyncError::ResponseBroken(e)),
    };
    if failed {
        RunResult::FunctionError {
            instance_id: resp.instance_id,
            body: bytes,
        }
    } else {
        RunResult::Succeeded {
            instance_id: resp.instance_id,
            body: bytes,
        }
    }
}

/// A queued HTTP request: sent as it came in, with the payload as its body; a 2xx or 3xx
/// answer (or `x-fc-status: 200`) is a success, as for events.
async fn invoke_http(
    svc: &AsyncService,
    t: &Leased,
    context: CallContext,
    shape: HttpRequestShape,
    version: Option<&str>,
) -> RunResult {
    let mut request = http::Request::new(body::full(t.payload.clone()));
    *request.method_mut() = shape.method.parse().unwrap_or(http::Method::POST);
    *request.uri_mut() = shape
        .uri
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    for (name, value) in &shape.headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            request.headers_mut().append(n, v);
        }
    }
    let req = HttpInvokeRequest {
        context,
        request,
        base_path: shape.base_path,
        client_upgrade: None,
    };
    let resp = match svc.scheduler.http_invoke(&t.function, version, req).await {
        Ok(r) => r,
        Err(e) => return RunResult::Platform(AsyncError::Run(e)),
    };
    let status = resp.response.status().as_u16();
    let x_fc_status = resp
        .response
        .headers()
        .get(fcx_protocol::headers::STATUS)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match body::collect(resp.response.into_body()).await {
        Ok(b) => b.to_vec(),
        Err(e) => return RunResult::Platform(AsyncError::ResponseBroken(e)),
    };
    let outcome = fcx_protocol::classify_invoke_response(status, x_fc_status.as_deref());
    if resp.error_type.is_some() || outcome == fcx_protocol::Outcome::Failure {
        RunResult::FunctionError {
            instance_id: resp.instance_id,
            body: bytes,
        }
    } else {
        RunResult::Succeeded {
            instance_id: resp.instance_id,
            body: bytes,
        }
    }
}

async fn failed_attempt(
    svc: &AsyncService,
    t: &Leased,
    config: &fcx_model::async_config::AsyncConfig,
    message: String,
    instance_id: Option<String>,
    body: Vec<u8>,
) {
    let attempts = t.attempts + 1;
    let now = svc.now_ms();
    if attempts > config.retry_attempts() {
        let dest = config
            .destination_config
            .as_ref()
            .and_then(|d| d.on_failure.as_ref());
        let dest_status = match dest {
            Some(d) => Some(
                destination::deliver(
                    svc,
                    &d.destination,
                    t,
                    "UnhandledInvocationError",
                    &body,
                    attempts,
                )
                .await,
            ),
            None => None,
        };
        finish(
            svc,
            t,
            "Failed",
            attempts,
            now,
            instance_id,
            Some(message),
            Some(body),
            dest_status,
        )
        .await;
    } else {
        let base = svc.settings.retry_base.as_millis() as i64;
        let delay = base.saturating_mul(1 << (attempts - 1).min(16));
        svc.settings.metrics.async_attempt(&t.function, "retrying");
        retry(svc, t, attempts, now + jitter(delay), message, instance_id).await;
    }
}

/// `ms` ± 25 %, so retries of many failed events do not arrive together.
fn jitter(ms: i64) -> i64 {
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as i64; // 0..999
    ms + ms * (r - 500) / 2000
}

async fn retry(
    svc: &AsyncService,
    t: &Leased,
    attempts: u32,
    next_run_ms: i64,
    message: String,
    instance_id: Option<String>,
) {
    record(
        svc,
        Finish {
            seq: t.seq,
            status: "Retrying",
            attempts,
            next_run_ms,
            ended_ms: None,
            instance_id,
            error: Some(message.clone()),
            return_payload: None,
            destination_status: None,
            event: json!({"status": "Retrying", "timestamp": svc.now_ms(), "eventDetail": message}),
        },
    )
    .await;
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    svc: &AsyncService,
    t: &Leased,
    status: &'static str,
    attempts: u32,
    now: i64,
    instance_id: Option<String>,
    error: Option<String>,
    return_payload: Option<Vec<u8>>,
    destination_status: Option<String>,
) {
    let result = match status {
        "Succeeded" => "succeeded",
        "Failed" => "failed",
        "Expired" => "expired",
        "Invalid" => "invalid",
        "Stopped" => "stopped",
        _ => "other",
    };
    svc.settings.metrics.async_attempt(&t.function, result);
    record(svc, Finish {
        seq: t.seq,
        status,
        attempts,
        next_run_ms: now,
        ended_ms: Some(now),
        instance_id,
        event: json!({"status": status, "timestamp": now, "eventDetail": error.clone().unwrap_or_default()}),
        error,
        return_payload,
        destination_status,
    })
    .await;
}

async fn record(svc: &AsyncService, f: Finish) {
    if let Err(e) = svc.queue.finish(f).await {
        // The lease expires and the task runs again: at-least-once.
        tracing::error!(error = %e, "cannot record an async invocation's outcome");
    }
}
