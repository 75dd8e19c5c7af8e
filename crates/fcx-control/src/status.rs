//! The status page's data (`GET /status/data`, an fcx extension): functions with their
//! triggers and invoke URL, their instances with state and age, the last invocations with
//! outcome, duration and cold or warm, and error and throttle totals. Read-only; the page
//! (`fcx-gateway`) renders it.

use std::sync::atomic::Ordering;

use fcx_model::triggers::Trigger;
use serde::{Deserialize, Serialize};

use crate::{keys, Command, ControlError, ControlPlane, OffWorker};

/// Most functions listed.
const FUNCTIONS_MAX: usize = 200;

#[derive(Debug, Default, Deserialize)]
/// The status page's query (`GET /status/data`); it takes no parameters.
pub struct GetStatus {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// The status page's data.
pub struct Status {
    /// Deployed functions, by name (at most 200).
    pub functions: Vec<FunctionStatus>,
    /// Newest first.
    pub recent: Vec<RecentInvocation>,
    /// Invocation counts over every function since the server started.
    pub totals: Totals,
    /// The region this server answers as.
    pub region: String,
    /// Unix milliseconds when this answer was made.
    pub now_ms: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// One function on the status page.
pub struct FunctionStatus {
    /// Its name.
    pub function_name: String,
    /// Its runtime (`custom-container`, `custom.debian12`, ...).
    pub runtime: String,
    /// InvokeFunction's path on this server.
    pub invoke_url: String,
    /// Its triggers.
    pub triggers: Vec<TriggerStatus>,
    /// Its running instances (every version).
    pub instances: Vec<InstanceStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// One trigger of a function.
pub struct TriggerStatus {
    /// Its name.
    pub trigger_name: String,
    /// Its type (`http`, `timer`, ...).
    pub trigger_type: String,
    /// The version or alias it invokes.
    pub qualifier: String,
    /// Where the trigger is reached, for kinds that have an address (HTTP triggers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// One instance of a function.
pub struct InstanceStatus {
    /// Its id, as in the logs.
    pub instance_id: String,
    /// `starting`, `idle`, `busy` or `frozen`.
    pub status: &'static str,
    /// Milliseconds since it started.
    pub age_ms: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// One finished invocation.
pub struct RecentInvocation {
    /// When it ended (Unix ms).
    pub time_ms: u64,
    /// The function it ran.
    pub function_name: String,
    /// The version it ran (`LATEST` or a version id).
    pub qualifier: String,
    /// Its request id.
    pub request_id: String,
    /// The instance it ran on (empty when it reached none).
    pub instance_id: String,
    /// `success`, `function_error`, `throttled`, `platform_error`.
    pub outcome: &'static str,
    /// The function error's type, the limit that throttled, or the FC error code; empty on success.
    pub code: &'static str,
    /// From its arrival to its answer's last byte.
    pub duration_ms: f64,
    /// Whether it started an instance.
    pub cold_start: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
/// Invocation counts by outcome.
pub struct Totals {
    /// Invocations that succeeded.
    pub success: u64,
    /// Invocations the function failed (unhandled error, timeout, crash...).
    pub function_errors: u64,
    /// Invocations fcx could not run.
    pub platform_errors: u64,
    /// Invocations refused for the request's own fault (a broken or oversized body: 4xx).
    pub client_errors: u64,
    /// Invocations refused at a concurrency limit (429).
    pub throttles: u64,
}

/// The address of a trigger, when its configuration names one (`urlInternet` /
/// `urlIntranet` of HTTP triggers).
fn trigger_url(t: &Trigger) -> Option<String> {
    let config: serde_json::Value = serde_json::from_str(&t.trigger_config).ok()?;
    ["urlInternet", "urlIntranet", "url"]
        .iter()
        .find_map(|k| config.get(k)?.as_str().map(str::to_owned))
}

impl Command for GetStatus {
    type Output = Status;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Status, ControlError> {
        let now_ms = fcx_runtime::logs::format::unix_ms(std::time::SystemTime::now());
        let mut functions = Vec::new();
        for f in cp.store.list_functions(None, None, FUNCTIONS_MAX)? {
            let name = f.function_name.clone();
            let triggers = cp
                .store
                .function_configs_of(&name, &keys::trigger(""))?
                .into_iter()
                .filter_map(|(_, d)| serde_json::from_str::<Trigger>(&d).ok())
                .map(|t| TriggerStatus {
                    url: trigger_url(&t),
                    trigger_name: t.trigger_name,
                    trigger_type: t.trigger_type,
                    qualifier: t.qualifier,
                })
                .collect();
            let instances = cp
                .node
                .instances(&name)
                .unwrap_or_default()
                .into_iter()
                .map(|i| InstanceStatus {
                    age_ms: now_ms.saturating_sub(i.created_time_ms),
                    instance_id: i.instance_id,
                    status: i.status,
                })
                .collect();
            functions.push(FunctionStatus {
                invoke_url: format!("/2023-03-30/functions/{name}/invocations"),
                function_name: name,
                runtime: f.runtime.clone(),
                triggers,
                instances,
            });
        }
        let recent = cp
            .metrics
            .recent()
            .into_iter()
            .map(|r| RecentInvocation {
                time_ms: r.at_ms,
                function_name: r.labels.function.to_string(),
                qualifier: r.labels.qualifier.to_string(),
                request_id: r.request_id.as_str().to_owned(),
                instance_id: r.instance_id.as_str().to_owned(),
                outcome: r.outcome,
                code: r.code,
                duration_ms: r.duration.as_secs_f64() * 1000.0,
                cold_start: r.cold_start,
            })
            .collect();
        let t = cp.metrics.totals();
        Ok(Status {
            functions,
            recent,
            totals: Totals {
                success: t.success.load(Ordering::Relaxed),
                function_errors: t.function_errors.load(Ordering::Relaxed),
                platform_errors: t.platform_errors.load(Ordering::Relaxed),
                client_errors: t.client_errors.load(Ordering::Relaxed),
                throttles: t.throttles.load(Ordering::Relaxed),
            },
            region: cp.region.clone(),
            now_ms,
        })
    }
}
