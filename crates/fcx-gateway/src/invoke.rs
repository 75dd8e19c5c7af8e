//! InvokeFunction: `POST /2023-03-30/functions/{name}/invocations` and the FC 2.0 forms. The
//! hot path: headers and qualifier are checked here, the control plane resolves the qualifier
//! and runs the call (or queues it); the body stays a stream.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fcx_control::invoke::{AsyncInvocation, BoxError, CallContext, InvokeRequest, InvokeResponse};
use fcx_control::{ControlPlane, SchedulerError};
use fcx_protocol::{headers, limits, logs, ApiFlavor, FcError};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use tracing::field::Empty;
use tracing::Instrument;

use crate::body::read_limited;
use crate::error::ApiError;
use crate::peer::FromNode;
use crate::reply::Api;
use crate::trace::{Trace, TARGET};

pub async fn invoke_fc3(
    State(control): State<Arc<ControlPlane>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    // Taking the request whole avoids copying its headers (the HeaderMap extractor clones).
    let (mut parts, body) = request.into_parts();
    // The route is `/2023-03-30/functions/{functionName}/invocations`: the name is read in
    // place; the extractors run only when there is something to decode.
    // A plain name is borrowed from the URI (no copy); only a decoded one is owned.
    let decoded = match crate::fast::invoked_function(parts.uri.path()) {
        Some(_) => None,
        None => match Path::<String>::from_request_parts(&mut parts, &control).await {
            Ok(Path(name)) => Some(name),
            Err(rejection) => return Ok(rejection.into_response()),
        },
    };
    let name = match &decoded {
        Some(name) => name.as_str(),
        None => crate::fast::invoked_function(parts.uri.path()).unwrap_or_default(),
    };
    let qualifier = match parts.uri.query() {
        None => None,
        Some(_) => match Query::<HashMap<String, String>>::try_from_uri(&parts.uri) {
            Ok(Query(mut query)) => query.remove("qualifier"),
            Err(rejection) => return Ok(rejection.into_response()),
        },
    };
    let call = Call {
        api: Api::new(ApiFlavor::Fc3),
        name,
        service_name: None,
        headers: &parts.headers,
        forwardable: forwardable(&control, &parts),
        method: &parts.method,
        uri: &parts.uri,
        started,
    };
    call.run(&control, qualifier, body).await
}

