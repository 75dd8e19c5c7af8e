//! Per-function scaling APIs (FC 3.0): concurrency (reserved concurrency), provision-config
//! (provisioned instances), scaling-config (minimum instances) and ListInstances. Documents
//! are stored, then applied to the scheduler; they are re-applied at start.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use fcx_model::scaling::{self, ProvisionInput, ScalingInput};
use fcx_model::ModelError;
use fcx_protocol::FcError;
use http::StatusCode;
use serde_json::{json, Value};

use crate::body::read_limited;
use crate::ctx::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::App;

/// Document kinds in the store.
pub const CONCURRENCY: &str = "concurrency";
pub const PROVISION: &str = "provision";
pub const SCALING: &str = "scaling";

/// Largest body these APIs take.
const BODY_MAX: usize = 64 * 1024;

impl Ctx {
    fn qualifier(&self, query: &HashMap<String, String>) -> Result<(), ApiError> {
        match query.get("qualifier").map(String::as_str) {
            None | Some("LATEST") => Ok(()),
            Some(q) => Err(self.fail(
                FcError::invalid_argument(format!(
                    "qualifier: '{q}' is not available: this fcx server serves LATEST only"
                ))
                .with_detail("Field", "qualifier"),
            )),
        }
    }
}

fn stored<T: serde::de::DeserializeOwned + Default>(app: &App, name: &str, kind: &str) -> T {
    app.store
        .function_config(name, kind)
        .ok()
        .flatten()
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or_default()
}

/// Re-applies a function's limits from its stored documents.
pub fn apply(app: &App, name: &str) {
    let reserved = app
        .store
        .function_config(name, CONCURRENCY)
        .ok()
        .flatten()
        .and_then(|d| serde_json::from_str::<scaling::ConcurrencyInput>(&d).ok())
        .and_then(|c| c.reserved_concurrency);
    app.scheduler.set_reserved_concurrency(name, reserved);
    let provision: ProvisionInput = stored(app, name, PROVISION);
    let scaling: ScalingInput = stored(app, name, SCALING);
    let min = provision
        .instances()
        .max(scaling.min_instances.unwrap_or(0));
    app.scheduler.set_min_instances(name, min);
}

/// Applies every stored document (server start).
pub fn apply_all(app: &App) -> Result<(), fcx_store::StoreError> {
    let mut names = std::collections::BTreeSet::new();
    for kind in [CONCURRENCY, PROVISION, SCALING] {
        names.extend(
            app.store
                .function_configs(kind)?
                .into_iter()
                .map(|(n, _)| n),
        );
    }
    for name in names {
        apply(app, &name);
    }
    Ok(())
}

fn live_instances(app: &App, name: &str) -> usize {
    app.scheduler
        .list_instances(name)
        .map(|v| v.len())
        .unwrap_or(0)
}

pub async fn put_concurrency(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Body,
) -> Reply {
    let c = Ctx::new();
    let arn = c.function_arn(&app, &name)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = scaling::parse_concurrency(&bytes).map_err(|e| c.model(e))?;
    let doc = serde_json::to_string(&input).map_err(|e| c.internal(e))?;
    app.store
        .put_function_config(&name, CONCURRENCY, &doc)
        .map_err(|e| c.internal(e))?;
    apply(&app, &name);
    Ok(c.ok(
        StatusCode::OK,
        Some(json!({"functionArn": arn, "reservedConcurrency": input.reserved_concurrency})),
    ))
}

pub async fn get_concurrency(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let c = Ctx::new();
    let arn = c.function_arn(&app, &name)?;
    let mut body = json!({ "functionArn": arn });
    if let Some(doc) = app
        .store
        .function_config(&name, CONCURRENCY)
        .map_err(|e| c.internal(e))?
    {
        let input: scaling::ConcurrencyInput =
            serde_json::from_str(&doc).map_err(|e| c.internal(e))?;
        body["reservedConcurrency"] = json!(input.reserved_concurrency);
    }
    Ok(c.ok(StatusCode::OK, Some(body)))
}

pub async fn delete_config(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    kind: &'static str,
) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    c.qualifier(&query)?;
    app.store
        .delete_function_config(&name, kind)
        .map_err(|e| c.internal(e))?;
    apply(&app, &name);
    Ok(c.ok(StatusCode::NO_CONTENT, None))
}

fn provision_body(app: &App, name: &str, arn: &str, input: &ProvisionInput) -> Value {
    let mut body = serde_json::to_value(input).unwrap_or_else(|_| json!({}));
    body["functionArn"] = json!(arn);
    body["target"] = json!(input.instances());
    body["defaultTarget"] = json!(input.instances());
    body["current"] = json!(live_instances(app, name));
    body
}

fn scaling_body(app: &App, name: &str, arn: &str, input: &ScalingInput) -> Value {
    let mut body = serde_json::to_value(input).unwrap_or_else(|_| json!({}));
    let min = input.min_instances.unwrap_or(0);
    body["functionArn"] = json!(arn);
    body["minInstances"] = json!(min);
    body["targetInstances"] = json!(min);
    body["currentInstances"] = json!(live_instances(app, name));
    body
}

/// A per-function document with Put and Get: its store kind, parser and answer shape.
struct Doc<T> {
    kind: &'static str,
    parse: fn(&[u8]) -> Result<T, ModelError>,
    show: fn(&App, &str, &str, &T) -> Value,
}

const PROVISION_DOC: Doc<ProvisionInput> = Doc {
    kind: PROVISION,
    parse: scaling::parse_provision,
    show: provision_body,
};

const SCALING_DOC: Doc<ScalingInput> = Doc {
    kind: SCALING,
    parse: scaling::parse_scaling,
    show: scaling_body,
};

async fn put_doc<T: serde::Serialize>(
    app: &App,
    name: &str,
    query: &HashMap<String, String>,
    body: Body,
    doc: Doc<T>,
) -> Reply {
    let c = Ctx::new();
    let arn = c.function_arn(app, name)?;
    c.qualifier(query)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = (doc.parse)(&bytes).map_err(|e| c.model(e))?;
    let text = serde_json::to_string(&input).map_err(|e| c.internal(e))?;
    app.store
        .put_function_config(name, doc.kind, &text)
        .map_err(|e| c.internal(e))?;
    apply(app, name);
    Ok(c.ok(StatusCode::OK, Some((doc.show)(app, name, &arn, &input))))
}

fn get_doc<T: serde::de::DeserializeOwned + Default>(
    app: &App,
    name: &str,
    query: &HashMap<String, String>,
    doc: Doc<T>,
) -> Reply {
    let c = Ctx::new();
    let arn = c.function_arn(app, name)?;
    c.qualifier(query)?;
    let input: T = stored(app, name, doc.kind);
    Ok(c.ok(StatusCode::OK, Some((doc.show)(app, name, &arn, &input))))
}

pub async fn put_provision(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    put_doc(&app, &name, &query, body, PROVISION_DOC).await
}

pub async fn get_provision(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    get_doc(&app, &name, &query, PROVISION_DOC)
}

pub async fn put_scaling(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> Reply {
    put_doc(&app, &name, &query, body, SCALING_DOC).await
}

pub async fn get_scaling(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Reply {
    get_doc(&app, &name, &query, SCALING_DOC)
}

pub async fn list_instances(State(app): State<Arc<App>>, Path(name): Path<String>) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    let instances = app.scheduler.list_instances(&name).map_err(|e| c.fail(e))?;
    Ok(c.ok(
        StatusCode::OK,
        Some(json!({"instances": instances, "requestId": c.rid})),
    ))
}
