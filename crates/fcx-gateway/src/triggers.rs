//! Trigger CRUD (FC 3.0): CreateTrigger, GetTrigger, ListTriggers, UpdateTrigger,
//! DeleteTrigger. Triggers are stored per function (`trigger:<name>` documents) and returned
//! in FC's shape; firing them per kind is not implemented yet.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use fcx_model::triggers::{self, Trigger};
use fcx_model::ModelError;
use fcx_protocol::{ErrorCode, FcError};
use http::StatusCode;
use serde_json::json;

use crate::body::read_limited;
use crate::ctx::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::App;
use crate::time::now_rfc3339;

const BODY_MAX: usize = 64 * 1024;
const LIST_LIMIT_MAX: usize = 100;

impl Ctx {
    fn trigger(&self, app: &App, name: &str, trigger: &str) -> Result<Trigger, ApiError> {
        let doc = app
            .store
            .function_config(name, &format!("trigger:{trigger}"))
            .map_err(|e| self.internal(e))?
            .ok_or_else(|| {
                self.fail(FcError::new(
                    ErrorCode::TriggerNotFound,
                    format!("trigger '{trigger}' of function '{name}' does not exist"),
                ))
            })?;
        serde_json::from_str(&doc).map_err(|e| self.internal(e))
    }
    fn save(&self, app: &App, name: &str, t: &Trigger) -> Result<(), ApiError> {
        let doc = serde_json::to_string(t).map_err(|e| self.internal(e))?;
        app.store
            .put_function_config(name, &format!("trigger:{}", t.trigger_name), &doc)
            .map_err(|e| self.internal(e))
    }
}

pub async fn create(State(app): State<Arc<App>>, Path(name): Path<String>, body: Body) -> Reply {
    let c = Ctx::new();
    let arn = c.function_arn(&app, &name)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = triggers::parse_trigger(&bytes, true).map_err(|e| c.model(e))?;
    let trigger_name = input.trigger_name.unwrap_or_default();
    if c.trigger(&app, &name, &trigger_name).is_ok() {
        return Err(c.fail(FcError::new(
            ErrorCode::TriggerAlreadyExists,
            format!("trigger '{trigger_name}' of function '{name}' already exists"),
        )));
    }
    let now = now_rfc3339();
    let t = Trigger {
        trigger_name,
        trigger_id: uuid::Uuid::new_v4().to_string(),
        trigger_type: input.trigger_type.unwrap_or_default(),
        trigger_config: input.trigger_config.unwrap_or_default(),
        qualifier: input.qualifier.unwrap_or_else(|| "LATEST".into()),
        description: input.description.unwrap_or_default(),
        source_arn: input.source_arn,
        invocation_role: input.invocation_role,
        target_arn: arn,
        status: "Ready".into(),
        created_time: now.clone(),
        last_modified_time: now,
    };
    c.save(&app, &name, &t)?;
    tracing::warn!(function = %name, trigger = %t.trigger_name, kind = %t.trigger_type,
        "trigger stored; fcx does not fire triggers yet");
    Ok(c.ok(StatusCode::OK, Some(json!(t))))
}

pub async fn get(
    State(app): State<Arc<App>>,
    Path((name, trigger)): Path<(String, String)>,
) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    let t = c.trigger(&app, &name, &trigger)?;
    Ok(c.ok(StatusCode::OK, Some(json!(t))))
}

pub async fn list(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=LIST_LIMIT_MAX).contains(&n) => n,
        _ => {
            return Err(c.model(ModelError::new(
                "limit",
                format!("must be a number between 1 and {LIST_LIMIT_MAX}"),
            )))
        }
    };
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("");
    let after = q.get("nextToken").filter(|t| !t.is_empty());
    let all: Vec<Trigger> = app
        .store
        .function_configs_of(&name, &format!("trigger:{prefix}"))
        .map_err(|e| c.internal(e))?
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str(&d).ok())
        .filter(|t: &Trigger| match after {
            Some(a) => t.trigger_name.as_str() > a.as_str(),
            None => true,
        })
        .collect();
    let page: Vec<&Trigger> = all.iter().take(limit).collect();
    let mut body = json!({ "triggers": page });
    if all.len() > limit {
        body["nextToken"] = json!(page.last().map(|t| t.trigger_name.clone()));
    }
    Ok(c.ok(StatusCode::OK, Some(body)))
}

pub async fn update(
    State(app): State<Arc<App>>,
    Path((name, trigger)): Path<(String, String)>,
    body: Body,
) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    let mut t = c.trigger(&app, &name, &trigger)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = triggers::parse_trigger(&bytes, false).map_err(|e| c.model(e))?;
    if let Some(v) = input.trigger_config {
        t.trigger_config = v;
    }
    if let Some(v) = input.qualifier {
        t.qualifier = v;
    }
    if let Some(v) = input.description {
        t.description = v;
    }
    if input.invocation_role.is_some() {
        t.invocation_role = input.invocation_role;
    }
    t.last_modified_time = now_rfc3339();
    c.save(&app, &name, &t)?;
    Ok(c.ok(StatusCode::OK, Some(json!(t))))
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Path((name, trigger)): Path<(String, String)>,
) -> Reply {
    let c = Ctx::new();
    c.function_arn(&app, &name)?;
    c.trigger(&app, &name, &trigger)?;
    app.store
        .delete_function_config(&name, &format!("trigger:{trigger}"))
        .map_err(|e| c.internal(e))?;
    Ok(c.ok(StatusCode::NO_CONTENT, None))
}

/// The routes of this module, merged into the main router.
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get as get_route, post};
    axum::Router::new()
        .route(
            "/2023-03-30/functions/{name}/triggers",
            crate::routes::not_supported(post(create).get(list)),
        )
        .route(
            "/2023-03-30/functions/{name}/triggers/{trigger}",
            crate::routes::not_supported(get_route(get).put(update).delete(delete)),
        )
}
