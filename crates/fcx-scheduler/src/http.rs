//! HTTP functions (`x-fc-control-path: /http-invoke`): the client's request, as the gateway
//! hands it over (method, path, query, headers, streamed body), goes to a pooled instance
//! with FC's context headers added, and the instance's answer streams back as it is: status,
//! headers and body. The slot and the reserved-concurrency admission are held until the last
//! byte, bounded by the function's timeout. An `Upgrade` request (WebSocket) that the
//! function answers with `101` becomes a spliced byte stream in both directions, holding the
//! slot while it lasts. Idempotent requests without a body are sent again once when a pooled
//! connection turns out to be dropped.

use std::sync::Arc;
use std::time::Duration;

use fcx_protocol::headers::{self, context as h, control_path};
use fcx_protocol::outcome;
use fcx_runtime::body::{self, Body};
use fcx_runtime::logs::Marker;
use fcx_runtime::{CallError, ResponseBody};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::limits::Admission;
use crate::pool::{Lease, Pool};
use crate::stream::{InvocationBody, Observed};
use crate::web::{self, Stop};
use crate::{CallContext, Scheduler, SchedulerError};

/// One HTTP request for a function, from a trigger, a custom domain or the async queue.
pub struct HttpInvokeRequest {
    /// Request id, trigger and other context headers.
    pub context: CallContext,
    /// Method, path and query as the client sent them, and the headers to forward (the
    /// gateway has removed what FC does not forward); the body streams.
    pub request: http::Request<Body>,
    /// `x-fc-base-path` (the FC 2.0 path form's prefix).
    pub base_path: Option<String>,
    /// The client connection, when the request asks for an `Upgrade`.
    pub client_upgrade: Option<OnUpgrade>,
}

/// The function's answer.
pub struct HttpInvokeResponse {
    /// Status, headers and the streamed body as the instance sent them.
    pub response: http::Response<Body>,
    /// The instance that answered.
    pub instance_id: String,
    /// Set when fcx made the answer because the function failed (a failed initializer).
    pub error_type: Option<&'static str>,
    /// The function switched protocols: the connection is spliced through, no body follows.
    pub upgraded: bool,
}

/// Methods FC sends again after a dropped keep-alive connection.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl Scheduler {
    /// Runs one HTTP request of `version` of function `name` (`None`: LATEST).
    pub async fn http_invoke(
        &self,
        name: &str,
        version: Option<&str>,
        req: HttpInvokeRequest,
    ) -> Result<HttpInvokeResponse, SchedulerError> {
        let pool = self.version_pool(name, version)?;
        if !pool.deployed.function.web_server_mode() {
            return Err(SchedulerError::NotHttpFunction {
                function: name.to_owned(),
            });
        }
        let call = crate::observe::Call::new(&req.context);
        let result = match pool.limits.admit(name) {
            Ok(admission) => invoke(self, &pool, req, admission).await,
            Err(e) => Err(e),
        };
        call.record_http(&pool.metrics, &result, self.config.error_code);
        result
    }
}

async fn invoke(
    sched: &Scheduler,
    pool: &Arc<Pool>,
    req: HttpInvokeRequest,
    admission: Admission,
) -> Result<HttpInvokeResponse, SchedulerError> {
    let HttpInvokeRequest {
        context: ctx,
        request,
        base_path,
        client_upgrade,
    } = req;
    let (lease, cold_start) = match web::lease(sched, pool, &ctx).await {
        Ok((lease, _, cold_start)) => (lease, cold_start),
        Err(Stop::Error(e)) => return Err(e),
        Err(Stop::Respond(failed)) => {
            // The initializer failed: FC answers HTTP functions with a 5xx.
            let mut response = http::Response::new(failed.body);
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(HttpInvokeResponse {
                response,
                instance_id: failed.instance_id,
                error_type: failed.error_type,
                upgraded: false,
            });
        }
    };
    let timeout_secs = pool.deployed.function.timeout;
    let now = tokio::time::Instant::now();
    crate::timer_floor::arm(now);
    let deadline = now + Duration::from_secs(timeout_secs.into());
    let instance = &lease.slot.instance;
    let log = instance.log();
    let rid = ctx.request_id.clone();
    log.begin(&rid, Marker::Invoke, false).await;
    let call_started = std::time::Instant::now();
    if let Some(trigger) = &ctx.trigger {
        log.line(&format!(
            "fcx: trigger {trigger}: {} {}",
            request.method(),
            request.uri()
        ));
    }
    let request = with_context(pool, &ctx, request, base_path.as_deref());
    let upgrading = client_upgrade.is_some();
    let replayable =
        idempotent(request.method()) && hyper::body::Body::is_end_stream(request.body());
    let call = async {
        if upgrading {
            instance.call_upgrade(request).await
        } else if replayable {
            instance.call_replayable(request).await
        } else {
            instance.call(request).await
        }
    };
    let resp = match tokio::time::timeout_at(deadline, call).await {
        Err(_) => return Err(Box::pin(timed_out(pool, &lease, &rid, timeout_secs)).await),
        Ok(Err(CallError::RequestTooLarge)) => {
            log.end(&rid, Marker::Invoke).await;
            return Err(SchedulerError::PayloadTooLarge {
                limit: fcx_protocol::limits::SYNC_PAYLOAD_MAX,
            });
        }
        Ok(Err(CallError::ClientBody(message))) => {
            // The client's upload broke, not the instance (see web.rs): the instance stays.
            log.end(&rid, Marker::Invoke).await;
            return Err(SchedulerError::PayloadUnreadable(message));
        }
        // It ends the request's log window after taking the request's own lines from it.
        Ok(Err(e)) => {
            return Err(Box::pin(web::broken_connection(pool, &lease, &rid, Box::new(e))).await)
        }
        Ok(Ok(resp)) => resp,
    };
    let instance_id = instance.id.clone();
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client) = client_upgrade {
            return Ok(splice(
                resp,
                client,
                lease,
                admission,
                deadline,
                rid,
                instance_id,
            ));
        }
    }
    let (parts, body) = resp.into_parts();
    let observed = Observed {
        metrics: Arc::clone(&pool.metrics),
        request_started: ctx.started,
        call_started,
        cold_start,
    };
    let body = InvocationBody::new(
        body,
        lease,
        admission,
        deadline,
        rid,
        timeout_secs,
        observed,
    );
    Ok(HttpInvokeResponse {
        response: http::Response::from_parts(parts, body.boxed_unsync()),
        instance_id,
        error_type: None,
        upgraded: false,
    })
}

