//! From a deployed function to a running instance: unpack its code (code packages) or
//! fetch its image (custom containers), build the launch description, and hand it to the
//! backend that runs that kind of function. Maps every start failure to its FC error.

use std::sync::Arc;
use std::time::Duration;

use fcx_image::{ImageError, ImageStore};
use fcx_protocol::{ErrorCode, FcError};
use fcx_runtime::{EventOutcome, Instance, InstanceSpec, OciBackend, StartError, StartFailure};

use crate::pool::Pool;
use crate::{container, context, Deployed, Scheduler};

/// The OCI backend and the image cache it runs from.
pub struct Containers {
    pub backend: Arc<OciBackend>,
    pub images: Arc<ImageStore>,
}

/// The launch description of an instance of `deployed`.
pub async fn spec(sched: &Scheduler, deployed: &Deployed) -> Result<InstanceSpec, FcError> {
    let f = &deployed.function;
    if let Some(zip) = &deployed.code_zip {
        let code_dir = sched
            .code
            .ensure(&f.code_sha256, zip)
            .await
            .map_err(|e| FcError::internal(e.to_string()))?;
        return Ok(context::instance_spec(deployed, &code_dir, &sched.config));
    }
    let Some(cc) = &f.custom_container_config else {
        return Err(FcError::internal(format!(
            "function '{}' has neither code nor an image",
            f.function_name
        )));
    };
    let containers = sched.containers.as_ref().ok_or_else(|| {
        FcError::new(
            ErrorCode::RuntimeUnavailable,
            format!(
                "function '{}' runs the container image {}, but this fcx server runs without \
                 an OCI runtime (--oci-runtime none); restart it with --oci-runtime crun \
                 (run `fcx doctor` first)",
                f.function_name, cc.image
            ),
        )
    })?;
    let opts = container::registry_options(f).map_err(FcError::invalid_argument)?;
    let image = containers
        .images
        .ensure(&cc.image, &opts, None)
        .await
        .map_err(image_error)?;
    Ok(container::instance_spec(deployed, &image, &sched.config))
}

/// Starts a web-server instance of `pool` on the backend that runs `spec`: from one of the
/// pool's pre-created sandboxes when it has one.
pub async fn start(
    sched: &Scheduler,
    pool: &Pool,
    spec: &InstanceSpec,
) -> Result<Instance, FcError> {
    let started = match (&spec.container, &sched.containers) {
        (Some(_), Some(c)) => match pool.sandboxes.take() {
            Some(sandbox) => match c.backend.start_prepared(sandbox, spec).await {
                Ok(instance) => Ok(instance),
                // A user-visible failure (the function's own) is the answer; a broken
                // sandbox is not: start afresh.
                Err(
                    e @ (StartError::NotStarted { .. }
                    | StartError::Failed {
                        kind:
                            StartFailure::EntrypointNotFound
                            | StartFailure::EntrypointNotExecutable
                            | StartFailure::OutOfMemory,
                        ..
                    }),
                ) => Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "pre-created sandbox failed; starting afresh");
                    c.backend.start(spec).await
                }
            },
            None => c.backend.start(spec).await,
        },
        _ => sched.backend.start(spec).await,
    };
    started.map_err(start_error)
}

/// Runs one non-web-server invocation on the backend that runs `spec`.
pub async fn run_event(
    sched: &Scheduler,
    spec: &InstanceSpec,
    event: &[u8],
    timeout: Duration,
    request_id: &str,
) -> Result<EventOutcome, FcError> {
    let run = match (&spec.container, &sched.containers) {
        (Some(_), Some(c)) => c.backend.run_event(spec, event, timeout, request_id).await,
        _ => {
            sched
                .backend
                .run_event(spec, event, timeout, request_id)
                .await
        }
    };
    run.map_err(start_error)
}

/// FC's answer to an image that could not be had.
pub fn image_error(e: ImageError) -> FcError {
    let code = match &e {
        ImageError::NotFound { .. } => ErrorCode::ImageNotFound,
        ImageError::Unauthorized { .. } => ErrorCode::ImageAccessDenied,
        ImageError::Unreachable { .. } => ErrorCode::RegistryUnreachable,
        ImageError::UnsupportedPlatform { .. } => ErrorCode::ImagePlatformNotSupported,
        ImageError::DigestMismatch { .. }
        | ImageError::UnsafeLayer { .. }
        | ImageError::Invalid { .. } => ErrorCode::ImageInvalid,
        ImageError::Io(_) => ErrorCode::InternalServerError,
    };
    FcError::new(code, e.to_string())
}

/// FC's answer to an instance that did not start.
pub fn start_error(e: StartError) -> FcError {
    match e {
        StartError::NotStarted {
            elapsed,
            cause,
            logs,
        } => FcError::new(
            ErrorCode::FunctionNotStarted,
            format!(
                "The CA's http server cannot be started:ContainerStartDuration:{}. \
                 Ping CA failed due to: {cause} Logs : {logs}",
                elapsed.as_nanos()
            ),
        )
        .with_detail("Diagnosis", cause),
        StartError::Failed {
            kind,
            message,
            logs,
        } => {
            let code = match kind {
                StartFailure::EntrypointNotFound => ErrorCode::EntrypointNotFound,
                StartFailure::EntrypointNotExecutable => ErrorCode::EntrypointNotExecutable,
                StartFailure::RuntimeMissing => ErrorCode::RuntimeUnavailable,
                StartFailure::CgroupRefused => ErrorCode::CgroupSetupFailed,
                StartFailure::OutOfMemory => ErrorCode::MemoryLimitExceeded,
                StartFailure::Sandbox => ErrorCode::InternalServerError,
            };
            let mut err = FcError::new(code, message);
            if !logs.is_empty() {
                err = err.with_detail("Logs", logs);
            }
            err
        }
        other => FcError::internal(other.to_string()),
    }
}
