//! What every instance is told about its function: environment variables at start and the
//! `x-fc-*` context headers on each call.

use std::path::Path;

use fcx_model::Function;
use fcx_protocol::headers::context as h;
use fcx_runtime::InstanceSpec;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{CallContext, Deployed, SchedulerConfig};

/// PATH for instances: the system directories, never fcx's or root's own.
const INSTANCE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The launch description of an instance of `f` with code unpacked in `code_dir`.
pub fn instance_spec(
    deployed: &Deployed,
    code_dir: &Path,
    config: &SchedulerConfig,
) -> InstanceSpec {
    let f = &deployed.function;
    let version = deployed.version_id.as_deref().unwrap_or("LATEST");
    let port = f.port();
    let code_path = code_dir.display().to_string();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), INSTANCE_PATH.into()),
        ("HOME".into(), "/tmp".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("FC_FUNCTION_NAME".into(), f.function_name.clone()),
        ("FC_FUNCTION_HANDLER".into(), f.handler.clone()),
        ("FC_FUNCTION_MEMORY_SIZE".into(), f.memory_size.to_string()),
        ("FC_FUNCTION_VERSION".into(), version.into()),
        ("FC_CUSTOM_LISTEN_PORT".into(), port.to_string()),
        ("FC_FUNC_CODE_PATH".into(), code_path),
        ("FC_REGION".into(), config.region.clone()),
        ("FC_ACCOUNT_ID".into(), config.account_id.clone()),
    ];
    // User variables come last so they may override PATH, HOME or LANG (not FC_*: reserved).
    env.extend(
        f.environment_variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    InstanceSpec {
        function_name: f.function_name.clone(),
        code_dir: code_dir.to_owned(),
        command: command(f),
        env,
        port,
        start_timeout: config.start_timeout,
        internet_access: f.internet_access,
        snapshot: f.snapshot_enabled() && f.web_server_mode(),
        container: None,
        memory_mb: f.memory_size,
        disk_mb: f.disk_size,
        run_as: deployed.run_as,
    }
}

/// `customRuntimeConfig.command` + `args`; FC's default for custom runtimes is `./bootstrap`.
fn command(f: &Function) -> Vec<String> {
    let Some(c) = &f.custom_runtime_config else {
        return vec!["./bootstrap".into()];
    };
    let mut argv = if c.command.is_empty() {
        vec!["./bootstrap".to_owned()]
    } else {
        c.command.clone()
    };
    argv.extend(c.args.iter().cloned());
    argv
}

/// The context headers that are the same on every call into an instance of `f`, built once
/// per deployed version (values that are not valid header text are left out).
pub fn static_headers(deployed: &Deployed, config: &SchedulerConfig) -> HeaderMap {
    let f = &deployed.function;
    let mut map = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            map.insert(HeaderName::from_static(name), v);
        }
    };
    put("host", "127.0.0.1");
    put(h::FUNCTION_NAME, &f.function_name);
    put(h::FUNCTION_MEMORY, &f.memory_size.to_string());
    put(h::FUNCTION_TIMEOUT, &f.timeout.to_string());
    put(h::FUNCTION_HANDLER, &f.handler);
    put(h::REGION, &config.region);
    put(h::ACCOUNT_ID, &config.account_id);
    put(
        h::VERSION_ID,
        deployed.version_id.as_deref().unwrap_or("LATEST"),
    );
    if let Some(init) = f.initializer() {
        put(h::FUNCTION_INITIALIZER, &init.handler);
        put(h::INITIALIZATION_TIMEOUT, &init.timeout.to_string());
    }
    map
}

/// FC's common request headers for one call of kind `control_path`: the version's static
/// headers plus the request's own, and the id of the instance called (fresh after a
/// snapshot restore, while the environment's `FC_INSTANCE_ID` is frozen).
pub fn headers(
    static_headers: &HeaderMap,
    req: &CallContext,
    control_path: &'static str,
    instance_id: &str,
) -> HeaderMap {
    let id = HeaderValue::from_str(instance_id).ok();
    headers_with_id(static_headers, req, control_path, id)
}

/// [`headers`] with the instance id's header value made already (a slot keeps one).
pub fn headers_with_id(
    static_headers: &HeaderMap,
    req: &CallContext,
    control_path: &'static str,
    instance_id: Option<HeaderValue>,
) -> HeaderMap {
    // Room for the request's own headers up front: a clone of the static map would grow
    // (reallocate and rehash) at the first insert below.
    let mut map = HeaderMap::with_capacity(static_headers.len() + 8);
    for (name, value) in static_headers {
        map.append(name.clone(), value.clone());
    }
    if let Some(v) = instance_id {
        map.insert(
            HeaderName::from_static(fcx_protocol::headers::INSTANCE_ID),
            v,
        );
    }
    if let Ok(v) = HeaderValue::from_str(&req.request_id) {
        map.insert(
            HeaderName::from_static(fcx_protocol::headers::REQUEST_ID),
            v,
        );
    }
    let qualifier = match &*req.qualifier {
        "LATEST" => Ok(HeaderValue::from_static("LATEST")),
        other => HeaderValue::from_str(other),
    };
    if let Ok(v) = qualifier {
        map.insert(HeaderName::from_static(h::QUALIFIER), v);
    }
    map.insert(
        HeaderName::from_static(h::CONTROL_PATH),
        HeaderValue::from_static(control_path),
    );
    if let Some(v) = req
        .service_name
        .as_deref()
        .and_then(|s| HeaderValue::from_str(s).ok())
    {
        map.insert(HeaderName::from_static(h::SERVICE_NAME), v);
    }
    if let Some(trace) = &req.trace {
        use fcx_protocol::trace::{TRACEPARENT, TRACESTATE};
        map.insert(
            HeaderName::from_static(TRACEPARENT),
            trace.traceparent.clone(),
        );
        if let Some(state) = &trace.tracestate {
            map.insert(HeaderName::from_static(TRACESTATE), state.clone());
        }
    }
    map
}
