//! The FC wire contract, shared by every other crate: header names, limits, how an instance's
//! `/invoke` answer maps to success or failure, platform error codes and their JSON bodies, and
//! the log markers, W3C trace context. Pure data and functions, no I/O; the gateway and scheduler build on it.

pub mod error;
pub mod headers;
pub mod limits;
pub mod logs;
pub mod outcome;
pub mod trace;

pub use error::{ApiFlavor, ErrorCode, FcError};
pub use outcome::{classify_invoke_response, function_error_body, Outcome};
