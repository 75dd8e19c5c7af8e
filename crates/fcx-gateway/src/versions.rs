//! Versions and aliases (FC 3.0): PublishFunctionVersion, ListFunctionVersions,
//! DeleteFunctionVersion, alias CRUD, and the qualifier resolution invocations use
//! (LATEST, a version id, or an alias with weighted routing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use fcx_model::versions::{self, Alias, Version};
use fcx_model::{Function, ModelError};
use fcx_protocol::{ErrorCode, FcError};
use fcx_scheduler::Deployed;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::body::read_limited;
use crate::ctx::{Ctx, Reply};
use crate::error::ApiError;
use crate::state::App;
use crate::time::now_rfc3339;

const BODY_MAX: usize = 64 * 1024;
const COUNTER: &str = "version-counter";

/// A stored version: its record and the function as it was when published.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    version: Version,
    function: Function,
}

/// Aliases of every function, in memory for the invoke path (function → alias → record).
#[derive(Default)]
pub struct AliasCache(Mutex<HashMap<String, HashMap<String, Alias>>>);

impl AliasCache {
    fn get(&self, function: &str, alias: &str) -> Option<Alias> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(function).and_then(|a| a.get(alias)).cloned()
    }

    fn put(&self, function: &str, alias: Alias) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(function.to_owned())
            .or_default()
            .insert(alias.alias_name.clone(), alias);
    }

    fn remove(&self, function: &str, alias: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = map.get_mut(function) {
            a.remove(alias);
        }
    }

    /// Forgets a deleted function's aliases.
    pub fn forget(&self, function: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(function);
    }

    fn using_version(&self, function: &str, version: &str) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(function)?
            .values()
            .find(|a| a.version_id == version || a.additional_version_weight.contains_key(version))
            .map(|a| a.alias_name.clone())
    }
}

/// The version an invocation with `qualifier` runs: `None` for LATEST.
pub fn resolve(app: &App, name: &str, qualifier: &str) -> Result<Option<String>, FcError> {
    if qualifier == "LATEST" {
        return Ok(None);
    }
    if versions::validate_version_id("qualifier", qualifier).is_ok() {
        return Ok(Some(qualifier.to_owned()));
    }
    let alias = app.aliases.get(name, qualifier).ok_or_else(|| {
        if app.scheduler.has_function(name) {
            FcError::new(
                ErrorCode::AliasNotFound,
                format!("alias '{qualifier}' of function '{name}' does not exist"),
            )
        } else {
            FcError::function_not_found(name)
        }
    })?;
    let r = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
    Ok(Some(alias.pick(r).to_owned()))
}

/// Deploys every stored version and loads every alias (server start).
pub fn load_all(app: &App, function: &str) -> Result<(), fcx_store::StoreError> {
    for (_, doc) in app.store.function_configs_of(function, "version:")? {
        if let Ok(v) = serde_json::from_str::<StoredVersion>(&doc) {
            deploy(app, v);
        }
    }
    for (_, doc) in app.store.function_configs_of(function, "alias:")? {
        if let Ok(a) = serde_json::from_str::<Alias>(&doc) {
            app.aliases.put(function, a);
        }
    }
    Ok(())
}

fn deploy(app: &App, mut v: StoredVersion) {
    let code_zip = app.code_zip(&mut v.function);
    app.scheduler.deploy(Deployed {
        function: v.function,
        version_id: Some(v.version.version_id),
        code_zip,
    });
}

impl Ctx {
    fn version(&self, app: &App, name: &str, id: &str) -> Result<StoredVersion, ApiError> {
        let doc = app
            .store
            .function_config(name, &format!("version:{id:0>10}"))
            .map_err(|e| self.internal(e))?
            .ok_or_else(|| {
                self.fail(FcError::new(
                    ErrorCode::VersionNotFound,
                    format!("version '{id}' of function '{name}' does not exist"),
                ))
            })?;
        serde_json::from_str(&doc).map_err(|e| self.internal(e))
    }
}

