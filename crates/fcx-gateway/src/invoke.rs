//! InvokeFunction: `POST /2023-03-30/functions/{name}/invocations` and the FC 2.0 forms.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fcx_protocol::{headers, limits, logs, ApiFlavor, FcError};
use fcx_scheduler::{CallContext, InvokeRequest, InvokeResponse};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};

use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::{new_request_id, App};

pub async fn invoke_fc3(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // Taking the request whole avoids copying its headers (the HeaderMap extractor clones).
    let (parts, body) = request.into_parts();
    let qualifier = query.get("qualifier").cloned();
    invoke(
        &app,
        ApiFlavor::Fc3,
        &name,
        qualifier,
        None,
        &parts.headers,
        body,
    )
    .await
}

/// `/2016-08-15/services/{service}[.{qualifier}]/functions/{name}/invocations` and
/// `/2021-04-06/services/{service}/functions/{name}/invocations`.
pub async fn invoke_fc2(
    State(app): State<Arc<App>>,
    Path((service, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let req_headers = &parts.headers;
    let (service, qualifier) = match service.split_once('.') {
        Some((s, q)) => (s.to_owned(), Some(q.to_owned())),
        None => (service, query.get("qualifier").cloned()),
    };
    invoke(
        &app,
        ApiFlavor::Fc2,
        &name,
        qualifier,
        Some(service),
        req_headers,
        body,
    )
    .await
}

async fn invoke(
    app: &App,
    flavor: ApiFlavor,
    name: &str,
    qualifier: Option<String>,
    service_name: Option<String>,
    req_headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, flavor, &rid);
    let qualifier = qualifier.unwrap_or_else(|| "LATEST".into());
    // LATEST, a version id, or an alias (weighted: the version is drawn per request).
    let version = crate::versions::resolve(app, name, &qualifier).map_err(fail)?;
    let header = |n: &str| req_headers.get(n).and_then(|v| v.to_str().ok());
    let asynchronous = match header(headers::INVOCATION_TYPE) {
        None | Some("Sync") | Some("sync") => false,
        Some("Async") | Some("async") => true,
        Some(other) => {
            return Err(fail(
                FcError::invalid_argument(format!(
                    "{}: must be Sync or Async, got '{other}'",
                    headers::INVOCATION_TYPE
                ))
                .with_detail("Field", headers::INVOCATION_TYPE),
            ))
        }
    };
    let tail_log = match header(headers::LOG_TYPE) {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(fail(
                FcError::invalid_argument(format!(
                    "{}: must be None or Tail, got '{other}'",
                    headers::LOG_TYPE
                ))
                .with_detail("Field", headers::LOG_TYPE),
            ))
        }
    };
    if asynchronous {
        let task_id = header(ASYNC_TASK_ID)
            .or(header(FC2_ASYNC_TASK_ID))
            .map(str::to_owned);
        // The queue keeps the resolved version: a retry runs what the first attempt ran.
        let resolved = version.as_deref().unwrap_or("LATEST");
        return accept_async(app, flavor, name, resolved, task_id, body, rid).await;
    }
    let payload = streamed_payload(req_headers, body).map_err(fail)?;
    let req = InvokeRequest {
        context: CallContext {
            request_id: rid.clone(),
            qualifier,
            tail_log,
            service_name,
        },
        payload,
    };
    let resp = app
        .scheduler
        .invoke_version(name, version.as_deref(), req)
        .await
        .map_err(|e| ApiError::new(e, flavor, &rid))?;
    Ok(respond(&rid, resp))
}

/// Caller-chosen async task id (FC 3.0) and its FC 2.0 spelling.
const ASYNC_TASK_ID: &str = "x-fc-async-task-id";
const FC2_ASYNC_TASK_ID: &str = "x-fc-stateful-async-invocation-id";

/// `x-fc-invocation-type: Async`: the event (≤ 128 KB) is committed to the durable queue
/// before the 202 is sent.
async fn accept_async(
    app: &App,
    flavor: ApiFlavor,
    name: &str,
    qualifier: &str,
    task_id: Option<String>,
    body: Body,
    rid: String,
) -> Result<Response, ApiError> {
    let fail = |e| ApiError::new(e, flavor, &rid);
    if let Some(id) = &task_id {
        fcx_model::async_config::validate_task_id(id).map_err(|e| {
            fail(FcError::invalid_argument(e.to_string()).with_detail("Field", e.field))
        })?;
    }
    if !app.scheduler.has_function(name) {
        return Err(fail(FcError::function_not_found(name)));
    }
    let payload = read_limited(body, limits::ASYNC_PAYLOAD_MAX)
        .await
        .map_err(fail)?;
    let accepted = app
        .asyncs
        .enqueue(name, qualifier, payload.to_vec(), rid.clone(), task_id)
        .await
        .map_err(|e| ApiError::new(e, flavor, &rid))?;
    let mut r = StatusCode::ACCEPTED.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&accepted.request_id) {
        h.insert(headers::REQUEST_ID, v);
    }
    if let Some(id) = accepted
        .task_id
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        h.insert(ASYNC_TASK_ID, id.clone());
        if flavor == ApiFlavor::Fc2 {
            h.insert(FC2_ASYNC_TASK_ID, id);
        }
    }
    Ok(r)
}

/// The event as a stream with the 32 MB limit enforced as it flows; a declared length over
/// the limit is refused before anything is read.
fn streamed_payload(req_headers: &HeaderMap, body: Body) -> Result<fcx_runtime::Body, FcError> {
    let declared = req_headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits::SYNC_PAYLOAD_MAX as u64) {
        return Err(FcError::entity_too_large(limits::SYNC_PAYLOAD_MAX));
    }
    Ok(Limited::new(body, limits::SYNC_PAYLOAD_MAX)
        .map_err(fcx_runtime::body::BoxError::from)
        .boxed_unsync())
}

fn respond(rid: &str, resp: InvokeResponse) -> Response {
    let mut r = (StatusCode::OK, Body::new(resp.body)).into_response();
    let h = r.headers_mut();
    let content_type = resp
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(http::header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert(headers::REQUEST_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&resp.instance_id) {
        h.insert(headers::INSTANCE_ID, v);
    }
    if let Some(t) = resp.error_type {
        h.insert(headers::ERROR_TYPE, HeaderValue::from_static(t));
    }
    if let Some(log) = resp.log_tail {
        let tail = logs::tail(&log, limits::LOG_TAIL_MAX);
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            h.insert(headers::LOG_RESULT, v);
        }
    }
    r
}
