//! The management handlers: every route but the invocations runs one typed command of the
//! control plane, read from its parameters (and body), and answers its output as JSON
//! ([`json`], [`json_with_body`]) or with an empty 204 ([`no_content`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use fcx_control::scaling::ListInstances;
use fcx_control::{BodyCommand, Command, ControlPlane, WithBody};
use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use crate::body::read_limited;
use crate::params::Params;
use crate::reply::{Api, Reply};

/// Runs `C` and answers 200 with its output.
pub async fn json<C>(State(control): State<Arc<ControlPlane>>, Params(command): Params<C>) -> Reply
where
    C: Command,
    C::Output: Serialize,
{
    let api = Api::fc3();
    let output = control.execute(command).await.map_err(|e| api.fail(e))?;
    Ok(api.json(&output))
}

/// Reads the body (at most `LIMIT` bytes), runs `C` with it and answers 200 with its output.
pub async fn json_with_body<C, const LIMIT: usize>(
    State(control): State<Arc<ControlPlane>>,
    Params(command): Params<C>,
    body: Body,
) -> Reply
where
    C: BodyCommand,
    C::Output: Serialize,
{
    let api = Api::fc3();
    let body = read_limited(body, LIMIT).await.map_err(|e| api.fail(e))?;
    let output = control
        .execute(WithBody { command, body })
        .await
        .map_err(|e| api.fail(e))?;
    Ok(api.json(&output))
}

/// Runs `C` (a delete) and answers 204.
pub async fn no_content<C: Command<Output = ()>>(
    State(control): State<Arc<ControlPlane>>,
    Params(command): Params<C>,
) -> Reply {
    let api = Api::fc3();
    control.execute(command).await.map_err(|e| api.fail(e))?;
    Ok(api.empty(StatusCode::NO_CONTENT))
}

/// ListInstances, whose answer also names the request.
pub async fn list_instances(
    State(control): State<Arc<ControlPlane>>,
    Params(command): Params<ListInstances>,
) -> Reply {
    let api = Api::fc3();
    let instances = control.execute(command).await.map_err(|e| api.fail(e))?;
    Ok(api.json(&json!({"instances": instances, "requestId": api.rid})))
}