/// The client's request with FC's common headers (`x-fc-control-path: /http-invoke`); the
/// client's `Host` is kept.
fn with_context(
    pool: &Pool,
    ctx: &CallContext,
    mut request: http::Request<Body>,
    base_path: Option<&str>,
) -> http::Request<Body> {
    let headers = request.headers_mut();
    for (name, value) in &pool.context_headers {
        if name == http::header::HOST && headers.contains_key(http::header::HOST) {
            continue;
        }
        headers.insert(name.clone(), value.clone());
    }
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put(headers::REQUEST_ID, &ctx.request_id);
    put(h::QUALIFIER, &ctx.qualifier);
    if let Some(service) = &ctx.service_name {
        put(h::SERVICE_NAME, service);
    }
    if let Some(base) = base_path {
        put(h::BASE_PATH, base);
    }
    headers.insert(
        HeaderName::from_static(h::CONTROL_PATH),
        HeaderValue::from_static(control_path::HTTP_INVOKE),
    );
    request
}

/// The function ran past its timeout before answering: the instance is replaced.
async fn timed_out(pool: &Pool, lease: &Lease, rid: &str, timeout_secs: u32) -> SchedulerError {
    let instance = &lease.slot.instance;
    pool.discard(&lease.slot);
    let message = outcome::timeout_message(timeout_secs);
    instance
        .log()
        .line(&format!("fcx: {message} (request {rid})"));
    instance.log().end(rid, Marker::Invoke).await;
    SchedulerError::Timeout {
        timeout_secs,
        instance_id: instance.id.clone(),
    }
}

/// How long one direction of an upgraded connection may still flow after the other ended.
const HALF_CLOSED_GRACE: Duration = Duration::from_secs(2);

/// Copies bytes both ways until one side closes; the other direction then gets a short
/// grace to finish (a close frame in flight) before both connections are closed, so
/// closing either side closes the other.
async fn copy_both_ways<A, B>(a: A, b: B)
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let up = async {
        let _ = tokio::io::copy(&mut ar, &mut bw).await;
        let _ = bw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut br, &mut aw).await;
        let _ = aw.shutdown().await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(HALF_CLOSED_GRACE, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(HALF_CLOSED_GRACE, up).await; }
    }
}

/// Answers the client's upgrade with the function's `101` and, once both sides have
/// switched, copies bytes both ways until either side closes or the function's timeout
/// passes. The slot and the admission are held for as long.
fn splice(
    mut resp: http::Response<ResponseBody>,
    client: OnUpgrade,
    lease: Lease,
    admission: Admission,
    deadline: tokio::time::Instant,
    rid: String,
    instance_id: String,
) -> HttpInvokeResponse {
    let instance_side = hyper::upgrade::on(&mut resp);
    tokio::spawn(async move {
        let held = (lease, admission);
        let log = Arc::clone(held.0.slot.instance.log());
        let session = async {
            let (client, instance) = tokio::try_join!(client, instance_side)?;
            copy_both_ways(TokioIo::new(client), TokioIo::new(instance)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        };
        match tokio::time::timeout_at(deadline, session).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(request_id = %rid, error = %e, "upgraded session ended"),
            Err(_) => log.line(&format!(
                "fcx: upgraded connection closed at the function timeout (request {rid})"
            )),
        }
        log.end_when_settled(&rid, Marker::Invoke);
        drop(held);
    });
    let (parts, _) = resp.into_parts();
    HttpInvokeResponse {
        response: http::Response::from_parts(parts, body::empty()),
        instance_id,
        error_type: None,
        upgraded: true,
    }
}
