//! Web-server mode: a pooled instance answers `POST /initialize` once and `POST /invoke` per
//! event; its answer, a crash, or a timeout becomes the response or a [`SchedulerError`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use fcx_protocol::headers::control_path;
use fcx_protocol::{limits, outcome, Outcome};
use fcx_runtime::body::{self, Body};
use fcx_runtime::{Backend, CallError, Instance, Marker};
use http_body_util::BodyExt;

use crate::error::Cause;
use crate::lifecycle::{self, HookContext};
use crate::limits::Admission;
use crate::observe::ColdStart;
use crate::pool::{Acquired, Lease, Pool, Slot, StartPermit};
use crate::snapshot;
use crate::stream::{InvocationBody, Observed};
use crate::{
    context, launch, CallContext, CallFacts, InvokeRequest, InvokeResponse, Scheduler,
    SchedulerError,
};
use fcx_metrics::Phase;

/// How long fcx waits for a process whose connection broke to report its exit.
const EXIT_GRACE: Duration = Duration::from_secs(2);

pub async fn invoke(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    req: InvokeRequest,
    admission: Admission,
) -> Result<InvokeResponse, SchedulerError> {
    let InvokeRequest {
        context: req,
        payload,
    } = req;
    let (lease, init_log, cold_start) = match lease(sched, pool, &req).await {
        Ok(leased) => leased,
        Err(Stop::Error(e)) => return Err(e),
        Err(Stop::Respond(r)) => return Ok(r),
    };
    let timeout_secs = pool.deployed.function.timeout;
    let now = tokio::time::Instant::now();
    crate::timer_floor::arm(now);
    let deadline = now + Duration::from_secs(timeout_secs.into());
    let instance = &lease.slot.instance;
    let log = instance.log();
    let mut req = req;
    log.begin(&req.request_id, Marker::Invoke, req.tail_log)
        .await;
    let call_started = Instant::now();
    let id = lease.slot.id_header.clone();
    let call = instance.call(request(pool, &req, control_path::INVOKE, payload, id));
    let resp = match tokio::time::timeout_at(deadline, call).await {
        Err(_) => return Ok(Box::pin(timed_out(pool, &lease, &req, init_log, call_started)).await),
        Ok(Err(CallError::RequestTooLarge)) => {
            log.end(&req.request_id, Marker::Invoke).await;
            return Err(SchedulerError::PayloadTooLarge {
                limit: limits::SYNC_PAYLOAD_MAX,
            });
        }
        Ok(Err(CallError::ClientBody(message))) => {
            // The client's upload broke, not the instance: its half-sent connection is
            // dropped (not pooled), the instance and its other requests carry on.
            log.end(&req.request_id, Marker::Invoke).await;
            return Err(SchedulerError::PayloadUnreadable(message));
        }
        Ok(Err(e)) => {
            let rid = &req.request_id;
            return Err(Box::pin(broken_connection(pool, &lease, rid, Box::new(e))).await);
        }
        Ok(Ok(resp)) => resp,
    };
    let x_fc_status = resp
        .headers()
        .get(fcx_protocol::headers::STATUS)
        .and_then(|v| v.to_str().ok());
    let failed =
        outcome::classify_invoke_response(resp.status().as_u16(), x_fc_status) == Outcome::Failure;
    // Passed on as the instance sent it (a clone of hyper's parsed value shares its
    // buffer: no copy), when it is visible ASCII.
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .filter(|v| v.to_str().is_ok())
        .cloned();
    let error_type = failed.then_some(fcx_protocol::headers::UNHANDLED_INVOCATION_ERROR);
    let instance_id = instance.id.clone();
    let instance_header = lease.slot.id_header.clone();
    let mut facts = CallFacts {
        function_error: error_type,
        cold_start,
        duration: call_started.elapsed(),
        max_memory_mb: lease.slot.memory_peak_mb(),
        code_checksum: pool.code_checksum.clone(),
        streamed: false,
    };
    if !req.tail_log && !failed {
        // The common case streams the answer; the lease and the admission are held until it
        // has been sent, and the metrics are recorded then.
        facts.streamed = true;
        let observed = Observed {
            metrics: Arc::clone(&pool.metrics),
            request_started: req.started,
            call_started,
            cold_start,
        };
        // The request is done with its id: the body takes it for the end marker.
        let rid = std::mem::take(&mut req.request_id);
        let body = InvocationBody::new(
            resp.into_body(),
            lease,
            admission,
            deadline,
            rid,
            timeout_secs,
            observed,
        );
        return Ok(InvokeResponse {
            body: body.boxed_unsync(),
            content_type,
            instance_id,
            instance_header,
            error_type,
            log_tail: None,
            facts,
        });
    }
    // The log tail (a header) is only known once the whole answer is in.
    let bytes = match tokio::time::timeout_at(deadline, body::collect(resp.into_body())).await {
        Err(_) => return Ok(Box::pin(timed_out(pool, &lease, &req, init_log, call_started)).await),
        Ok(Err(e)) => {
            let rid = &req.request_id;
            return Err(Box::pin(broken_connection(pool, &lease, rid, Box::new(e))).await);
        }
        Ok(Ok(bytes)) => bytes,
    };
    let mut tail = init_log.unwrap_or_default();
    tail.extend(log.end(&req.request_id, Marker::Invoke).await);
    facts.duration = call_started.elapsed();
    Ok(InvokeResponse {
        body: body::full(bytes),
        content_type,
        instance_id,
        instance_header,
        error_type,
        log_tail: req.tail_log.then_some(tail),
        facts,
    })
}