/// `/2016-08-15/services/{service}[.{qualifier}]/functions/{name}/invocations` and
/// `/2021-04-06/services/{service}/functions/{name}/invocations`.
pub async fn invoke_fc2(
    State(control): State<Arc<ControlPlane>>,
    Path((service, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (service, qualifier) = match service.split_once('.') {
        Some((s, q)) => (s.to_owned(), Some(q.to_owned())),
        None => (service, query.get("qualifier").cloned()),
    };
    let call = Call {
        api: Api::new(ApiFlavor::Fc2),
        name: &name,
        service_name: Some(service),
        headers: &parts.headers,
        forwardable: forwardable(&control, &parts),
        method: &parts.method,
        uri: &parts.uri,
        started,
    };
    call.run(&control, qualifier, body).await
}

/// Whether this request may go to another node when this one has no capacity: forwarding
/// is on (`--forward`) and no node forwarded it here already (one hop at most).
fn forwardable(control: &ControlPlane, parts: &http::request::Parts) -> bool {
    control.forwards() && parts.extensions.get::<FromNode>().is_none()
}

/// Caller-chosen async task id (FC 3.0) and its FC 2.0 spelling.
const ASYNC_TASK_ID: &str = "x-fc-async-task-id";
const FC2_ASYNC_TASK_ID: &str = "x-fc-stateful-async-invocation-id";

/// One invocation request, parsed.
struct Call<'a> {
    api: Api,
    name: &'a str,
    /// FC 2.0 service name, passed on as `x-fc-service-name`.
    service_name: Option<String>,
    headers: &'a HeaderMap,
    /// See [`forwardable`].
    forwardable: bool,
    method: &'a http::Method,
    uri: &'a http::Uri,
    /// When the request reached the handler (end-to-end latency starts here).
    started: Instant,
}

impl Call<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A two-valued header: `on` or `off` spellings (absent is off), anything else refused
    /// naming what it takes.
    fn switch(
        &self,
        header: &str,
        on: &[&str],
        off: &[&str],
        takes: &str,
    ) -> Result<bool, ApiError> {
        let value = self.header(header);
        headers::switch(value, on, off).ok_or_else(|| {
            let got = value.unwrap_or_default();
            self.api.fail(
                FcError::invalid_argument(format!("{header}: must be {takes}, got '{got}'"))
                    .with_detail("Field", header),
            )
        })
    }

    /// Refused before it ran (no deployed function reached, or an async event not queued):
    /// counted without a function label.
    fn reject(&self, control: &ControlPlane, e: impl crate::error::ToFc) -> ApiError {
        let err = self.api.fail(e);
        control.metrics().rejected(err.error.code.as_str());
        err
    }

    async fn run(
        self,
        control: &ControlPlane,
        qualifier: Option<String>,
        body: Body,
    ) -> Result<Response, ApiError> {
        let qualifier: Cow<'static, str> = match qualifier {
            Some(q) => Cow::Owned(q),
            None => Cow::Borrowed("LATEST"),
        };
        // LATEST, a version id, or an alias (weighted: the version is drawn per request).
        let version = control
            .resolve(self.name, &qualifier)
            .map_err(|e| self.reject(control, e))?;
        let asynchronous = self.switch(
            headers::INVOCATION_TYPE,
            &["Async", "async"],
            &["Sync", "sync"],
            "Sync or Async",
        )?;
        let tail_log = self.switch(headers::LOG_TYPE, &["Tail"], &["None"], "None or Tail")?;
        if asynchronous {
            // The queue keeps the resolved version: a retry runs what the first attempt ran.
            let resolved = version.as_deref().unwrap_or("LATEST");
            // Boxed, as the forward below: the sync call's future stays small.
            return Box::pin(self.accept_async(control, resolved, body)).await;
        }
        // Kept whole to send on if this node turns out to have no capacity (a signed
        // request's body was read whole already).
        let (kept, body) = match self.forwardable {
            true => {
                let bytes = read_limited(body, limits::SYNC_PAYLOAD_MAX)
                    .await
                    .map_err(|e| self.reject(control, e))?;
                (Some(bytes.clone()), Body::from(bytes))
            }
            false => (None, body),
        };
        let payload = streamed_payload(self.headers, body).map_err(|e| self.reject(control, e))?;
        let trace = Trace::from_headers(self.headers);
        let span = tracing::debug_span!(
            target: TARGET,
            "invoke",
            request_id = %self.api.rid(),
            function = %self.name,
            qualifier = %qualifier,
            version = version.as_deref().unwrap_or("LATEST"),
            trace_id = Empty,
            instance = Empty,
            cold_start = Empty,
        );
        if !span.is_disabled() {
            span.record("trace_id", trace.trace_id_hex());
            trace.adopt(&span);
        }
        let forwarded = trace.forward(&span);
        let traceparent = forwarded.traceparent.clone();
        let request = InvokeRequest {
            context: CallContext {
                request_id: self.api.rid().to_owned(),
                qualifier,
                tail_log,
                service_name: self.service_name.clone(),
                trigger: None,
                started: self.started,
                trace: Some(forwarded),
            },
            payload,
        };
        // Wrapping the call in a disabled span would only move its (large) future; each
        // branch makes its own, so the two never take room side by side.
        let invoked = if span.is_disabled() {
            control.invoke(self.name, version.as_deref(), request).await
        } else {
            control
                .invoke(self.name, version.as_deref(), request)
                .instrument(span.clone())
                .await
        };
        let resp = match invoked {
            Ok(resp) => resp,
            // No room here: --max-instances, or this node's share of the cluster's cap.
            Err(
                e @ (SchedulerError::InstanceLimit { .. }
                | SchedulerError::ClusterInstanceLimit { .. }),
            ) if kept.is_some() => {
                let body = kept.unwrap_or_default();
                return Box::pin(self.forward(control, body, &e))
                    .await
                    .ok_or(self.api.fail(e));
            }
            // No deployed version was reached: the scheduler counted nothing.
            Err(
                e @ (SchedulerError::FunctionNotFound { .. }
                | SchedulerError::VersionNotFound { .. }),
            ) => return Err(self.reject(control, e)),
            Err(e) => return Err(self.api.fail(e)),
        };
        if !span.is_disabled() {
            span.record("instance", resp.instance_id.as_str());
            span.record("cold_start", resp.facts.cold_start);
        }
        let mut r = respond(&self.api, resp);
        r.headers_mut()
            .insert(headers::name::TRACEPARENT, traceparent);
        Ok(r)
    }

    /// This node cannot start an instance: the request goes to a node that could at its last
    /// heartbeat, and its answer is passed on. `None` when there is none or it cannot be
    /// reached (this node's own refusal stands).
    async fn forward(
        &self,
        control: &ControlPlane,
        body: bytes::Bytes,
        refused: &SchedulerError,
    ) -> Option<Response> {
        let peer = control.forward_target(self.name)?;
        match crate::peer::forward(control, &peer, (self.method, self.uri, self.headers), body)
            .await
        {
            Ok(resp) => {
                tracing::debug!(function = self.name, node = %peer.id, %refused, "forwarded: no capacity here");
                Some(resp)
            }
            Err(e) => {
                tracing::warn!(function = self.name, "cannot forward a request: {e}");
                None
            }
        }
    }

    /// `x-fc-invocation-type: Async`: the event (≤ 128 KB) is committed to the durable queue
    /// before the 202 is sent.
    async fn accept_async(
        self,
        control: &ControlPlane,
        qualifier: &str,
        body: Body,
    ) -> Result<Response, ApiError> {
        let api = &self.api;
        let task_id = self
            .header(ASYNC_TASK_ID)
            .or(self.header(FC2_ASYNC_TASK_ID))
            .map(str::to_owned);
        control
            .accepts_async(self.name, task_id.as_deref())
            .map_err(|e| self.reject(control, e))?;
        let payload = read_limited(body, limits::ASYNC_PAYLOAD_MAX)
            .await
            .map_err(|e| self.reject(control, e))?;
        let job = AsyncInvocation {
            function: self.name,
            qualifier,
            payload: payload.to_vec(),
            request_id: api.rid().to_owned(),
            task_id,
            origin: Default::default(),
        };
        let accepted = control
            .enqueue(job)
            .await
            .map_err(|e| self.reject(control, e))?;
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
            if api.flavor() == ApiFlavor::Fc2 {
                h.insert(FC2_ASYNC_TASK_ID, id);
            }
        }
        Ok(r)
    }
}

