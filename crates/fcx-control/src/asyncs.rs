//! Async APIs (FC 3.0): Put/Get/DeleteAsyncInvokeConfig, GetAsyncTask, ListAsyncTasks,
//! StopAsyncTask. Queueing an invocation is on the invoke path (`invoke`).

use fcx_model::async_config::{self, AsyncConfig};
use fcx_store::queue::TaskFilter;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{decode, encode};
use crate::sync::Change;
use crate::time::now_rfc3339;
use crate::{keys, params, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

const LIST_LIMIT_MAX: usize = 100;

/// Task states ListAsyncTasks filters on.
const STATUSES: &[&str] = &[
    "Enqueued",
    "Running",
    "Succeeded",
    "Failed",
    "Stopping",
    "Stopped",
    "Invalid",
    "Expired",
    "Retrying",
];

/// An async invoke config as FC answers it: the document, its effective values and times.
fn config_view(config: &AsyncConfig, arn: &str, created: &str, modified: &str) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or_else(|_| json!({}));
    v["functionArn"] = json!(arn);
    v["maxAsyncRetryAttempts"] = json!(config.retry_attempts());
    v["maxAsyncEventAgeInSeconds"] = json!(config.max_age_secs());
    v["asyncTask"] = json!(config.task_enabled());
    v["createdTime"] = json!(created);
    v["lastModifiedTime"] = json!(modified);
    v
}

/// PutAsyncInvokeConfig; the body is an `AsyncConfig`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutAsyncConfig {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for PutAsyncConfig {
    type Output = Value;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Value, ControlError> {
        let name = self.function_name;
        let arn = cp.function_arn(&name)?;
        let config = async_config::parse_async_config(body)?;
        let doc = encode("async invoke config", &config)?;
        cp.store.put_function_config(&name, keys::ASYNC, &doc)?;
        cp.apply(Change::AsyncConfig(name))?;
        let now = now_rfc3339();
        Ok(config_view(&config, &arn, &now, &now))
    }
}

/// GetAsyncInvokeConfig.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetAsyncConfig {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for GetAsyncConfig {
    type Output = Value;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Value, ControlError> {
        let name = self.function_name;
        let arn = cp.function_arn(&name)?;
        let Some(doc) = cp.store.function_config(&name, keys::ASYNC)? else {
            return Err(ControlError::AsyncConfigNotFound(name));
        };
        let config: AsyncConfig = serde_json::from_str(&doc).unwrap_or_default();
        Ok(config_view(&config, &arn, "", ""))
    }
}

/// DeleteAsyncInvokeConfig: later invocations use FC's defaults.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteAsyncConfig {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for DeleteAsyncConfig {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        let name = self.function_name;
        cp.function_arn(&name)?;
        cp.store.delete_function_config(&name, keys::ASYNC)?;
        cp.apply(Change::AsyncConfig(name))
    }
}

/// Task ids in paths: caller-given ones (FC's rule) or generated ones (request ids, which may
/// start with a digit): letters, digits, `_` and `-`, at most 128.
fn check_task_id(id: &str) -> Result<(), ControlError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ControlError::invalid(
            "taskId",
            format!(
                "'{}' may hold only letters, digits, '_' and '-' (at most 128)",
                id.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// The task a task API names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The task (`taskId` in the path).
    pub task_id: String,
}

impl TaskRef {
    /// The function exists and the id is well-formed.
    fn check(&self, cp: &ControlPlane) -> Result<(), ControlError> {
        cp.function_arn(&self.function_name)?;
        check_task_id(&self.task_id)
    }

    fn not_found(self) -> ControlError {
        ControlError::TaskNotFound {
            function: self.function_name,
            task: self.task_id,
        }
    }
}

/// GetAsyncTask.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct GetAsyncTask(pub TaskRef);

impl Command for GetAsyncTask {
    type Output = Value;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Value, ControlError> {
        let task = self.0;
        task.check(cp)?;
        match cp.asyncs.get_task(&task.function_name, &task.task_id) {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err(task.not_found()),
            Err(e) => Err(ControlError::Async(e)),
        }
    }
}

/// StopAsyncTask: an enqueued task stops at once, a running one is cancelled.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct StopAsyncTask(pub TaskRef);

/// StopAsyncTask's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoppedTask {
    /// The task asked to stop.
    pub task_id: String,
    /// Its status afterwards: `Stopped`, `Stopping` while its run ends, or the end state it had reached.
    pub status: String,
}

impl Command for StopAsyncTask {
    type Output = StoppedTask;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<StoppedTask, ControlError> {
        let task = self.0;
        task.check(cp)?;
        // On a blocking thread: waiting here for the queue's writer holds no async worker.
        let stopped = tokio::runtime::Handle::current()
            .block_on(cp.asyncs.stop_task(&task.function_name, &task.task_id));
        match stopped {
            Ok(Some(status)) => Ok(StoppedTask {
                task_id: task.task_id,
                status,
            }),
            Ok(None) => Err(task.not_found()),
            Err(e) => Err(ControlError::Async(e)),
        }
    }
}