/// The function ran past its timeout: the instance may be stuck in user code, so it is
/// replaced, and the caller gets FC's timeout error.
async fn timed_out(
    pool: &Pool,
    lease: &Lease,
    req: &CallContext,
    init_log: Option<Vec<u8>>,
    call_started: Instant,
) -> InvokeResponse {
    let f = &pool.deployed.function;
    let instance = &lease.slot.instance;
    let log = instance.log();
    pool.discard(&lease.slot);
    let message = outcome::timeout_message(f.timeout);
    log.line(&format!("fcx: {message} (request {})", req.request_id));
    let mut tail = init_log.unwrap_or_default();
    tail.extend(log.end(&req.request_id, Marker::Invoke).await);
    let mut resp = function_error(
        instance,
        "FunctionTimeout",
        &message,
        req.tail_log.then_some(tail),
    );
    resp.facts.duration = call_started.elapsed();
    resp.facts.code_checksum = pool.code_checksum.clone();
    resp
}

/// Why an invocation ends before `/invoke` is called.
pub(crate) enum Stop {
    /// A platform error (4xx/5xx).
    Error(SchedulerError),
    /// A function error answered as FC does (a failed initializer).
    Respond(InvokeResponse),
}

impl From<SchedulerError> for Stop {
    fn from(e: SchedulerError) -> Stop {
        Stop::Error(e)
    }
}

/// A warm slot (thawed if it was frozen), or a new instance started and initialized for this
/// request. Returns the initializer's log when one ran, and whether an instance was started.
pub(crate) async fn lease(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    req: &CallContext,
) -> Result<(Lease, Option<Vec<u8>>, bool), Stop> {
    let deadline = tokio::time::Instant::now() + sched.config.start_timeout;
    match pool.acquire(deadline).await {
        None => Err(Stop::Error(SchedulerError::NoInstanceReady {
            function: pool.deployed.function.function_name.clone(),
            start_timeout: sched.config.start_timeout,
        })),
        Some(Acquired::Warm(lease)) => {
            if let Err(source) = lifecycle::thaw_if_frozen(&lease.slot).await {
                pool.discard(&lease.slot);
                return Err(Stop::Error(SchedulerError::Thaw {
                    instance: lease.slot.instance.id.clone(),
                    source,
                }));
            }
            Ok((lease, None, false))
        }
        Some(Acquired::Start(permit)) => {
            let ticket = sched.budget.take()?;
            // Boxed: the cold start's states would otherwise make every warm call's future
            // (and each move of it up the call chain) several KB larger.
            let (backend, instance, init_log) =
                Box::pin(start_instance(sched, pool, req, true)).await?;
            let slot = Slot::new(instance, backend, ticket, false, hook_context(sched, pool));
            // Cgroup files are in memory and a cold start takes milliseconds anyway; later
            // reads happen in the maintenance loop, off the request path.
            slot.refresh_stats();
            match permit.complete(slot) {
                Some(lease) => Ok((lease, init_log, true)),
                None => Err(Stop::Error(SchedulerError::Internal(
                    "started instance was not leased",
                ))),
            }
        }
    }
}

