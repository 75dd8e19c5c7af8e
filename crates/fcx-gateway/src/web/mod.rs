//! HTTP triggers and custom domains: a request whose `Host` is `<function>[--<qualifier>].
//! <trigger domain>` or a custom domain, or whose path is FC 2.0's proxy form
//! (`/2016-08-15/proxy/<service>[.<qualifier>]/<function>/<path>`), is passed through to the
//! function as FC does it: FC's limits (`headers`), the trigger's methods (405 with
//! `Allow`), its auth (anonymous, the API's signature, or a JWT: `jwt`), then either the
//! durable queue (`X-Fc-Invocation-Type: Async`, 202) or the instance, whose answer streams
//! back with the reserved headers dropped. Everything else goes on to the API router.

mod headers;
mod jwt;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use fcx_control::invoke::{
    AsyncInvocation, BoxError, CallContext, HttpInvokeRequest, HttpRequestShape, Origin,
};
use fcx_control::web::{match_route, Auth, Domain, HttpTrigger, RouteMatch, TriggerHost};
use fcx_control::ControlPlane;
use fcx_protocol::{headers as fch, limits, ApiFlavor, ErrorCode, FcError};
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use tower::Service;

use crate::auth::{verify_request, Verifier};
use crate::body::read_limited;
use crate::error::ToFc;
use crate::reply::Api;

/// The front of one listener: web requests are served here, the rest by the API router.
pub struct Front {
    pub control: Arc<ControlPlane>,
    pub api: Router,
    /// The API's signature check (`--auth signature`), for `authType: function`.
    pub verifier: Option<Arc<Verifier>>,
    /// Whether this listener is the HTTPS one.
    pub https: bool,
}

/// What a listener serves: every request passes [`dispatch`] first. A service of its own
/// rather than a router's fallback, so an API request goes through one router, not two.
#[derive(Clone)]
pub struct FrontService(Arc<Front>);

impl FrontService {
    pub fn new(front: Arc<Front>) -> Self {
        FrontService(front)
    }
}

impl tower::Service<Request> for FrontService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let front = Arc::clone(&self.0);
        Box::pin(async move { Ok(dispatch(front, req).await) })
    }
}

/// Prefix of FC 2.0's proxy path form.
const PROXY_PREFIX: &str = "/2016-08-15/proxy/";

/// Where a web request goes.
struct Target<'a> {
    function: &'a str,
    qualifier: &'a str,
    trigger: Option<Arc<str>>,
    auth: &'a Auth,
    /// The path form's prefix: removed from the path the function sees, sent as
    /// `x-fc-base-path`.
    base_path: Option<&'a str>,
}

// The web paths are boxed so that this future, boxed per request, stays small for API
// requests.
async fn dispatch(front: Arc<Front>, req: Request) -> Response {
    let control = &front.control;
    if let Some(host) = host_of(&req) {
        match control.trigger_host(host) {
            TriggerHost::Trigger(t) => return Box::pin(serve_trigger(&front, &t, req, None)).await,
            TriggerHost::NoTrigger(label) => {
                return fail(
                    &Api::fc3(),
                    FcError::no_http_function(&format!(
                        "no HTTP trigger serves '{label}' (no function '{label}' with an HTTP \
                         trigger at LATEST, and no '<function>--<qualifier>' match)"
                    )),
                )
            }
            TriggerHost::Other => {}
        }
        if let Some(domain) = control.custom_domain(host) {
            return Box::pin(serve_domain(&front, &domain, req)).await;
        }
    }
    if req.uri().path().starts_with(PROXY_PREFIX) {
        return Box::pin(serve_proxy_path(&front, req)).await;
    }
    if is_plain_invoke(&req) {
        return crate::fast::invoke(&front, req).await;
    }
    match front.api.clone().call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// `POST /2023-03-30/functions/{name}/invocations` from a client (no node marks), the
/// one API request on every call: it skips the router (see `crate::fast`).
fn is_plain_invoke(req: &Request) -> bool {
    req.method() == http::Method::POST
        && crate::fast::invoked_function(req.uri().path()).is_some()
        && !crate::peer::is_marked(req.headers())
}

/// The request's host without its port (`Host`, or the authority of an absolute URI).
fn host_of(req: &Request) -> Option<&str> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    // `[::1]:9100` and `name:9100` alike.
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    Some(host.trim_start_matches('[').trim_end_matches(']'))
}

