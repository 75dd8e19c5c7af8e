//! `GET /metrics`: the Prometheus text exposition of every layer's series, encoded by
//! `prometheus-client` off the async workers (collectors read files and the database). On
//! the API listener it is behind the same authentication as the API; `--metrics-listen`
//! serves it alone, unauthenticated, for Prometheus.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fcx_control::ControlPlane;
use http::{header, HeaderValue, StatusCode};

pub const PATH: &str = "/metrics";

pub async fn metrics(
    axum::extract::State(control): axum::extract::State<Arc<ControlPlane>>,
) -> Response {
    let metrics = Arc::clone(control.metrics());
    match tokio::task::spawn_blocking(move || metrics.encode()).await {
        Ok(text) => {
            let mut r = text.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(fcx_metrics_content_type()),
            );
            r
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}"),
        )
            .into_response(),
    }
}

fn fcx_metrics_content_type() -> &'static str {
    "text/plain; version=0.0.4; charset=utf-8"
}

/// The router of `--metrics-listen`: `/metrics` and nothing else.
pub fn router(control: Arc<ControlPlane>) -> Router {
    Router::new()
        .route(PATH, get(metrics))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "this listener serves /metrics only\n",
            )
        })
        .with_state(control)
}