fn hook_context(sched: &Scheduler, pool: &Pool) -> Arc<HookContext> {
    Arc::new(HookContext {
        deployed: Arc::clone(&pool.deployed),
        config: sched.config.clone(),
    })
}

/// The backend and the instance it started, with the initializer's log when one ran.
type Started = (Arc<dyn Backend>, Instance, Option<Vec<u8>>);

/// Unpacks the code (once per package), starts an instance, and runs its initializer. A
/// start for a request (`for_request`) is a cold start: its phases are recorded.
async fn start_instance(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    req: &CallContext,
    for_request: bool,
) -> Result<Started, Stop> {
    let deployed = &pool.deployed;
    let mut cold = ColdStart::default();
    let t = Instant::now();
    let (backend, spec) = launch::spec(sched, deployed).await?;
    let fetch = match deployed.code_zip {
        Some(_) => Phase::Unpack,
        None => Phase::Image,
    };
    cold.add(fetch, t.elapsed());
    let t = Instant::now();
    let plan = snapshot::plan(sched.snapshots.get(), pool, backend.as_ref(), &spec);
    if let Some(plan) = &plan {
        // Restored instances were initialized before their snapshot: no second /initialize.
        if let Some(instance) = plan.restore(pool, backend.as_ref(), &spec).await {
            cold.add(Phase::Ready, t.elapsed());
            if for_request {
                cold.record(&pool.metrics);
            }
            return Ok((backend, instance, None));
        }
    }
    let instance = launch::start(backend.as_ref(), pool, &spec).await?;
    // A pre-created sandbox was made before this start: its creation costs this request nothing.
    let create = instance.created_at.saturating_duration_since(t);
    cold.add(Phase::Create, create);
    cold.add(Phase::Ready, t.elapsed().saturating_sub(create));
    // What the server printed while starting belongs before the first request's marker.
    instance.log().settle().await;
    let init_log = match deployed.function.initializer() {
        Some(hook) => {
            let t = Instant::now();
            let log = initialize(pool, req, &instance, hook.timeout).await?;
            cold.add(Phase::Initialize, t.elapsed());
            Some(log)
        }
        None => None,
    };
    if let Some(plan) = &plan {
        plan.dump(backend.as_ref(), &instance).await;
    }
    if for_request {
        cold.record(&pool.metrics);
    }
    Ok((backend, instance, init_log))
}

/// Starts one provisioned instance (no request waits on it) under `permit`.
pub async fn start_provisioned(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    permit: StartPermit,
) -> Result<(), SchedulerError> {
    let result = async {
        let ticket = sched.budget.take()?;
        let req = CallContext::internal();
        let (backend, instance, _) =
            start_instance(sched, pool, &req, false)
                .await
                .map_err(|s| match s {
                    Stop::Error(e) => e,
                    Stop::Respond(_) => SchedulerError::ProvisionedInitializerFailed,
                })?;
        Ok(Slot::new(
            instance,
            backend,
            ticket,
            true,
            hook_context(sched, pool),
        ))
    }
    .await;
    match result {
        Ok(slot) => {
            permit.complete(slot);
            Ok(())
        }
        Err(e) => {
            // Hold the permit a little, so the maintenance loop does not retry at once.
            tokio::time::sleep(Duration::from_secs(2)).await;
            drop(permit);
            Err(e)
        }
    }
}