/// ListAsyncTasks: the function's tasks, filtered, a page at a time.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAsyncTasks {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Tasks per page (1–100, default 20).
    pub limit: Option<String>,
    /// Only tasks in this status (`Enqueued`, `Running`, `Succeeded`, ...).
    pub status: Option<String>,
    /// `desc` (newest first, the default) or `asc`.
    pub sort_order_by_time: Option<String>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
    /// Only tasks whose ids start with it.
    pub prefix: Option<String>,
    /// Milliseconds since the epoch.
    pub started_time_begin: Option<String>,
    /// Milliseconds since the epoch; with `startedTimeBegin`, the range tasks were enqueued in.
    pub started_time_end: Option<String>,
    /// `true`: each task carries its payload.
    pub include_payload: Option<String>,
}

/// One page of ListAsyncTasks.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskPage {
    /// The tasks on this page, as GetAsyncTask shows them.
    pub tasks: Vec<Value>,
    /// Present when there are more: pass it as `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn number(field: &str, value: &Option<String>) -> Result<Option<i64>, ControlError> {
    value
        .as_deref()
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ControlError::invalid(field, format!("must be a number, got '{v}'")))
        })
        .transpose()
}

impl Command for ListAsyncTasks {
    type Output = TaskPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<TaskPage, ControlError> {
        let q = self;
        cp.function_arn(&q.function_name)?;
        let limit = crate::params::count("limit", q.limit.as_deref(), 20, LIST_LIMIT_MAX)?;
        if let Some(s) = &q.status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(ControlError::invalid(
                    "status",
                    format!("'{s}' is not one of {}", STATUSES.join(", ")),
                ));
            }
        }
        let newest_first = match q.sort_order_by_time.as_deref() {
            None | Some("desc") => true,
            Some("asc") => false,
            Some(o) => {
                return Err(ControlError::invalid(
                    "sortOrderByTime",
                    format!("must be asc or desc, got '{o}'"),
                ))
            }
        };
        let after_seq = match params::token(&q.next_token) {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| params::bad_token("nextToken", t))?,
            ),
        };
        let filter = TaskFilter {
            status: q.status,
            prefix: q.prefix,
            started_begin_ms: number("startedTimeBegin", &q.started_time_begin)?,
            started_end_ms: number("startedTimeEnd", &q.started_time_end)?,
            after_seq,
            limit,
            newest_first,
        };
        let include_payload = q.include_payload.as_deref() == Some("true");
        let (tasks, next_token) = cp
            .asyncs
            .list_tasks(&q.function_name, &filter, include_payload)
            .map_err(ControlError::Async)?;
        Ok(TaskPage { tasks, next_token })
    }
}

/// Decodes a stored async config (for `sync` and `load`).
pub(crate) fn decode_config(function: &str, doc: &str) -> Result<AsyncConfig, ControlError> {
    decode(
        || format!("async invoke config of function '{function}'"),
        doc,
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{Call, Fixture};

    #[test]
    fn async_config_goes_to_the_node_and_away_again() {
        let fx = Fixture::new();
        fx.create("f");
        fx.node.take();
        let put = PutAsyncConfig {
            function_name: "f".into(),
        };
        let shown = fx
            .run_body(put, json!({"maxAsyncRetryAttempts": 1, "asyncTask": true}))
            .unwrap();
        assert_eq!(shown["maxAsyncRetryAttempts"], 1);
        assert_eq!(
            shown["maxAsyncEventAgeInSeconds"],
            AsyncConfig::default().max_age_secs()
        );
        let stored = AsyncConfig {
            max_async_retry_attempts: Some(1),
            async_task: Some(true),
            ..Default::default()
        };
        let get = || {
            fx.run(GetAsyncConfig {
                function_name: "f".into(),
            })
        };
        assert_eq!(get().unwrap()["asyncTask"], true);
        fx.run(DeleteAsyncConfig {
            function_name: "f".into(),
        })
        .unwrap();
        assert_eq!(
            fx.node.take(),
            [
                Call::AsyncConfig("f".into(), Some(stored)),
                Call::AsyncConfig("f".into(), None)
            ]
        );
        assert!(matches!(get(), Err(ControlError::AsyncConfigNotFound(_))));
    }

    #[test]
    fn task_ids_in_paths_are_checked_then_looked_up() {
        let fx = Fixture::new();
        fx.create("f");
        let get = |id: &str| {
            fx.run(GetAsyncTask(TaskRef {
                function_name: "f".into(),
                task_id: id.into(),
            }))
        };
        match get("no spaces") {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "taskId"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            get("0b1f-unknown"),
            Err(ControlError::TaskNotFound { .. })
        ));
    }

    #[test]
    fn list_filters_are_checked_naming_the_parameter() {
        let fx = Fixture::new();
        fx.create("f");
        let list = |field: &str, value: &str| {
            let mut q = json!({"functionName": "f"});
            q[field] = json!(value);
            fx.run(serde_json::from_value::<ListAsyncTasks>(q).unwrap())
        };
        for (field, value) in [
            ("limit", "x"),
            ("limit", "101"),
            ("status", "Sleeping"),
            ("sortOrderByTime", "up"),
            ("nextToken", "abc"),
            ("startedTimeBegin", "yesterday"),
        ] {
            match list(field, value) {
                Err(ControlError::Invalid(e)) => assert_eq!(e.field, field, "{value}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        let page = list("status", "Succeeded").unwrap();
        assert!(page.tasks.is_empty() && page.next_token.is_none());
    }
}
