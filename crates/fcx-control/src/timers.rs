//! Timer triggers that fire: one task per enabled timer trigger sleeps until its next fire
//! and then queues FC's event (`{"triggerTime","triggerName","payload"}`) as a durable async
//! invocation, with the async machinery's retries and request id.
//!
//! Each fire is first claimed in the store (`claim_timer_fire`: the trigger's last fire moves
//! forward only), so the last fire survives restarts and a shared store can let one node
//! fire each tick. A trigger is scheduled from its last fire, or from when it was last
//! changed (created, enabled) if that is later. Fires missed while the server was down (or
//! the trigger disabled) are not replayed: when the next fire is already past, only the
//! latest missed one is made, at once, and the schedule goes on from there. Disabling,
//! updating or deleting a trigger replaces its task at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use fcx_async::Origin;
use fcx_model::timer::{self, Schedule, TimerTriggerConfig};
use fcx_model::triggers::Trigger;
use tokio::task::JoinHandle;

use crate::invoke::AsyncInvocation;
use crate::ControlPlane;

/// The running timer tasks of this node, by (function, trigger).
#[derive(Default)]
pub(crate) struct Timers {
    tasks: Mutex<HashMap<(String, String), JoinHandle<()>>>,
    /// The runtime the core started on, where timers run: a trigger created by a request on
    /// one of the gateway's serving threads would otherwise run on that thread's runtime.
    runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Drop for Timers {
    fn drop(&mut self) {
        for (_, task) in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            task.abort();
        }
    }
}

impl Timers {
    /// Runs the timers on `runtime` (the core's), whatever thread applies them.
    pub(crate) fn run_on(&self, runtime: tokio::runtime::Handle) {
        let _ = self.runtime.set(runtime);
    }

    fn replace(&self, key: (String, String), task: Option<JoinHandle<()>>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = tasks.remove(&key) {
            old.abort();
        }
        if let Some(task) = task {
            tasks.insert(key, task);
        }
    }

    pub(crate) fn forget_function(&self, function: &str) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.retain(|(f, _), task| {
            let keep = f != function;
            if !keep {
                task.abort();
            }
            keep
        });
    }

    pub(crate) fn stop_all(&self) {
        for (_, task) in self.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain() {
            task.abort();
        }
    }
}

impl ControlPlane {
    /// Schedules `trigger` of `function` (a timer trigger; `None`: deleted) from its stored
    /// state, replacing whatever ran before.
    pub(crate) fn apply_timer(&self, function: &str, name: &str, trigger: Option<&Trigger>) {
        let key = (function.to_owned(), name.to_owned());
        let config = trigger.filter(|t| t.trigger_type == "timer").and_then(|t| {
            match timer::parse_timer_trigger_config(&t.trigger_config) {
                Ok(c) => Some((t, c)),
                Err(e) => {
                    tracing::warn!(function, trigger = name, error = %e, "timer trigger left out");
                    None
                }
            }
        });
        let Some((trigger, config)) = config.filter(|(_, c)| c.enable) else {
            self.timers.replace(key, None);
            return;
        };
        let runtime = match self.timers.runtime.get() {
            Some(runtime) => Ok(runtime.clone()),
            None => tokio::runtime::Handle::try_current(),
        };
        let (Some(me), Ok(runtime)) = (self.me.get(), runtime) else {
            return;
        };
        let timer = Timer {
            control: Weak::clone(me),
            function: function.to_owned(),
            trigger: name.to_owned(),
            qualifier: trigger.qualifier.clone(),
            changed: parse_time(&trigger.last_modified_time).unwrap_or_else(Utc::now),
            config,
        };
        self.timers.replace(key, Some(runtime.spawn(timer.run())));
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

struct Timer {
    control: Weak<ControlPlane>,
    function: String,
    trigger: String,
    qualifier: String,
    /// When the trigger was last changed: no fire before it is made up for.
    changed: DateTime<Utc>,
    config: TimerTriggerConfig,
}

impl Timer {
    async fn run(self) {
        let Some(last) = self.last_fire().await else {
            return;
        };
        let mut anchor = last
            .map(from_ms)
            .map_or(self.changed, |l| l.max(self.changed));
        loop {
            let schedule: &Schedule = &self.config.schedule;
            let Some(mut next) = schedule.next_after(anchor) else {
                tracing::info!(function = %self.function, trigger = %self.trigger,
                    "timer trigger has no further fire");
                return;
            };
            let now = Utc::now();
            if next > now {
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            } else if let Some(latest) = schedule.latest_at_or_before(anchor, now) {
                // Missed fires: make only the latest one, now.
                if latest > anchor {
                    tracing::info!(function = %self.function, trigger = %self.trigger,
                        missed_since = %anchor, "timer fires were missed; firing once to catch up");
                    next = latest;
                }
            }
            self.fire(next).await;
            anchor = next;
        }
    }

    /// The stored last fire (`Some(None)`: never fired), `None` when the control plane is gone.
    async fn last_fire(&self) -> Option<Option<i64>> {
        let control = self.control.upgrade()?;
        let (function, trigger) = (self.function.clone(), self.trigger.clone());
        let read =
            tokio::task::spawn_blocking(move || control.store.timer_last_fire(&function, &trigger));
        match read.await {
            Ok(Ok(last)) => Some(last),
            Ok(Err(e)) => {
                tracing::warn!(function = %self.function, trigger = %self.trigger, error = %e,
                    "cannot read the timer's last fire; scheduling from its last change");
                Some(None)
            }
            Err(_) => None,
        }
    }

    async fn fire(&self, at: DateTime<Utc>) {
        let Some(control) = self.control.upgrade() else {
            return;
        };
        let (function, trigger) = (self.function.clone(), self.trigger.clone());
        let store = Arc::clone(&control.store);
        let at_ms = at.timestamp_millis();
        let claimed =
            tokio::task::spawn_blocking(move || store.claim_timer_fire(&function, &trigger, at_ms))
                .await;
        match claimed {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return, // fired already (another node, or before a restart)
            Ok(Err(e)) => {
                tracing::warn!(function = %self.function, trigger = %self.trigger, error = %e,
                    "cannot record a timer fire; skipping it");
                return;
            }
            Err(_) => return,
        }
        let version = match control.resolve(&self.function, &self.qualifier) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(function = %self.function, trigger = %self.trigger, error = %e,
                    "timer fire not queued");
                return;
            }
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let job = AsyncInvocation {
            function: &self.function,
            qualifier: version.as_deref().unwrap_or("LATEST"),
            payload: timer::timer_event(&self.trigger, at, &self.config.payload),
            request_id: request_id.clone(),
            task_id: None,
            origin: Origin {
                trigger: Some(self.trigger.clone()),
                http: None,
            },
        };
        match control.enqueue(job).await {
            Ok(_) => {
                control.metrics.trigger_fired(&self.function, "timer");
                tracing::info!(function = %self.function, trigger = %self.trigger,
                    trigger_time = %at, request_id, "timer trigger fired")
            }
            Err(e) => tracing::warn!(function = %self.function, trigger = %self.trigger,
                error = %e, "timer fire not queued"),
        }
    }
}