/// Calls `POST /initialize` on a new instance. On failure the instance is not used again
/// (the caller drops it, which kills it).
async fn initialize(
    pool: &Arc<Pool>,
    req: &CallContext,
    instance: &Instance,
    timeout_secs: u32,
) -> Result<Vec<u8>, Stop> {
    let log = instance.log();
    let rid = &req.request_id;
    log.begin(rid, Marker::Initialize, req.tail_log).await;
    let call = instance.call_collect(request(
        pool,
        req,
        control_path::INITIALIZE,
        body::empty(),
        http::HeaderValue::from_str(&instance.id).ok(),
    ));
    let result = tokio::time::timeout(Duration::from_secs(timeout_secs.into()), call).await;
    let init_log = log.end(rid, Marker::Initialize).await;
    let failure = match result {
        Err(_) => format!("Function initialization time out after {timeout_secs} seconds"),
        Ok(Err(e)) => {
            return Err(Stop::Error(match instance.wait_exit(EXIT_GRACE).await {
                Some(exit) => SchedulerError::ProcessExited {
                    exit,
                    logs: log.recent(2048),
                    instance_id: None,
                },
                None => SchedulerError::InitializerBroken(e),
            }))
        }
        Ok(Ok(resp)) => {
            let x_fc_status = resp
                .headers()
                .get(fcx_protocol::headers::STATUS)
                .and_then(|v| v.to_str().ok());
            let status = resp.status().as_u16();
            if outcome::classify_invoke_response(status, x_fc_status) == Outcome::Success {
                return Ok(init_log);
            }
            let body = String::from_utf8_lossy(resp.body());
            let body: String = body.chars().take(1024).collect();
            format!("the initializer failed: /initialize answered {status}: {body}")
        }
    };
    instance.kill();
    let tail = req.tail_log.then_some(init_log);
    Err(Stop::Respond(function_error(
        instance,
        "InitializationError",
        &failure,
        tail,
    )))
}

fn function_error(
    instance: &Instance,
    error_type: &'static str,
    message: &str,
    log_tail: Option<Vec<u8>>,
) -> InvokeResponse {
    InvokeResponse {
        body: body::full(outcome::function_error_body(error_type, message)),
        content_type: Some(http::HeaderValue::from_static("application/json")),
        instance_id: instance.id.clone(),
        instance_header: None,
        error_type: Some(fcx_protocol::headers::UNHANDLED_INVOCATION_ERROR),
        log_tail,
        facts: CallFacts {
            function_error: Some(error_type),
            ..CallFacts::default()
        },
    }
}

/// The connection to the instance broke mid-request: a crash (the process exited) or a
/// server that closed the connection. Either way the instance is replaced. The error
/// carries the request's own log lines only (see `InstanceLog::since_begin`).
pub(crate) async fn broken_connection(
    pool: &Pool,
    lease: &Lease,
    rid: &str,
    cause: Cause,
) -> SchedulerError {
    let instance = &lease.slot.instance;
    let exit = instance.wait_exit(EXIT_GRACE).await;
    pool.discard(&lease.slot);
    let log = instance.log();
    log.settle().await;
    let one_at_a_time = pool.deployed.function.instance_concurrency <= 1;
    let logs = log.since_begin(rid, 2048, one_at_a_time);
    log.end(rid, Marker::Invoke).await;
    let instance_id = instance.id.clone();
    match exit {
        Some(exit) => SchedulerError::ProcessExited {
            exit,
            logs,
            instance_id: Some(instance_id),
        },
        None => SchedulerError::ConnectionBroken {
            source: cause,
            logs,
            instance_id,
        },
    }
}

/// The call into the instance: `path` with the context headers, the id header of the
/// instance called (`None`: its id is not header text) and the event as its body.
fn request(
    pool: &Pool,
    req: &CallContext,
    path: &'static str,
    body: Body,
    instance_id: Option<http::HeaderValue>,
) -> http::Request<Body> {
    use hyper::body::Body as _;
    // hyper sets `content-length` itself for a body of known length, last, with a value it
    // allocates; the same header in the same place from the prebuilt values below 1024
    // costs nothing (hyper then frames the body by the value it finds). hyper sends none
    // for a body that is already at its end, so neither does this.
    let length = (!body.is_end_stream())
        .then(|| body.size_hint().exact())
        .flatten();
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = http::Uri::from_static(path);
    let mut headers = context::headers_with_id(&pool.context_headers, req, path, instance_id);
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(n) = length {
        headers.insert(
            http::header::CONTENT_LENGTH,
            fcx_protocol::headers::small_number(n),
        );
    }
    *request.headers_mut() = headers;
    request
}
