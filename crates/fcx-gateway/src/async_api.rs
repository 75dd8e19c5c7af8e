//! Async APIs (FC 3.0): Put/Get/DeleteAsyncInvokeConfig, GetAsyncTask, ListAsyncTasks,
//! StopAsyncTask. The invoke side (`x-fc-invocation-type: Async`) is in `invoke.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fcx_model::async_config::{self, AsyncConfig};
use fcx_protocol::{headers, ApiFlavor, ErrorCode, FcError};
use fcx_store::queue::TaskFilter;
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::{new_request_id, App};
use crate::time::now_rfc3339;

/// Store document kind of async configs.
pub const ASYNC: &str = "async";
const BODY_MAX: usize = 64 * 1024;
const LIST_LIMIT_MAX: usize = 100;

type Reply = Result<Response, ApiError>;

fn reply(rid: &str, status: StatusCode, body: Option<Value>) -> Response {
    let mut r = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(rid) {
        r.headers_mut().insert(headers::REQUEST_ID, v);
    }
    r
}

fn function_arn(app: &App, name: &str, rid: &str) -> Result<String, ApiError> {
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, rid);
    app.store
        .get_function(name)
        .map_err(|e| fail(FcError::internal(e.to_string())))?
        .map(|f| f.function_arn)
        .ok_or_else(|| fail(FcError::function_not_found(name)))
}

fn invalid(field: &str, message: String, rid: &str) -> ApiError {
    ApiError::new(
        FcError::invalid_argument(format!("{field}: {message}")).with_detail("Field", field),
        ApiFlavor::Fc3,
        rid,
    )
}

/// Loads every stored async config into the async service (server start).
pub fn load_all(app: &App) -> Result<(), fcx_store::StoreError> {
    for (name, doc) in app.store.function_configs(ASYNC)? {
        if let Ok(c) = serde_json::from_str::<AsyncConfig>(&doc) {
            app.asyncs.set_config(&name, Some(c));
        }
    }
    Ok(())
}

fn config_body(config: &AsyncConfig, arn: &str, doc_times: (&str, &str)) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or_else(|_| json!({}));
    v["functionArn"] = json!(arn);
    v["maxAsyncRetryAttempts"] = json!(config.retry_attempts());
    v["maxAsyncEventAgeInSeconds"] = json!(config.max_age_secs());
    v["asyncTask"] = json!(config.task_enabled());
    v["createdTime"] = json!(doc_times.0);
    v["lastModifiedTime"] = json!(doc_times.1);
    v
}

pub async fn put_config(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Body,
) -> Reply {
    let rid = new_request_id();
    let arn = function_arn(&app, &name, &rid)?;
    let bytes = read_limited(body, BODY_MAX)
        .await
        .map_err(|e| ApiError::new(e, ApiFlavor::Fc3, &rid))?;
    let config =
        async_config::parse_async_config(&bytes).map_err(|e| invalid(&e.field, e.message, &rid))?;
    let doc = serde_json::to_string(&config).unwrap_or_default();
    app.store
        .put_function_config(&name, ASYNC, &doc)
        .map_err(|e| ApiError::new(FcError::internal(e.to_string()), ApiFlavor::Fc3, &rid))?;
    app.asyncs.set_config(&name, Some(config.clone()));
    let now = now_rfc3339();
    Ok(reply(
        &rid,
        StatusCode::OK,
        Some(config_body(&config, &arn, (&now, &now))),
    ))
}

pub async fn get_config(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let rid = new_request_id();
    let arn = function_arn(&app, &name, &rid)?;
    let doc = app
        .store
        .function_config(&name, ASYNC)
        .map_err(|e| ApiError::new(FcError::internal(e.to_string()), ApiFlavor::Fc3, &rid))?;
    let Some(doc) = doc else {
        return Err(ApiError::new(
            FcError::new(
                ErrorCode::NotFound,
                format!("function '{name}' has no async invoke config"),
            ),
            ApiFlavor::Fc3,
            &rid,
        ));
    };
    let config: AsyncConfig = serde_json::from_str(&doc).unwrap_or_default();
    Ok(reply(
        &rid,
        StatusCode::OK,
        Some(config_body(&config, &arn, ("", ""))),
    ))
}

