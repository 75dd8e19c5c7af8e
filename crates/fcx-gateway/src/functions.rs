//! Management API for functions (FC 3.0, 2023-03-30): Create, Get, List, Update, Delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use fcx_model::{Function, ModelError};
use fcx_protocol::{limits, ApiFlavor, FcError};
use fcx_store::StoreError;
use http::StatusCode;
use serde_json::json;

use crate::body::read_limited;
use crate::error::ApiError;
use crate::state::{new_request_id, App};
use crate::time::now_rfc3339;

/// Largest `limit` ListFunctions takes (FC's).
const LIST_LIMIT_MAX: usize = 100;
const LIST_LIMIT_DEFAULT: usize = 20;

type Reply = Result<Response, ApiError>;

fn model_error(e: ModelError) -> FcError {
    FcError::invalid_argument(e.to_string()).with_detail("Field", e.field)
}

fn store_error(e: StoreError) -> FcError {
    match e {
        StoreError::AlreadyExists(name) => FcError::function_already_exists(&name),
        StoreError::NotFound(name) => FcError::function_not_found(&name),
        other => FcError::internal(other.to_string()),
    }
}

/// Records a stored package on the function: FC's CRC-64, fcx's SHA-256 name, the size.
fn set_code(f: &mut Function, stored: fcx_store::StoredCode) {
    f.code_checksum = stored.crc64;
    f.code_sha256 = stored.checksum;
    f.code_size = stored.size;
}

/// Decodes, checks and stores `code.zipFile` when the body has one.
fn store_code(
    app: &App,
    code: Option<&fcx_model::Code>,
) -> Result<Option<fcx_store::StoredCode>, FcError> {
    let Some(zip_base64) = code.and_then(|c| c.zip_file.as_deref()) else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(zip_base64.trim())
        .map_err(|e| {
            FcError::invalid_argument(format!("code.zipFile: not valid base64: {e}"))
                .with_detail("Field", "code.zipFile")
        })?;
    fcx_runtime::code::validate_zip(&bytes).map_err(|e| {
        FcError::invalid_argument(format!("code.zipFile: not a valid zip archive: {e}"))
            .with_detail("Field", "code.zipFile")
    })?;
    app.code
        .put(&bytes)
        .map(Some)
        .map_err(|e| FcError::internal(e.to_string()))
}

fn ok_json(status: StatusCode, f: &Function, request_id: &str) -> Response {
    let mut r = (status, Json(f)).into_response();
    if let Ok(v) = request_id.parse() {
        r.headers_mut().insert(fcx_protocol::headers::REQUEST_ID, v);
    }
    r
}

pub async fn create(State(app): State<Arc<App>>, body: Body) -> Reply {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, &rid);
    let bytes = read_limited(body, limits::FUNCTION_BODY_MAX)
        .await
        .map_err(fail)?;
    let input = fcx_model::parse_create(&bytes).map_err(|e| fail(model_error(e)))?;
    let code = store_code(&app, input.code.as_ref()).map_err(fail)?;
    let now = now_rfc3339();
    let function_id = uuid::Uuid::new_v4().to_string();
    let mut f = Function::from_create(input, function_id, &app.region, &app.account_id, &now)
        .map_err(|e| fail(model_error(e)))?;
    if let Some(stored) = code {
        set_code(&mut f, stored);
    }
    warn_unimplemented(&f);
    app.store
        .create_function(&f)
        .map_err(|e| fail(store_error(e)))?;
    app.deploy(f.clone());
    tracing::info!(function = %f.function_name, "function created");
    Ok(ok_json(StatusCode::OK, &f, &rid))
}

pub async fn get(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, &rid);
    let f = app
        .store
        .get_function(&name)
        .map_err(|e| fail(store_error(e)))?
        .ok_or_else(|| fail(FcError::function_not_found(&name)))?;
    Ok(ok_json(StatusCode::OK, &f, &rid))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, &rid);
    let limit = match query.get("limit") {
        None => LIST_LIMIT_DEFAULT,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                fail(
                    FcError::invalid_argument(format!(
                        "limit: must be a number between 1 and {LIST_LIMIT_MAX}, got '{v}'"
                    ))
                    .with_detail("Field", "limit"),
                )
            })?,
    };
    let prefix = query.get("prefix").map(String::as_str);
    let after = query
        .get("nextToken")
        .filter(|t| !t.is_empty())
        .map(String::as_str);
    let mut functions = app
        .store
        .list_functions(prefix, after, limit + 1)
        .map_err(|e| fail(store_error(e)))?;
    let next = (functions.len() > limit).then(|| {
        functions.truncate(limit);
        functions.last().map(|f| f.function_name.clone())
    });
    let mut body = json!({ "functions": functions });
    if let Some(Some(token)) = next {
        body["nextToken"] = json!(token);
    }
    let mut r = Json(body).into_response();
    if let Ok(v) = rid.parse() {
        r.headers_mut().insert(fcx_protocol::headers::REQUEST_ID, v);
    }
    Ok(r)
}

pub async fn update(State(app): State<Arc<App>>, Path(name): Path<String>, body: Body) -> Reply {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, &rid);
    let bytes = read_limited(body, limits::FUNCTION_BODY_MAX)
        .await
        .map_err(fail)?;
    let input = fcx_model::parse_update(&name, &bytes).map_err(|e| fail(model_error(e)))?;
    let mut f = app
        .store
        .get_function(&name)
        .map_err(|e| fail(store_error(e)))?
        .ok_or_else(|| fail(FcError::function_not_found(&name)))?;
    let code = store_code(&app, input.code.as_ref()).map_err(fail)?;
    f.apply_update(input, &now_rfc3339())
        .map_err(|e| fail(model_error(e)))?;
    if let Some(stored) = code {
        set_code(&mut f, stored);
    }
    warn_unimplemented(&f);
    app.store
        .update_function(&f)
        .map_err(|e| fail(store_error(e)))?;
    app.deploy(f.clone());
    tracing::info!(function = %f.function_name, "function updated");
    Ok(ok_json(StatusCode::OK, &f, &rid))
}

pub async fn delete(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let rid = new_request_id();
    let fail = |e| ApiError::new(e, ApiFlavor::Fc3, &rid);
    if !app
        .store
        .delete_function(&name)
        .map_err(|e| fail(store_error(e)))?
    {
        return Err(fail(FcError::function_not_found(&name)));
    }
    app.scheduler.remove(&name);
    app.asyncs.set_config(&name, None);
    app.aliases.forget(&name);
    tracing::info!(function = %name, "function deleted");
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = rid.parse() {
        r.headers_mut().insert(fcx_protocol::headers::REQUEST_ID, v);
    }
    Ok(r)
}

/// FC fields fcx stores but does not act on yet are named in the server log.
fn warn_unimplemented(f: &Function) {
    if !f.extra.is_empty() {
        let names: Vec<&str> = f.extra.keys().map(String::as_str).collect();
        tracing::warn!(
            function = %f.function_name,
            fields = %names.join(", "),
            "fields accepted and stored, but not implemented by fcx yet"
        );
    }
}