async fn serve_trigger(
    front: &Front,
    t: &HttpTrigger,
    req: Request,
    base: Option<&str>,
) -> Response {
    let flavor = if base.is_some() {
        ApiFlavor::Fc2
    } else {
        ApiFlavor::Fc3
    };
    let api = Api::new(flavor);
    if base.is_none() && t.disable_url_internet {
        return fail(
            &api,
            FcError::new(
                ErrorCode::AccessDenied,
                format!(
                    "access denied due to function internet URL is disable (trigger '{}' has \
                     disableURLInternet; its path form and custom domains still work)",
                    t.name
                ),
            ),
        );
    }
    if !t.allows(req.method().as_str()) {
        return method_not_allowed(&api, req.method(), &t.methods);
    }
    let target = Target {
        function: &t.function,
        qualifier: &t.qualifier,
        trigger: Some(Arc::clone(&t.name)),
        auth: &t.auth,
        base_path: base,
    };
    pass_through(front, api, target, req).await
}

async fn serve_domain(front: &Front, d: &Domain, req: Request) -> Response {
    let api = Api::fc3();
    let served = if front.https {
        d.record.serves_https()
    } else {
        d.record.serves_http()
    };
    if !served {
        return fail(
            &api,
            FcError::new(
                ErrorCode::NotFound,
                format!(
                    "custom domain '{}' is served over {} only",
                    d.record.domain_name, d.record.protocol
                ),
            ),
        );
    }
    let route = match match_route(
        &d.record.route_config.routes,
        req.uri().path(),
        req.method().as_str(),
    ) {
        RouteMatch::Found(r) => r,
        RouteMatch::MethodNotAllowed(allow) => {
            return method_not_allowed(&api, req.method(), &allow)
        }
        RouteMatch::NotFound => {
            return fail(
                &api,
                FcError::no_http_function(&format!(
                    "no route of custom domain '{}' matches the path '{}'",
                    d.record.domain_name,
                    req.uri().path()
                )),
            )
        }
    };
    let target = Target {
        function: &route.function_name,
        qualifier: &route.qualifier,
        trigger: None,
        auth: &d.auth,
        base_path: None,
    };
    pass_through(front, api, target, req).await
}

/// `/2016-08-15/proxy/<service>[.<qualifier>]/<function>/<path>`.
async fn serve_proxy_path(front: &Front, req: Request) -> Response {
    let path = req.uri().path();
    let rest = &path[PROXY_PREFIX.len()..];
    let mut parts = rest.splitn(3, '/');
    let (service, function) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let qualifier = service.split_once('.').map_or("LATEST", |(_, q)| q);
    let base_len = PROXY_PREFIX.len() + service.len() + 1 + function.len();
    let base = path[..base_len.min(path.len())].to_owned();
    match front.control.trigger_of(function, qualifier) {
        Some(t) => serve_trigger(front, &t, req, Some(&base)).await,
        None => fail(
            &Api::new(ApiFlavor::Fc2),
            FcError::no_http_function(&format!(
                "function '{function}' has no HTTP trigger at qualifier '{qualifier}'"
            )),
        ),
    }
}