pub async fn delete_config(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let rid = new_request_id();
    function_arn(&app, &name, &rid)?;
    app.store
        .delete_function_config(&name, ASYNC)
        .map_err(|e| ApiError::new(FcError::internal(e.to_string()), ApiFlavor::Fc3, &rid))?;
    app.asyncs.set_config(&name, None);
    Ok(reply(&rid, StatusCode::NO_CONTENT, None))
}

/// Task ids in paths: caller-given ones (FC's rule) or generated ones (request ids, which may
/// start with a digit): letters, digits, `_` and `-`, at most 128.
fn check_task_id(id: &str, rid: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "taskId",
            format!(
                "'{}' may hold only letters, digits, '_' and '-' (at most 128)",
                id.chars().take(64).collect::<String>()
            ),
            rid,
        ))
    }
}

fn task_not_found(name: &str, task_id: &str, rid: &str) -> ApiError {
    ApiError::new(
        FcError::new(
            ErrorCode::NotFound,
            format!("async task '{task_id}' of function '{name}' does not exist"),
        ),
        ApiFlavor::Fc3,
        rid,
    )
}

pub async fn get_task(
    State(app): State<Arc<App>>,
    Path((name, task_id)): Path<(String, String)>,
) -> Reply {
    let rid = new_request_id();
    function_arn(&app, &name, &rid)?;
    check_task_id(&task_id, &rid)?;
    let task = app
        .asyncs
        .get_task(&name, &task_id)
        .map_err(|e| ApiError::new(e, ApiFlavor::Fc3, &rid))?
        .ok_or_else(|| task_not_found(&name, &task_id, &rid))?;
    Ok(reply(&rid, StatusCode::OK, Some(task)))
}

pub async fn stop_task(
    State(app): State<Arc<App>>,
    Path((name, task_id)): Path<(String, String)>,
) -> Reply {
    let rid = new_request_id();
    function_arn(&app, &name, &rid)?;
    check_task_id(&task_id, &rid)?;
    let status = app
        .asyncs
        .stop_task(&name, &task_id)
        .await
        .map_err(|e| ApiError::new(e, ApiFlavor::Fc3, &rid))?
        .ok_or_else(|| task_not_found(&name, &task_id, &rid))?;
    Ok(reply(
        &rid,
        StatusCode::OK,
        Some(json!({"taskId": task_id, "status": status})),
    ))
}

pub async fn list_tasks(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let rid = new_request_id();
    function_arn(&app, &name, &rid)?;
    let number = |field: &str| -> Result<Option<i64>, ApiError> {
        q.get(field)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(field, format!("must be a number, got '{v}'"), &rid))
            })
            .transpose()
    };
    let limit = match number("limit")? {
        None => 20,
        Some(n) if (1..=LIST_LIMIT_MAX as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(
                "limit",
                format!("must be between 1 and {LIST_LIMIT_MAX}, got {n}"),
                &rid,
            ))
        }
    };
    const STATUSES: &[&str] = &[
        "Enqueued",
        "Running",
        "Succeeded",
        "Failed",
        "Stopping",
        "Stopped",
        "Invalid",
        "Expired",
        "Retrying",
    ];
    if let Some(s) = q.get("status") {
        if !STATUSES.contains(&s.as_str()) {
            return Err(invalid(
                "status",
                format!("'{s}' is not one of {}", STATUSES.join(", ")),
                &rid,
            ));
        }
    }
    let newest_first = match q.get("sortOrderByTime").map(String::as_str) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(invalid(
                "sortOrderByTime",
                format!("must be asc or desc, got '{o}'"),
                &rid,
            ))
        }
    };
    let after_seq = match q.get("nextToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| {
            invalid(
                "nextToken",
                format!("'{t}' is not a token this server issued"),
                &rid,
            )
        })?),
    };
    let filter = TaskFilter {
        status: q.get("status").cloned(),
        prefix: q.get("prefix").cloned(),
        started_begin_ms: number("startedTimeBegin")?,
        started_end_ms: number("startedTimeEnd")?,
        after_seq,
        limit,
        newest_first,
    };
    let include_payload = q.get("includePayload").is_some_and(|v| v == "true");
    let (tasks, next) = app
        .asyncs
        .list_tasks(&name, &filter, include_payload)
        .map_err(|e| ApiError::new(e, ApiFlavor::Fc3, &rid))?;
    let mut body = json!({ "tasks": tasks });
    if let Some(n) = next {
        body["nextToken"] = json!(n);
    }
    Ok(reply(&rid, StatusCode::OK, Some(body)))
}
