//! The async layer's errors, each keeping its cause. FC codes are not decided here: the
//! gateway maps them (`fcx-gateway/src/error.rs`), and hands the same mapping to
//! [`AsyncService`](crate::AsyncService) for the error text task records keep.

use fcx_runtime::BodyError;
use fcx_scheduler::SchedulerError;
use fcx_store::StoreError;

/// Why an async operation or run failed; the gateway decides the FC code.
#[derive(Debug, thiserror::Error)]
pub enum AsyncError {
    /// The event could not be committed to the queue.
    #[error("cannot enqueue: {0}")]
    Enqueue(#[source] StoreError),
    /// Reading or changing task records failed.
    #[error(transparent)]
    Store(StoreError),
    /// A run could not reach the function, or not come back from it.
    #[error(transparent)]
    Run(SchedulerError),
    /// The function's answer broke off while it was read.
    #[error(transparent)]
    ResponseBroken(BodyError),
}

/// The platform error a failed run is recorded with (`Code: message`): the gateway's mapping.
pub type ErrorText = fn(&AsyncError) -> String;
