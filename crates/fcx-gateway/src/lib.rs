//! The HTTP front of fcx: request signature verification (`auth`), the routes (FC 3.0
//! management API, InvokeFunction on the FC 3.0 and FC 2.0 paths), request parsing into the
//! control plane's typed commands (`params`, `handlers`, `invoke`), HTTP triggers and custom
//! domains passed through to functions (`web`: host and path matching, FC's limits and
//! reserved headers, auth, async), body limits, the one reply helper (`reply`) and error
//! mapping (`error`), `GET /metrics` (`metrics`, also on its own `--metrics-listen`
//! address), the status page (`status`), trace context and the invoke span (`trace`),
//! client connections under timeouts and a connection limit (`conn`, `head`; fcx's own
//! HTTP/1.1 loop for plain requests ahead of hyper's, `h1`), and serving
//! on HTTP and HTTPS (SNI, `tls`) with a bounded draining shutdown (`serve`), the API
//! listener on one current-thread runtime per `--serve-threads` thread (`shards`). Handlers call
//! only [`fcx_control::ControlPlane`].

pub mod auth;
mod body;
mod conn;
pub mod error;
mod fast;
mod h1;
mod handlers;
mod head;
mod invoke;
mod metrics;
mod params;
pub mod peer;
mod reply;
mod routes;
mod serve;
mod shards;
mod state;
mod status;
mod tls;
pub mod trace;
mod web;

pub use auth::AuthMode;
pub use conn::ConnLimits;
pub use head::HEADER_LINE_MAX;
pub use serve::{default_serve_threads, serve, HttpConfig, ServeError, Serving, MAX_SERVE_THREADS};