/// The event as a stream with the 32 MB limit enforced as it flows; a declared length over
/// the limit is refused before anything is read.
fn streamed_payload(
    req_headers: &HeaderMap,
    body: Body,
) -> Result<fcx_control::invoke::Body, FcError> {
    let declared = req_headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits::SYNC_PAYLOAD_MAX as u64) {
        return Err(FcError::entity_too_large(limits::SYNC_PAYLOAD_MAX));
    }
    Ok(Limited::new(body, limits::SYNC_PAYLOAD_MAX)
        .map_err(BoxError::from)
        .boxed_unsync())
}

/// Most headers an invocation's answer carries (see [`respond`]): the map is made at its
/// final size, so no insert grows (reallocates and rehashes) it.
const ANSWER_HEADERS: usize = 10;

fn respond(api: &Api, resp: InvokeResponse) -> Response {
    let mut r = Response::new(Body::new(resp.body));
    *r.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
    let h = r.headers_mut();
    let content_type = resp
        .content_type
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(http::header::CONTENT_TYPE, content_type);
    // The slot's prebuilt value when there is one: a clone, not a copy of the id.
    let instance = resp
        .instance_header
        .or_else(|| HeaderValue::from_str(&resp.instance_id).ok());
    if let Some(v) = instance {
        h.insert(headers::name::INSTANCE_ID, v);
    }
    if let Some(t) = resp.error_type {
        h.insert(headers::name::ERROR_TYPE, HeaderValue::from_static(t));
    }
    let facts = &resp.facts;
    h.insert(
        headers::name::INVOCATION_DURATION,
        headers::small_number(facts.duration.as_millis() as u64),
    );
    if let Some(mb) = facts.max_memory_mb {
        h.insert(headers::name::MAX_MEMORY_USAGE, headers::small_number(mb));
    }
    if let Some(sum) = &facts.code_checksum {
        h.insert(headers::name::CODE_CHECKSUM, sum.clone());
    }
    if let Some(log) = resp.log_tail {
        let tail = logs::tail(&log, limits::LOG_TAIL_MAX);
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            h.insert(headers::name::LOG_RESULT, v);
        }
    }
    api.with_id(r)
}
