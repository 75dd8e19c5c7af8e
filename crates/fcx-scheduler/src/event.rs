//! Non-web-server mode: each invocation runs the function's command once with the event in
//! `FC_CUSTOM_CONTAINER_EVENT`; exit code 0 is success and stdout is the result.

use std::sync::Arc;
use std::time::Duration;

use fcx_protocol::limits::{self, EVENT_ENV_PAYLOAD_MAX};
use fcx_protocol::outcome;
use fcx_runtime::body::{self, BodyError};

use crate::pool::Pool;
use crate::{launch, CallFacts, InvokeRequest, InvokeResponse, Scheduler, SchedulerError};

/// How many log lines a failed run's error body carries.
const ERROR_LOG_LINES: usize = 20;

pub async fn invoke(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    req: InvokeRequest,
) -> Result<InvokeResponse, SchedulerError> {
    let InvokeRequest {
        context: req,
        payload,
    } = req;
    let payload = body::collect(payload).await.map_err(|e| match e {
        BodyError::TooLarge => SchedulerError::PayloadTooLarge {
            limit: limits::SYNC_PAYLOAD_MAX,
        },
        BodyError::Broken(m) => SchedulerError::PayloadUnreadable(m),
    })?;
    check_event(&payload)?;
    // Each run is an instance of its own and counts against the server's instance cap.
    let _ticket = sched.budget.take()?;
    let deployed = &pool.deployed;
    let f = &deployed.function;
    let (backend, spec) = launch::spec(sched, deployed).await?;
    let timeout = Duration::from_secs(f.timeout.into());
    let started = std::time::Instant::now();
    let run =
        launch::run_event(backend.as_ref(), &spec, &payload, timeout, &req.request_id).await?;
    let facts = |function_error| CallFacts {
        function_error,
        // Every run starts its own process.
        cold_start: true,
        duration: started.elapsed(),
        max_memory_mb: None,
        code_checksum: pool.code_checksum.clone(),
        streamed: false,
    };
    let tail = req.tail_log.then(|| run.log.clone());
    let failure = match run.exit {
        Some(exit) if exit.success() => None,
        Some(exit @ fcx_runtime::ExitReason::OutOfMemory(_)) => Some((
            "MemoryLimitExceeded",
            format!("Process exited with {exit} before completing request"),
        )),
        Some(exit) => Some((
            "ProcessExitError",
            format!("Process exited with {exit} before completing request"),
        )),
        None => Some(("FunctionTimeout", outcome::timeout_message(f.timeout))),
    };
    Ok(match failure {
        None => InvokeResponse {
            body: body::full(run.stdout),
            content_type: None,
            instance_id: run.instance_id,
            instance_header: None,
            error_type: None,
            log_tail: tail,
            facts: facts(None),
        },
        Some((error_type, message)) => InvokeResponse {
            body: body::full(error_body(error_type, &message, &run.log)),
            content_type: Some(http::HeaderValue::from_static("application/json")),
            instance_id: run.instance_id,
            instance_header: None,
            error_type: Some(fcx_protocol::headers::UNHANDLED_INVOCATION_ERROR),
            log_tail: tail,
            facts: facts(Some(error_type)),
        },
    })
}

/// The kernel passes the event as one environment string: no NUL bytes, bounded length.
fn check_event(payload: &[u8]) -> Result<(), SchedulerError> {
    if payload.contains(&0) {
        return Err(SchedulerError::EventHasNul);
    }
    if payload.len() > EVENT_ENV_PAYLOAD_MAX {
        return Err(SchedulerError::EventTooLarge {
            len: payload.len(),
            limit: EVENT_ENV_PAYLOAD_MAX,
        });
    }
    Ok(())
}

/// `{"errorMessage","errorType","stackTrace"}` with the run's last log lines as the trace.
fn error_body(error_type: &str, message: &str, log: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(log);
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(ERROR_LOG_LINES)..];
    let mut body: serde_json::Value =
        serde_json::from_slice(&outcome::function_error_body(error_type, message))
            .unwrap_or_default();
    body["stackTrace"] = serde_json::json!(last);
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_oversized_events_are_refused() {
        assert!(check_event(b"a\0b").is_err());
        assert!(check_event(&vec![b'x'; EVENT_ENV_PAYLOAD_MAX]).is_ok());
        let e = check_event(&vec![b'x'; EVENT_ENV_PAYLOAD_MAX + 1]).unwrap_err();
        assert!(e.to_string().contains(&EVENT_ENV_PAYLOAD_MAX.to_string()));
    }
}
