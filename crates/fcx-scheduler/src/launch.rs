//! From a deployed function to a running instance: unpack its code (code packages) or
//! fetch its image (custom containers), build the launch description, and hand it to the
//! backend that runs that kind of function.

use std::sync::Arc;
use std::time::Duration;

use fcx_runtime::{Backend, EventOutcome, Instance, InstanceSpec};

use crate::pool::Pool;
use crate::{container, context, Deployed, Scheduler, SchedulerError};

/// The backend that runs `deployed` and the launch description of one of its instances.
pub async fn spec(
    sched: &Scheduler,
    deployed: &Deployed,
) -> Result<(Arc<dyn Backend>, InstanceSpec), SchedulerError> {
    let backend = Arc::clone(sched.backends.for_function(deployed)?);
    let f = &deployed.function;
    if let Some(zip) = &deployed.code_zip {
        let owner = deployed
            .run_as
            .ok_or_else(|| SchedulerError::NoInstanceUser {
                function: f.function_name.clone(),
            })?;
        let code_dir = sched
            .code
            .ensure(&f.code_sha256, zip, owner)
            .await
            .map_err(SchedulerError::Code)?;
        return Ok((
            backend,
            context::instance_spec(deployed, &code_dir, &sched.config),
        ));
    }
    let Some(cc) = &f.custom_container_config else {
        return Err(SchedulerError::NoCodeOrImage {
            function: f.function_name.clone(),
        });
    };
    let images = sched
        .images
        .as_ref()
        .ok_or_else(|| SchedulerError::BackendUnavailable {
            function: f.function_name.clone(),
            image: cc.image.clone(),
            kind: backend.kind(),
        })?;
    let opts = container::registry_options(f).map_err(SchedulerError::RegistryConfig)?;
    let image = pull_counted(sched, images, &cc.image, &opts).await?;
    Ok((
        backend,
        container::instance_spec(deployed, &image, &sched.config),
    ))
}

/// Starts a web-server instance of `pool` on `backend`: from one of the pool's pre-created
/// sandboxes when it has one.
pub async fn start(
    backend: &dyn Backend,
    pool: &Pool,
    spec: &InstanceSpec,
) -> Result<Instance, SchedulerError> {
    let Some(sandbox) = pool.sandboxes.take() else {
        return Ok(backend.start(spec, None).await?);
    };
    match backend.start(spec, Some(sandbox)).await {
        Ok(instance) => Ok(instance),
        // A failure of the function's own is the answer; a broken sandbox is not: start afresh.
        Err(e) if e.blames_function() => Err(e.into()),
        Err(e) => {
            tracing::warn!(error = %e, "pre-created sandbox failed; starting afresh");
            Ok(backend.start(spec, None).await?)
        }
    }
}

/// Runs one non-web-server invocation on `backend`.
pub async fn run_event(
    backend: &dyn Backend,
    spec: &InstanceSpec,
    event: &[u8],
    timeout: Duration,
    request_id: &str,
) -> Result<EventOutcome, SchedulerError> {
    Ok(backend.run_event(spec, event, timeout, request_id).await?)
}

/// `ImageStore::ensure`, counting registry pulls and their bytes (a cached image is no pull).
async fn pull_counted(
    sched: &Scheduler,
    images: &fcx_image::ImageStore,
    reference: &str,
    opts: &fcx_image::RegistryOptions,
) -> Result<fcx_image::Image, SchedulerError> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let cached = Arc::new(AtomicBool::new(false));
    let bytes = Arc::new(AtomicU64::new(0));
    let (c, b) = (Arc::clone(&cached), Arc::clone(&bytes));
    let progress = move |p: &fcx_image::Progress| match p {
        fcx_image::Progress::Cached { .. } => c.store(true, Ordering::Relaxed),
        fcx_image::Progress::Resolved { total_bytes, .. } => {
            b.store(*total_bytes, Ordering::Relaxed)
        }
        _ => {}
    };
    let result = images.ensure(reference, opts, Some(&progress)).await;
    let metrics = &sched.config.metrics;
    match &result {
        Ok(_) if cached.load(Ordering::Relaxed) => {}
        Ok(_) => {
            metrics.image_pull("pulled");
            metrics
                .counters
                .image_pull_bytes
                .inc_by(bytes.load(Ordering::Relaxed));
        }
        Err(_) => metrics.image_pull("failed"),
    }
    Ok(result?)
}
