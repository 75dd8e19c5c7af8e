//! Lifecycle hooks and stopping: `GET /pre-stop` once before an instance stops, `GET
//! /pre-freeze` before it is frozen, and what their failures mean (a 500 restarts the instance).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use fcx_model::LifecycleHook;
use fcx_protocol::headers::control_path;
use fcx_runtime::Marker;

use crate::pool::Slot;
use crate::{context, CallContext, Deployed, SchedulerConfig};

/// Time between SIGTERM and SIGKILL when an instance stops.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a hook call needs to send FC's context headers.
pub struct HookContext {
    pub deployed: Arc<Deployed>,
    pub config: SchedulerConfig,
}

/// How a hook call went.
#[derive(Debug, PartialEq, Eq)]
pub enum HookOutcome {
    Ok,
    /// 4xx or another failure: logged, the instance goes on.
    Failed(String),
    /// 500: FC restarts the instance.
    Restart(String),
}

/// Calls `GET <path>` on the instance with the hook's timeout.
pub async fn call_hook(slot: &Slot, path: &'static str, hook: &LifecycleHook) -> HookOutcome {
    let ctx = &slot.hooks;
    let req = CallContext::internal();
    let mut request = http::Request::new(fcx_runtime::body::empty());
    *request.uri_mut() = http::Uri::from_static(path);
    let statics = context::static_headers(&ctx.deployed, &ctx.config);
    *request.headers_mut() = context::headers(&statics, &req, path, &slot.instance.id);
    let log = slot.instance.log();
    log.begin(&req.request_id, Marker::Hook(hook_name(path)), false)
        .await;
    let timeout = Duration::from_secs(hook.timeout.max(1).into());
    let result = tokio::time::timeout(timeout, slot.instance.call_collect(request)).await;
    log.end_now(&req.request_id, Marker::Hook(hook_name(path)));
    match result {
        Err(_) => HookOutcome::Failed(format!("{path} timed out after {}s", hook.timeout)),
        Ok(Err(e)) => HookOutcome::Failed(format!("{path}: {e}")),
        Ok(Ok(resp)) if resp.status().is_success() => HookOutcome::Ok,
        Ok(Ok(resp)) if resp.status() == http::StatusCode::INTERNAL_SERVER_ERROR => {
            HookOutcome::Restart(format!("{path} answered 500"))
        }
        Ok(Ok(resp)) => HookOutcome::Failed(format!("{path} answered {}", resp.status())),
    }
}

fn hook_name(path: &str) -> &'static str {
    match path {
        control_path::PRE_STOP => "PreStop",
        control_path::PRE_FREEZE => "PreFreeze",
        _ => "Hook",
    }
}

/// Calls `/pre-stop` (at most once per instance, when configured and the process lives),
/// then SIGTERM, grace, SIGKILL.
pub async fn stop(slot: Arc<Slot>, grace: Duration) {
    let pre_stop = slot
        .hooks
        .deployed
        .function
        .instance_lifecycle_config
        .pre_stop
        .clone();
    if let Some(hook) = pre_stop {
        let first = !slot.pre_stop_called.swap(true, Ordering::AcqRel);
        if first && slot.instance.exited().is_none() {
            let _ = thaw_if_frozen(&slot).await;
            if let HookOutcome::Failed(e) | HookOutcome::Restart(e) =
                call_hook(&slot, control_path::PRE_STOP, &hook).await
            {
                tracing::warn!(instance = %slot.instance.id, error = %e, "pre-stop hook failed");
            }
        }
    }
    let _ = thaw_if_frozen(&slot).await;
    slot.backend.stop(&slot.instance, grace).await;
}

pub fn stop_in_background(slot: Arc<Slot>) {
    tokio::spawn(stop(slot, STOP_GRACE));
}

/// Thaws the instance if it is frozen (before it serves a request or a hook).
pub async fn thaw_if_frozen(slot: &Slot) -> std::io::Result<()> {
    if !slot.is_frozen() {
        return Ok(());
    }
    let _power = slot.power.lock().await;
    if slot.frozen.load(Ordering::Acquire) {
        slot.backend.thaw(&slot.instance).await?;
        slot.frozen.store(false, Ordering::Release);
    }
    Ok(())
}

/// Freezes an idle instance, calling `/pre-freeze` first when configured. `is_idle` is
/// re-checked under the instance's power lock, so a request that took the instance meanwhile
/// either prevents the freeze or thaws it right after.
pub async fn freeze(slot: &Slot, is_idle: impl Fn() -> bool) -> HookOutcome {
    let _power = slot.power.lock().await;
    if slot.is_frozen() || !is_idle() {
        return HookOutcome::Ok;
    }
    let hook = slot
        .hooks
        .deployed
        .function
        .instance_lifecycle_config
        .pre_freeze
        .clone();
    if let Some(hook) = hook {
        match call_hook(slot, control_path::PRE_FREEZE, &hook).await {
            HookOutcome::Ok => {}
            other => return other,
        }
    }
    match slot.backend.freeze(&slot.instance).await {
        Ok(()) => {
            slot.frozen.store(true, Ordering::Release);
            HookOutcome::Ok
        }
        Err(e) => HookOutcome::Failed(format!("freezing: {e}")),
    }
}