fn method_not_allowed(api: &Api, method: &Method, allow: &[String]) -> Response {
    let mut r = fail(
        api,
        FcError::new(
            ErrorCode::MethodNotAllowed,
            format!(
                "method {method} is not allowed here; allowed: {}",
                allow.join(", ")
            ),
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        r.headers_mut().insert(http::header::ALLOW, v);
    }
    r
}

/// A platform error on a web request: FC's error JSON, and `X-Fc-Error-Type`
/// (`FcCommonError` for a refused request, `UnhandledInvocationError` for a function fault).
fn fail(api: &Api, e: impl ToFc) -> Response {
    let mut r = api.fail(e).into_response();
    if r.status().is_client_error() && !r.headers().contains_key(fch::ERROR_TYPE) {
        r.headers_mut()
            .insert(fch::ERROR_TYPE, HeaderValue::from_static("FcCommonError"));
    }
    r
}

fn wants_upgrade(h: &http::HeaderMap) -> bool {
    h.contains_key(http::header::UPGRADE)
        && h.get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

async fn pass_through(front: &Front, api: Api, target: Target<'_>, mut req: Request) -> Response {
    let control = &front.control;
    if let Err(e) = headers::check_request(req.uri(), req.headers()) {
        return fail(&api, e);
    }
    let client_upgrade = wants_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits::SYNC_PAYLOAD_MAX as u64) {
        return fail(&api, FcError::entity_too_large(limits::SYNC_PAYLOAD_MAX));
    }
    // Auth: a signed request is read whole to check its body hash, as on the API.
    let body = match target.auth {
        Auth::Anonymous => body,
        Auth::Signature => match &front.verifier {
            Some(v) => match verify_request(v, &parts, body, limits::SYNC_PAYLOAD_MAX).await {
                Ok(bytes) => Body::from(bytes),
                Err(e) => return fail(&api, e),
            },
            // `--auth none`: the server authenticates nothing, triggers included.
            None => body,
        },
        Auth::Jwt(jwt) => match jwt::authorize(jwt, &mut parts, target.base_path) {
            Ok(()) => body,
            Err(e) => return fail(&api, e),
        },
    };
    let asynchronous = parts
        .headers
        .get(fch::INVOCATION_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("async"));
    if let Some(base) = target.base_path {
        let rest = &parts.uri.path()[base.len()..];
        let path = if rest.is_empty() { "/" } else { rest };
        let uri = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.to_owned(),
        };
        if let Ok(u) = uri.parse() {
            parts.uri = u;
        }
    }
    headers::strip_request(&mut parts.headers, client_upgrade.is_some());
    let version = match control.resolve(target.function, target.qualifier) {
        Ok(v) => v,
        Err(e) => return fail(&api, e),
    };
    if asynchronous {
        return queue(control, &api, &target, version.as_deref(), parts, body).await;
    }
    let head = parts.method == Method::HEAD;
    let request = http::Request::from_parts(
        parts,
        Limited::new(body, limits::SYNC_PAYLOAD_MAX)
            .map_err(BoxError::from)
            .boxed_unsync(),
    );
    let call = HttpInvokeRequest {
        context: CallContext {
            request_id: api.rid().to_owned(),
            qualifier: target.qualifier.to_owned().into(),
            tail_log: false,
            service_name: None,
            trigger: target.trigger.clone(),
            started: std::time::Instant::now(),
            // The client's own traceparent, if any, reaches the function with its headers.
            trace: None,
        },
        request,
        base_path: target.base_path.map(str::to_owned),
        client_upgrade,
    };
    let answer = match control
        .http_invoke(target.function, version.as_deref(), call)
        .await
    {
        Ok(a) => a,
        Err(e) => return fail(&api, e),
    };
    let (mut parts, body) = answer.response.into_parts();
    if let Err(e) = headers::check_response(&parts.headers) {
        return fail(&api, e);
    }
    headers::strip_response(
        &mut parts.headers,
        parts.status == StatusCode::SWITCHING_PROTOCOLS,
        head,
    );
    parts.headers.insert(fch::REQUEST_ID, api.id_header());
    if let Some(t) = answer.error_type {
        parts
            .headers
            .insert(fch::ERROR_TYPE, HeaderValue::from_static(t));
    }
    Response::from_parts(parts, Body::new(body))
}

/// `X-Fc-Invocation-Type: Async`: the request (≤ 128 KB) is committed to the durable queue
/// before the 202; a worker sends it to the function later, as it came in.
async fn queue(
    control: &ControlPlane,
    api: &Api,
    target: &Target<'_>,
    version: Option<&str>,
    parts: http::request::Parts,
    body: Body,
) -> Response {
    if let Err(e) = control.accepts_async(target.function, None) {
        return fail(api, e);
    }
    let payload = match read_limited(body, limits::ASYNC_PAYLOAD_MAX).await {
        Ok(p) => p,
        Err(e) => return fail(api, e),
    };
    let shape = HttpRequestShape {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .filter(|(n, _)| *n != fch::INVOCATION_TYPE)
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        base_path: target.base_path.map(str::to_owned),
    };
    let job = AsyncInvocation {
        function: target.function,
        qualifier: version.unwrap_or("LATEST"),
        payload: payload.to_vec(),
        request_id: api.rid().to_owned(),
        task_id: None,
        origin: Origin {
            trigger: target.trigger.as_deref().map(str::to_owned),
            http: Some(shape),
        },
    };
    match control.enqueue(job).await {
        Ok(accepted) => {
            let mut r = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&accepted.request_id) {
                r.headers_mut().insert(fch::REQUEST_ID, v);
            }
            r
        }
        Err(e) => {
            // Not queued (StorageFull, a store error): counted as the API's async refusals.
            let e = crate::error::ToFc::to_fc(e);
            control.metrics().rejected(e.code.as_str());
            fail(api, e)
        }
    }
}