pub async fn publish(State(app): State<Arc<App>>, Path(name): Path<String>, body: Body) -> Reply {
    let c = Ctx::new();
    let function = c.function(&app, &name)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = versions::parse_publish(&bytes).map_err(|e| c.model(e))?;
    let last: u64 = app
        .store
        .function_config(&name, COUNTER)
        .map_err(|e| c.internal(e))?
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let id = (last + 1).to_string();
    let now = now_rfc3339();
    let stored = StoredVersion {
        version: Version {
            version_id: id.clone(),
            description: input.description.unwrap_or_default(),
            created_time: now.clone(),
            last_modified_time: now,
        },
        function,
    };
    let doc = serde_json::to_string(&stored).map_err(|e| c.internal(e))?;
    // Zero-padded kinds keep versions in numeric order in the store.
    app.store
        .put_function_config(&name, &format!("version:{id:0>10}"), &doc)
        .and_then(|()| app.store.put_function_config(&name, COUNTER, &id))
        .map_err(|e| c.internal(e))?;
    let version = stored.version.clone();
    deploy(&app, stored);
    Ok(c.ok(StatusCode::OK, Some(json!(version))))
}

pub async fn list_versions(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return Err(c.model(ModelError::new(
                "limit",
                "must be a number between 1 and 100",
            )))
        }
    };
    let backward = match q.get("direction").map(String::as_str) {
        None | Some("BACKWARD") => true,
        Some("FORWARD") => false,
        Some(d) => {
            return Err(c.model(ModelError::new(
                "direction",
                format!("must be FORWARD or BACKWARD, got '{d}'"),
            )))
        }
    };
    let mut all: Vec<Version> = app
        .store
        .function_configs_of(&name, "version:")
        .map_err(|e| c.internal(e))?
        .into_iter()
        .filter_map(|(_, d)| {
            serde_json::from_str::<StoredVersion>(&d)
                .ok()
                .map(|v| v.version)
        })
        .collect();
    if backward {
        all.reverse();
    }
    let start = match q.get("nextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => all.iter().position(|v| &v.version_id == t).ok_or_else(|| {
            c.model(ModelError::new(
                "nextToken",
                format!("'{t}' is not a token this server issued"),
            ))
        })?,
    };
    let page: Vec<&Version> = all.iter().skip(start).take(limit).collect();
    let mut body = json!({
        "versions": page,
        "direction": if backward { "BACKWARD" } else { "FORWARD" },
    });
    if let Some(next) = all.get(start + limit) {
        body["nextToken"] = json!(next.version_id);
    }
    Ok(c.ok(StatusCode::OK, Some(body)))
}

pub async fn delete_version(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    versions::validate_version_id("versionId", &id).map_err(|e| c.model(e))?;
    c.version(&app, &name, &id)?;
    if let Some(alias) = app.aliases.using_version(&name, &id) {
        return Err(c.fail(
            FcError::invalid_argument(format!(
                "versionId: version '{id}' is used by alias '{alias}'; point the alias elsewhere first"
            ))
            .with_detail("Field", "versionId"),
        ));
    }
    app.store
        .delete_function_config(&name, &format!("version:{id:0>10}"))
        .map_err(|e| c.internal(e))?;
    app.scheduler.remove_version(&name, &id);
    Ok(c.ok(StatusCode::NO_CONTENT, None))
}

fn alias_not_found(name: &str, alias: &str) -> FcError {
    FcError::new(
        ErrorCode::AliasNotFound,
        format!("alias '{alias}' of function '{name}' does not exist"),
    )
}

/// Every version an alias names must exist.
fn check_versions(c: &Ctx, app: &App, name: &str, alias: &Alias) -> Result<(), ApiError> {
    c.version(app, name, &alias.version_id)?;
    for v in alias.additional_version_weight.keys() {
        c.version(app, name, v)?;
    }
    Ok(())
}

