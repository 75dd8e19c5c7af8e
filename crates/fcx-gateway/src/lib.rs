//! The HTTP front of fcx: FC 3.0 management API for functions, InvokeFunction (FC 3.0 and
//! FC 2.0 paths), body limits, FC-shaped errors, and server start-up. Handlers parse requests
//! into typed calls on the store and the scheduler; they never reach into instances.

mod async_api;
pub mod auth;
mod body;
mod ctx;
pub mod error;
mod functions;
mod invoke;
mod logs;
mod routes;
mod scaling;
pub mod server;
mod state;
mod time;
mod triggers;
mod versions;

pub use auth::AuthMode;
pub use server::{prefix_for, run, ServerConfig, ServerError};
