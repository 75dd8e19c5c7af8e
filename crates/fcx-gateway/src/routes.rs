//! The URL map: FC 3.0 management and invoke paths, FC 2.0 invoke paths, and FC-shaped
//! answers for wrong methods and unknown paths.

use std::sync::Arc;

use axum::extract::Request;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use fcx_protocol::{ApiFlavor, FcError};

use crate::auth::Verifier;
use crate::error::ApiError;
use crate::state::{new_request_id, App};
use crate::{async_api, functions, invoke, logs, scaling};

/// Every route; with a verifier, each request (unknown paths too) must be signed.
pub fn router(app: Arc<App>, verifier: Option<Arc<Verifier>>) -> Router {
    let router = Router::new()
        .route(
            "/2023-03-30/functions",
            not_supported(post(functions::create).get(functions::list)),
        )
        .route(
            "/2023-03-30/functions/{name}",
            not_supported(
                get(functions::get)
                    .put(functions::update)
                    .delete(functions::delete),
            ),
        )
        .route(
            "/2023-03-30/functions/{name}/invocations",
            not_supported(post(invoke::invoke_fc3)),
        )
        .route(
            "/2023-03-30/functions/{name}/concurrency",
            not_supported(
                get(scaling::get_concurrency)
                    .put(scaling::put_concurrency)
                    .delete(|s, p, q| scaling::delete_config(s, p, q, scaling::CONCURRENCY)),
            ),
        )
        .route(
            "/2023-03-30/functions/{name}/provision-config",
            not_supported(
                get(scaling::get_provision)
                    .put(scaling::put_provision)
                    .delete(|s, p, q| scaling::delete_config(s, p, q, scaling::PROVISION)),
            ),
        )
        .route(
            "/2023-03-30/functions/{name}/scaling-config",
            not_supported(
                get(scaling::get_scaling)
                    .put(scaling::put_scaling)
                    .delete(|s, p, q| scaling::delete_config(s, p, q, scaling::SCALING)),
            ),
        )
        .route(
            "/2023-03-30/functions/{name}/async-invoke-config",
            not_supported(
                get(async_api::get_config)
                    .put(async_api::put_config)
                    .delete(async_api::delete_config),
            ),
        )
        .route(
            "/2023-03-30/functions/{name}/async-tasks",
            not_supported(get(async_api::list_tasks)),
        )
        .route(
            "/2023-03-30/functions/{name}/async-tasks/{task_id}",
            not_supported(get(async_api::get_task)),
        )
        .route(
            "/2023-03-30/functions/{name}/async-tasks/{task_id}/stop",
            not_supported(axum::routing::put(async_api::stop_task)),
        )
        .route(
            "/2023-03-30/functions/{name}/logs",
            not_supported(get(logs::get_logs)),
        )
        .route(
            "/2023-03-30/functions/{name}/instances",
            not_supported(get(scaling::list_instances)),
        )
        .route(
            "/2016-08-15/services/{service}/functions/{name}/invocations",
            not_supported(post(invoke::invoke_fc2)),
        )
        .route(
            "/2021-04-06/services/{service}/functions/{name}/invocations",
            not_supported(post(invoke::invoke_fc2)),
        )
        .merge(crate::versions::routes())
        .merge(crate::triggers::routes())
        .fallback(unknown_path)
        .with_state(app);
    match verifier {
        Some(v) => crate::auth::layer(router, v),
        None => router,
    }
}

/// A known path with a method it does not take (e.g. a browser `GET .../invocations`).
pub(crate) fn not_supported(router: MethodRouter<Arc<App>>) -> MethodRouter<Arc<App>> {
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
