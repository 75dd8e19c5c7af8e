//! Triggers (FC 3.0): CreateTrigger, GetTrigger, ListTriggers, UpdateTrigger, DeleteTrigger.
//! Triggers are stored per function and returned in FC's shape; firing them per kind is not
//! implemented yet, so no node state follows them.

use fcx_model::triggers::{self, Trigger};
use serde::{Deserialize, Serialize};

use crate::error::{decode, encode};
use crate::time::now_rfc3339;
use crate::{keys, params, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

const LIST_LIMIT_MAX: usize = 100;

impl ControlPlane {
    /// The stored trigger, or TriggerNotFound.
    fn trigger(&self, function: &str, trigger: &str) -> Result<Trigger, ControlError> {
        let doc = self
            .store
            .function_config(function, &keys::trigger(trigger))?
            .ok_or_else(|| ControlError::TriggerNotFound {
                function: function.to_owned(),
                trigger: trigger.to_owned(),
            })?;
        decode(
            || format!("trigger '{trigger}' of function '{function}'"),
            &doc,
        )
    }

    fn save_trigger(&self, function: &str, t: &Trigger) -> Result<(), ControlError> {
        let doc = encode("trigger", t)?;
        Ok(self
            .store
            .put_function_config(function, &keys::trigger(&t.trigger_name), &doc)?)
    }
}

/// CreateTrigger; the body is a `TriggerInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTrigger {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for CreateTrigger {
    type Output = Trigger;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Trigger, ControlError> {
        let name = self.function_name;
        let arn = cp.function_arn(&name)?;
        let input = triggers::parse_trigger(body, true)?;
        let trigger_name = input.trigger_name.unwrap_or_default();
        if cp.trigger(&name, &trigger_name).is_ok() {
            return Err(ControlError::TriggerExists {
                function: name,
                trigger: trigger_name,
            });
        }
        let now = now_rfc3339();
        let t = Trigger {
            trigger_name,
            trigger_id: uuid::Uuid::new_v4().to_string(),
            trigger_type: input.trigger_type.unwrap_or_default(),
            trigger_config: input.trigger_config.unwrap_or_default(),
            qualifier: input.qualifier.unwrap_or_else(|| "LATEST".into()),
            description: input.description.unwrap_or_default(),
            source_arn: input.source_arn,
            invocation_role: input.invocation_role,
            target_arn: arn,
            status: "Ready".into(),
            created_time: now.clone(),
            last_modified_time: now,
        };
        cp.save_trigger(&name, &t)?;
        tracing::warn!(function = %name, trigger = %t.trigger_name, kind = %t.trigger_type,
            "trigger stored; fcx does not fire triggers yet");
        Ok(t)
    }
}

/// GetTrigger.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetTrigger {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The trigger (`triggerName` in the path).
    pub trigger_name: String,
}

impl Command for GetTrigger {
    type Output = Trigger;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Trigger, ControlError> {
        cp.function_arn(&self.function_name)?;
        cp.trigger(&self.function_name, &self.trigger_name)
    }
}

/// ListTriggers: the function's triggers in name order, a page at a time.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTriggers {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Triggers per page (1–100, default 20).
    pub limit: Option<String>,
    /// Only triggers whose names start with it.
    pub prefix: Option<String>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

/// One page of ListTriggers, in name order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerPage {
    /// The triggers on this page.
    pub triggers: Vec<Trigger>,
    /// Present when there are more: pass it as `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl Command for ListTriggers {
    type Output = TriggerPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<TriggerPage, ControlError> {
        let name = self.function_name;
        cp.function_arn(&name)?;
        let limit = params::count("limit", self.limit.as_deref(), 20, LIST_LIMIT_MAX)?;
        let prefix = keys::trigger(self.prefix.as_deref().unwrap_or(""));
        let after = params::token(&self.next_token);
        let mut all: Vec<Trigger> = cp
            .store
            .function_configs_of(&name, &prefix)?
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Trigger>(&d).ok())
            .filter(|t| match after {
                Some(a) => t.trigger_name.as_str() > a,
                None => true,
            })
            .collect();
        let more = all.len() > limit;
        all.truncate(limit);
        let next_token = more
            .then(|| all.last().map(|t| t.trigger_name.clone()))
            .flatten();
        Ok(TriggerPage {
            triggers: all,
            next_token,
        })
    }
}

/// UpdateTrigger; the body is a `TriggerInput` (description, invocationRole, qualifier,
/// triggerConfig).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateTrigger {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The trigger (`triggerName` in the path).
    pub trigger_name: String,
}

impl BodyCommand for UpdateTrigger {
    type Output = Trigger;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Trigger, ControlError> {
        let name = self.function_name;
        cp.function_arn(&name)?;
        let mut t = cp.trigger(&name, &self.trigger_name)?;
        let input = triggers::parse_trigger(body, false)?;
        crate::given(&mut t.trigger_config, input.trigger_config);
        crate::given(&mut t.qualifier, input.qualifier);
        crate::given(&mut t.description, input.description);
        crate::given(&mut t.invocation_role, input.invocation_role.map(Some));
        t.last_modified_time = now_rfc3339();
        cp.save_trigger(&name, &t)?;
        Ok(t)
    }
}

/// DeleteTrigger.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteTrigger {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The trigger (`triggerName` in the path).
    pub trigger_name: String,
}

impl Command for DeleteTrigger {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        let name = self.function_name;
        cp.function_arn(&name)?;
        cp.trigger(&name, &self.trigger_name)?;
        cp.store
            .delete_function_config(&name, &keys::trigger(&self.trigger_name))?;
        Ok(())
    }
}
