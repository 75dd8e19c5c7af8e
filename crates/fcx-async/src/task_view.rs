//! A stored task in FC's AsyncTask JSON shape.

use base64::Engine;
use fcx_store::queue::TaskRow;
use serde_json::{json, Value};

use crate::AsyncSettings;

/// Largest `returnPayload` preview (FC: 1 MB).
const RETURN_PREVIEW_MAX: usize = 1024 * 1024;

fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

/// A task as GetAsyncTask / ListAsyncTasks answer it (`taskPayload` only when `include_payload`).
pub fn task_json(r: &TaskRow, s: &AsyncSettings, include_payload: bool) -> Value {
    let arn = format!(
        "acs:fc:{}:{}:functions/{}",
        s.region, s.account_id, r.function
    );
    // Runs so far minus the first one; throttled runs do not count.
    let retried = if r.status == "Succeeded" {
        r.attempts
    } else {
        r.attempts.saturating_sub(1)
    };
    let events: Vec<Value> = r
        .events
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, e)| {
                    let mut e = e.clone();
                    e["eventId"] = json!(i as i64 + 1);
                    e
                })
                .collect()
        })
        .unwrap_or_default();
    let mut v = json!({
        "taskId": r.task_id,
        "requestId": r.request_id,
        "functionArn": arn,
        "qualifier": r.qualifier,
        "status": r.status,
        "alreadyRetriedTimes": retried,
        "startedTime": r.created_ms,
        "events": events,
    });
    if let Some(end) = r.ended_ms {
        v["endTime"] = json!(end);
        v["durationMs"] = json!(end - r.started_ms.unwrap_or(r.created_ms));
    }
    if let Some(i) = &r.instance_id {
        v["instanceId"] = json!(i);
    }
    if let Some(e) = &r.error {
        v["taskErrorMessage"] = json!(e);
    }
    if let Some(p) = &r.return_payload {
        v["returnPayload"] = json!(text(&p[..p.len().min(RETURN_PREVIEW_MAX)]));
    }
    if let Some(d) = &r.destination_status {
        v["destinationStatus"] = json!(d);
    }
    if include_payload {
        v["taskPayload"] = json!(text(&r.payload));
    }
    v
}
