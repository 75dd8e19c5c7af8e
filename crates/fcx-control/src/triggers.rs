//! Triggers (FC 3.0): CreateTrigger, GetTrigger, ListTriggers, UpdateTrigger, DeleteTrigger.
//! Triggers are stored per function and returned in FC's shape, an HTTP trigger with the
//! URLs it is served at (`httpTrigger`). HTTP and timer triggers are checked per kind and
//! served (`web`, `timers`) once stored; other kinds are stored only. A function has at most
//! one HTTP trigger per qualifier, as on FC.

use fcx_model::triggers::{self, Trigger};
use serde::{Deserialize, Serialize};

use crate::error::{decode, encode};
use crate::sync::Change;
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

    /// Stores `t` (checked as its kind is served) and serves it.
    fn save_trigger(&self, function: &str, t: &Trigger) -> Result<(), ControlError> {
        triggers::check_config(&t.trigger_type, &t.trigger_config)?;
        crate::web::HttpTrigger::build(function, t)?;
        if t.trigger_type == "http" {
            self.check_one_http_trigger(function, t)?;
        }
        let doc = encode("trigger", t)?;
        self.store
            .put_function_config(function, &keys::trigger(&t.trigger_name), &doc)?;
        self.apply(Change::Trigger {
            function: function.to_owned(),
            trigger: t.trigger_name.clone(),
        })
    }

    /// FC serves one HTTP trigger per function qualifier.
    fn check_one_http_trigger(&self, function: &str, t: &Trigger) -> Result<(), ControlError> {
        let other = self
            .store
            .function_configs_of(function, keys::TRIGGERS)?
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Trigger>(&d).ok())
            .find(|o| {
                o.trigger_type == "http"
                    && o.qualifier == t.qualifier
                    && o.trigger_name != t.trigger_name
            });
        match other {
            Some(o) => Err(ControlError::HttpTriggerExists {
                function: function.to_owned(),
                qualifier: t.qualifier.clone(),
                existing: o.trigger_name,
            }),
            None => Ok(()),
        }
    }

    /// `t` as answered: an HTTP trigger with its URLs.
    fn answered(&self, function: &str, mut t: Trigger) -> Trigger {
        if t.trigger_type == "http" {
            t.http_trigger = self.trigger_urls(function, &t.qualifier);
        }
        t
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
            http_trigger: None,
        };
        cp.save_trigger(&name, &t)?;
        if !["http", "timer"].contains(&t.trigger_type.as_str()) {
            tracing::warn!(function = %name, trigger = %t.trigger_name, kind = %t.trigger_type,
                "trigger stored; fcx runs http and timer triggers only");
        }
        Ok(cp.answered(&name, t))
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
        let t = cp.trigger(&self.function_name, &self.trigger_name)?;
        Ok(cp.answered(&self.function_name, t))
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
            .map(|t| cp.answered(&name, t))
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
        Ok(cp.answered(&name, t))
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
        cp.store.delete_timer_state(&name, &self.trigger_name)?;
        cp.apply(Change::Trigger {
            function: name,
            trigger: self.trigger_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::Fixture;
    use crate::web::TriggerHost;

    fn create(
        fx: &Fixture,
        name: &str,
        kind: &str,
        config: serde_json::Value,
        qualifier: &str,
    ) -> Result<Trigger, ControlError> {
        fx.run_body(
            CreateTrigger {
                function_name: "f".into(),
            },
            json!({"triggerName": name, "triggerType": kind, "qualifier": qualifier,
                   "triggerConfig": config.to_string()}),
        )
    }

    #[test]
    fn http_triggers_answer_their_urls_and_are_served_by_host() {
        let fx = Fixture::new();
        fx.create("f");
        let t = create(
            &fx,
            "web",
            "http",
            json!({"authType": "anonymous"}),
            "LATEST",
        )
        .unwrap();
        let urls = t.http_trigger.unwrap();
        assert_eq!(urls.url_internet, "http://f.localhost:9100");
        assert_eq!(
            urls.url_intranet,
            "http://127.0.0.1:9100/2016-08-15/proxy/f/f"
        );
        assert!(
            matches!(fx.cp.trigger_host("F.localhost"), TriggerHost::Trigger(t) if &*t.name == "web")
        );
        assert!(matches!(fx.cp.trigger_host("g.localhost"), TriggerHost::NoTrigger(l) if l == "g"));
        assert!(matches!(
            fx.cp.trigger_host("127.0.0.1"),
            TriggerHost::Other
        ));
        assert!(fx.cp.trigger_of("f", "LATEST").is_some());

        // One HTTP trigger per qualifier; another qualifier is fine.
        let e = create(&fx, "web2", "http", json!({}), "LATEST").unwrap_err();
        assert!(
            matches!(&e, ControlError::HttpTriggerExists { existing, .. } if existing == "web"),
            "{e}"
        );
        fx.publish("f");
        let v1 = create(&fx, "web-v1", "http", json!({}), "1").unwrap();
        assert_eq!(
            v1.http_trigger.unwrap().url_internet,
            "http://f--1.localhost:9100"
        );
        assert!(
            matches!(fx.cp.trigger_host("f--1.localhost"), TriggerHost::Trigger(t) if &*t.name == "web-v1")
        );

        // A bad config is refused with its field; nothing is stored.
        let e = create(&fx, "bad", "http", json!({"methods": ["FETCH"]}), "LATEST").unwrap_err();
        assert!(
            matches!(&e, ControlError::Invalid(m) if m.field == "triggerConfig.methods[0]"),
            "{e}"
        );
        let e = create(
            &fx,
            "tick",
            "timer",
            json!({"cronExpression": "* * * * *"}),
            "LATEST",
        )
        .unwrap_err();
        assert!(
            matches!(&e, ControlError::Invalid(m) if m.field == "triggerConfig.cronExpression"),
            "{e}"
        );

        fx.run(DeleteTrigger {
            function_name: "f".into(),
            trigger_name: "web".into(),
        })
        .unwrap();
        assert!(matches!(
            fx.cp.trigger_host("f.localhost"),
            TriggerHost::NoTrigger(_)
        ));
        // A restart serves what is stored.
        let fx = fx.restart();
        fx.cp.load().unwrap();
        assert!(matches!(
            fx.cp.trigger_host("f--1.localhost"),
            TriggerHost::Trigger(_)
        ));
    }
}