fn save_alias(c: &Ctx, app: &App, name: &str, alias: &Alias) -> Result<(), ApiError> {
    let doc = serde_json::to_string(alias).map_err(|e| c.internal(e))?;
    app.store
        .put_function_config(name, &format!("alias:{}", alias.alias_name), &doc)
        .map_err(|e| c.internal(e))?;
    app.aliases.put(name, alias.clone());
    Ok(())
}

pub async fn create_alias(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: Body,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = versions::parse_alias(&bytes, true).map_err(|e| c.model(e))?;
    let alias_name = input.alias_name.unwrap_or_default();
    if app.aliases.get(&name, &alias_name).is_some() {
        return Err(c.fail(FcError::new(
            ErrorCode::AliasAlreadyExists,
            format!("alias '{alias_name}' of function '{name}' already exists"),
        )));
    }
    let now = now_rfc3339();
    let alias = Alias {
        alias_name,
        version_id: input.version_id.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        additional_version_weight: input.additional_version_weight.unwrap_or_default(),
        created_time: now.clone(),
        last_modified_time: now,
    };
    check_versions(&c, &app, &name, &alias)?;
    save_alias(&c, &app, &name, &alias)?;
    Ok(c.ok(StatusCode::OK, Some(json!(alias))))
}

pub async fn get_alias(
    State(app): State<Arc<App>>,
    Path((name, alias)): Path<(String, String)>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let a = app
        .aliases
        .get(&name, &alias)
        .ok_or_else(|| c.fail(alias_not_found(&name, &alias)))?;
    Ok(c.ok(StatusCode::OK, Some(json!(a))))
}

pub async fn list_aliases(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let prefix = q.get("prefix").map(String::as_str).unwrap_or("");
    let mut aliases: Vec<Alias> = app
        .store
        .function_configs_of(&name, &format!("alias:{prefix}"))
        .map_err(|e| c.internal(e))?
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str(&d).ok())
        .collect();
    aliases.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
    Ok(c.ok(StatusCode::OK, Some(json!({ "aliases": aliases }))))
}

pub async fn update_alias(
    State(app): State<Arc<App>>,
    Path((name, alias_name)): Path<(String, String)>,
    body: Body,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let mut alias = app
        .aliases
        .get(&name, &alias_name)
        .ok_or_else(|| c.fail(alias_not_found(&name, &alias_name)))?;
    let bytes = read_limited(body, BODY_MAX).await.map_err(|e| c.fail(e))?;
    let input = versions::parse_alias(&bytes, false).map_err(|e| c.model(e))?;
    if let Some(v) = input.version_id {
        alias.version_id = v;
    }
    if let Some(d) = input.description {
        alias.description = d;
    }
    if let Some(w) = input.additional_version_weight {
        alias.additional_version_weight = w;
    }
    alias.last_modified_time = now_rfc3339();
    check_versions(&c, &app, &name, &alias)?;
    save_alias(&c, &app, &name, &alias)?;
    Ok(c.ok(StatusCode::OK, Some(json!(alias))))
}

pub async fn delete_alias(
    State(app): State<Arc<App>>,
    Path((name, alias)): Path<(String, String)>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let deleted = app
        .store
        .delete_function_config(&name, &format!("alias:{alias}"))
        .map_err(|e| c.internal(e))?;
    if !deleted {
        return Err(c.fail(alias_not_found(&name, &alias)));
    }
    app.aliases.remove(&name, &alias);
    Ok(c.ok(StatusCode::NO_CONTENT, None))
}

/// The routes of this module, merged into the main router.
pub fn routes() -> axum::Router<Arc<App>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(
            "/2023-03-30/functions/{name}/versions",
            crate::routes::not_supported(post(publish).get(list_versions)),
        )
        .route(
            "/2023-03-30/functions/{name}/versions/{version}",
            crate::routes::not_supported(axum::routing::delete(delete_version)),
        )
        .route(
            "/2023-03-30/functions/{name}/aliases",
            crate::routes::not_supported(post(create_alias).get(list_aliases)),
        )
        .route(
            "/2023-03-30/functions/{name}/aliases/{alias}",
            crate::routes::not_supported(get(get_alias).put(update_alias).delete(delete_alias)),
        )
}
