//! The management handlers: every route but the invocations runs one typed command of the
//! control plane, read from its parameters (and body), and answers its output as JSON
//! ([`json`], [`json_with_body`]) or with an empty 204 ([`no_content`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::Extension;
use http::Uri;

use crate::peer::FromNode;
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
/// With a shared store it answers for every live node: this node's instances and those each
/// other node answers for itself (asked with the nodes' signature, [`crate::peer`]); a node
/// that does not answer in time is left out and named in `x-fcx-nodes-missing`.
pub async fn list_instances(
    State(control): State<Arc<ControlPlane>>,
    from_node: Option<Extension<FromNode>>,
    uri: Uri,
    Params(command): Params<ListInstances>,
) -> Reply {
    let api = Api::fc3();
    let instances = control.execute(command).await.map_err(|e| api.fail(e))?;
    let mut all: Vec<serde_json::Value> = instances
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect();
    let mut missing = Vec::new();
    if from_node.is_none() && control.node_id().is_some() {
        let (others, gone) = crate::peer::instances_elsewhere(&control, &uri).await;
        all.extend(others);
        missing = gone;
    }
    let mut reply = api.json(&json!({"instances": all, "requestId": api.rid()}));
    if !missing.is_empty() {
        if let Ok(v) = http::HeaderValue::from_str(&missing.join(",")) {
            reply.headers_mut().insert(crate::peer::MISSING, v);
        }
    }
    Ok(reply)
}
