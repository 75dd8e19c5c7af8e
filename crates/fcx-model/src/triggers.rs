//! Triggers (FC 3.0): CreateTrigger / UpdateTrigger bodies and the stored record, with the
//! `triggerConfig` of the kinds fcx runs checked per kind (`http`: [`crate::http_trigger`],
//! `timer`: [`crate::timer`]); the other kinds are stored and returned as FC does.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Trigger kinds FC 3.0 documents.
pub const TRIGGER_TYPES: &[&str] = &[
    "http",
    "timer",
    "oss",
    "log",
    "mns_topic",
    "cdn_events",
    "tablestore",
    "eventbridge",
];

/// A stored trigger, as GetTrigger returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// Unique per function; FC's name rules.
    pub trigger_name: String,
    /// A UUID given at creation.
    pub trigger_id: String,
    /// One of [`TRIGGER_TYPES`] (`http`, `timer`, `oss`, ...).
    pub trigger_type: String,
    /// The kind's configuration as a JSON string (FC's shape).
    pub trigger_config: String,
    /// What the trigger invokes: LATEST, a version id or an alias.
    pub qualifier: String,
    /// Free text from the caller.
    pub description: String,
    /// The event source's ARN (e.g. an OSS bucket), fixed at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    /// The RAM role the source would invoke with (stored, not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation_role: Option<String>,
    /// The ARN of the function the trigger belongs to.
    pub target_arn: String,
    /// Always `Ready`: fcx stores triggers but does not fire them yet.
    pub status: String,
    /// RFC 3339, set at creation.
    pub created_time: String,
    /// RFC 3339, set by every update.
    pub last_modified_time: String,
    /// The URLs an HTTP trigger is served at; filled in when answered (they depend on the
    /// server's listener), never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_trigger: Option<HttpTriggerUrls>,
}

/// `httpTrigger` of an HTTP trigger's record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpTriggerUrls {
    /// The host-based URL fcx serves the trigger at.
    pub url_internet: String,
    /// The FC 2.0 path-form URL on the listen address (no DNS needed).
    pub url_intranet: String,
}

/// CreateTrigger body (UpdateTrigger: description, invocationRole, qualifier, triggerConfig).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerInput {
    /// Required on create, refused on update.
    #[serde(default)]
    pub trigger_name: Option<String>,
    /// Required on create (one of [`TRIGGER_TYPES`]), refused on update.
    #[serde(default)]
    pub trigger_type: Option<String>,
    /// Required on create; must hold a JSON document.
    #[serde(default)]
    pub trigger_config: Option<String>,
    /// Defaults to LATEST on create.
    #[serde(default)]
    pub qualifier: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Create only; refused on update.
    #[serde(default)]
    pub source_arn: Option<String>,
    /// Stored as given.
    #[serde(default)]
    pub invocation_role: Option<String>,
}

/// Parses CreateTrigger (`create`) or UpdateTrigger and checks FC's rules.
pub fn parse_trigger(body: &[u8], create: bool) -> Result<TriggerInput, ModelError> {
    let input: TriggerInput = crate::parse_body(body)?;
    if create {
        let name = input
            .trigger_name
            .as_deref()
            .ok_or_else(|| ModelError::new("triggerName", "is required"))?;
        crate::validate_function_name(name)
            .map_err(|e| ModelError::new("triggerName", e.message))?;
        let kind = input
            .trigger_type
            .as_deref()
            .ok_or_else(|| ModelError::new("triggerType", "is required"))?;
        if !TRIGGER_TYPES.contains(&kind) {
            return Err(ModelError::new(
                "triggerType",
                format!("'{kind}' is not one of {}", TRIGGER_TYPES.join(", ")),
            ));
        }
        if input.trigger_config.is_none() {
            return Err(ModelError::new("triggerConfig", "is required"));
        }
    } else {
        for (field, given) in [
            ("triggerName", input.trigger_name.is_some()),
            ("triggerType", input.trigger_type.is_some()),
            ("sourceArn", input.source_arn.is_some()),
        ] {
            if given {
                return Err(ModelError::new(
                    field,
                    "cannot be changed; create another trigger",
                ));
            }
        }
    }
    if let Some(config) = &input.trigger_config {
        serde_json::from_str::<serde_json::Value>(config).map_err(|e| {
            ModelError::new(
                "triggerConfig",
                format!("must be a JSON document in a string: {e}"),
            )
        })?;
    }
    Ok(input)
}

/// Checks `config` as the `triggerConfig` of a trigger of `kind` (the kinds fcx runs).
pub fn check_config(kind: &str, config: &str) -> Result<(), ModelError> {
    match kind {
        "http" => crate::http_trigger::parse_http_trigger_config(config).map(drop),
        "timer" => crate::timer::parse_timer_trigger_config(config).map(drop),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_rules() {
        let ok = br#"{"triggerName":"t","triggerType":"http","triggerConfig":"{\"authType\":\"anonymous\"}"}"#;
        assert!(parse_trigger(ok, true).is_ok());
        assert_eq!(
            parse_trigger(br#"{"triggerType":"http","triggerConfig":"{}"}"#, true)
                .unwrap_err()
                .field,
            "triggerName"
        );
        assert_eq!(
            parse_trigger(
                br#"{"triggerName":"t","triggerType":"ftp","triggerConfig":"{}"}"#,
                true
            )
            .unwrap_err()
            .field,
            "triggerType"
        );
        assert_eq!(
            parse_trigger(
                br#"{"triggerName":"t","triggerType":"http","triggerConfig":"{not json"}"#,
                true
            )
            .unwrap_err()
            .field,
            "triggerConfig"
        );
        assert_eq!(
            parse_trigger(br#"{"triggerType":"timer"}"#, false)
                .unwrap_err()
                .field,
            "triggerType"
        );
    }
}
