//! The URL map: FC 3.0 management and invoke paths (each management route runs one typed
//! command of the control plane), FC 2.0 invoke paths, and FC-shaped answers for wrong
//! methods and unknown paths. Path parameters carry FC's names, which the commands share.

use std::sync::Arc;

use axum::extract::Request;
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;
use fcx_control::aliases::{CreateAlias, DeleteAlias, GetAlias, ListAliases, UpdateAlias};
use fcx_control::asyncs::{
    DeleteAsyncConfig, GetAsyncConfig, GetAsyncTask, ListAsyncTasks, PutAsyncConfig, StopAsyncTask,
};
use fcx_control::domains::{
    CreateCustomDomain, DeleteCustomDomain, GetCustomDomain, ListCustomDomains, UpdateCustomDomain,
};
use fcx_control::functions::{
    CreateFunction, DeleteFunction, GetFunction, ListFunctions, UpdateFunction,
};
use fcx_control::logs::GetLogs;
use fcx_control::scaling::{
    ConcurrencyInput, DeleteConfig, GetConcurrency, GetConfig, ProvisionInput, PutConcurrency,
    PutConfig, ScalingInput, Shown,
};
use fcx_control::status::GetStatus;
use fcx_control::triggers::{
    CreateTrigger, DeleteTrigger, GetTrigger, ListTriggers, UpdateTrigger,
};
use fcx_control::versions::{DeleteVersion, ListVersions, PublishVersion};
use fcx_control::{BodyCommand, Command};
use fcx_protocol::{limits, ApiFlavor, FcError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::auth::Verifier;
use crate::error::ApiError;
use crate::handlers::{json, json_with_body, list_instances, no_content};
use crate::invoke::{invoke_fc2, invoke_fc3};
use crate::state::{new_request_id, Shared};

/// Most bytes of a CreateFunction / UpdateFunction body (FC takes larger packages via OSS).
const FUNCTION: usize = limits::FUNCTION_BODY_MAX;
/// Most bytes of every other management body.
const DOC: usize = 64 * 1024;
/// Most bytes of a custom domain's body (it carries a certificate chain and key).
const DOMAIN: usize = 1024 * 1024;

/// Every route; with a verifier, each request (unknown paths too) must be signed, except
/// the status page's static HTML. `/metrics` is among the signed routes then
/// (`--metrics-listen` serves it unauthenticated).
pub fn router(control: Shared, verifier: Option<Arc<Verifier>>) -> Router {
    // Not `/`: there FC answers the browser's GET with the NotFound that explains how event
    // functions are invoked.
    let public = Router::new().route(crate::status::PAGE, get(crate::status::page));
    let router = Router::new()
        .route(crate::metrics::PATH, get(crate::metrics::metrics))
        .route(crate::status::DATA, get(json::<GetStatus>))
        .fc3("", collection::<CreateFunction, ListFunctions, FUNCTION>())
        .fc3(
            "/{functionName}",
            item::<GetFunction, UpdateFunction, DeleteFunction, FUNCTION>(),
        )
        .fc3("/{functionName}/invocations", post(invoke_fc3))
        .fc3(
            "/{functionName}/versions",
            collection::<PublishVersion, ListVersions, DOC>(),
        )
        .fc3(
            "/{functionName}/versions/{versionId}",
            delete(no_content::<DeleteVersion>),
        )
        .fc3(
            "/{functionName}/aliases",
            collection::<CreateAlias, ListAliases, DOC>(),
        )
        .fc3(
            "/{functionName}/aliases/{aliasName}",
            item::<GetAlias, UpdateAlias, DeleteAlias, DOC>(),
        )
        .fc3(
            "/{functionName}/triggers",
            collection::<CreateTrigger, ListTriggers, DOC>(),
        )
        .fc3(
            "/{functionName}/triggers/{triggerName}",
            item::<GetTrigger, UpdateTrigger, DeleteTrigger, DOC>(),
        )
        .fc3(
            "/{functionName}/concurrency",
            item::<GetConcurrency, PutConcurrency, DeleteConfig<ConcurrencyInput>, DOC>(),
        )
        .fc3(
            "/{functionName}/provision-config",
            document::<ProvisionInput>(),
        )
        .fc3("/{functionName}/scaling-config", document::<ScalingInput>())
        .fc3(
            "/{functionName}/async-invoke-config",
            item::<GetAsyncConfig, PutAsyncConfig, DeleteAsyncConfig, DOC>(),
        )
        .fc3("/{functionName}/async-tasks", get(json::<ListAsyncTasks>))
        .fc3(
            "/{functionName}/async-tasks/{taskId}",
            get(json::<GetAsyncTask>),
        )
        .fc3(
            "/{functionName}/async-tasks/{taskId}/stop",
            put(json::<StopAsyncTask>),
        )
        .fc3("/{functionName}/logs", get(json::<GetLogs>))
        .fc3("/{functionName}/instances", get(list_instances))
        .route(
            "/2023-03-30/custom-domains",
            not_supported(collection::<CreateCustomDomain, ListCustomDomains, DOMAIN>()),
        )
        .route(
            "/2023-03-30/custom-domains/{domainName}",
            not_supported(item::<
                GetCustomDomain,
                UpdateCustomDomain,
                DeleteCustomDomain,
                DOMAIN,
            >()),
        )
        .route(
            "/2016-08-15/services/{service}/functions/{functionName}/invocations",
            not_supported(post(invoke_fc2)),
        )
        .route(
            "/2021-04-06/services/{service}/functions/{functionName}/invocations",
            not_supported(post(invoke_fc2)),
        )
        .fallback(unknown_path)
        .with_state(Arc::clone(&control));
    let router = match verifier {
        Some(v) => crate::auth::layer(router, v),
        None => router,
    };
    // Outermost: node-to-node requests are recognised (and marks stripped) first.
    let router = router.layer(axum::middleware::from_fn_with_state(
        control,
        crate::peer::from_node,
    ));
    public.merge(router)
}

trait Fc3Routes {
    /// `methods` at `/2023-03-30/functions<path>`; other methods get PathNotSupported.
    fn fc3(self, path: &str, methods: MethodRouter<Shared>) -> Self;
}

impl Fc3Routes for Router<Shared> {
    fn fc3(self, path: &str, methods: MethodRouter<Shared>) -> Self {
        self.route(
            &format!("/2023-03-30/functions{path}"),
            not_supported(methods),
        )
    }
}

/// A collection: POST creates (a body of at most `LIMIT` bytes), GET lists.
fn collection<Create, List, const LIMIT: usize>() -> MethodRouter<Shared>
where
    Create: BodyCommand + DeserializeOwned,
    Create::Output: Serialize,
    List: Command + DeserializeOwned,
    List::Output: Serialize,
{
    post(json_with_body::<Create, LIMIT>).get(json::<List>)
}

/// One resource: GET reads, PUT updates (a body of at most `LIMIT` bytes), DELETE deletes.
fn item<Read, Update, Delete, const LIMIT: usize>() -> MethodRouter<Shared>
where
    Read: Command + DeserializeOwned,
    Read::Output: Serialize,
    Update: BodyCommand + DeserializeOwned,
    Update::Output: Serialize,
    Delete: Command<Output = ()> + DeserializeOwned,
{
    get(json::<Read>)
        .put(json_with_body::<Update, LIMIT>)
        .delete(no_content::<Delete>)
}

/// A scaling document (provision-config, scaling-config).
fn document<D: Shown>() -> MethodRouter<Shared> {
    item::<GetConfig<D>, PutConfig<D>, DeleteConfig<D>, DOC>()
}

/// A known path with a method it does not take (e.g. a browser `GET .../invocations`).
pub(crate) fn not_supported(router: MethodRouter<Shared>) -> MethodRouter<Shared> {
    router.fallback(|req: Request| async move {
        let flavor = flavor_of(req.uri().path());
        ApiError::new(
            FcError::path_not_supported(req.method().as_str(), req.uri().path()),
            flavor,
            &new_request_id(),
        )
    })
}

async fn unknown_path(req: Request) -> ApiError {
    ApiError::new(
        FcError::unknown_path(req.method().as_str(), req.uri().path()),
        flavor_of(req.uri().path()),
        &new_request_id(),
    )
}

pub(crate) fn flavor_of(path: &str) -> ApiFlavor {
    if path.starts_with("/2016-08-15/") || path.starts_with("/2021-04-06/") {
        ApiFlavor::Fc2
    } else {
        ApiFlavor::Fc3
    }
}
