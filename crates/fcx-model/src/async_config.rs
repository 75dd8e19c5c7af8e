//! PutAsyncInvokeConfig body (FC 3.0 AsyncConfig) and its validation.

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// FC's default number of retries of a failed async invocation.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 3;
/// Largest `maxAsyncRetryAttempts` (FC: 0–8).
pub const MAX_RETRY_ATTEMPTS: u32 = 8;
/// Largest `maxAsyncEventAgeInSeconds` (FC: 1–604800, 7 days) and the default.
pub const MAX_EVENT_AGE_SECS: u32 = 604_800;

/// Where a finished invocation's record goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// A function ARN `acs:fc:<region>:<account>:functions/<name>`, or (fcx extension) an
    /// `http://` URL that receives the record as a JSON POST.
    pub destination: String,
}

/// Where records go by outcome; either may be absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationConfig {
    /// Receives the record of an invocation that succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    /// Receives the record of an invocation that failed for good (retries spent, expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

/// The async invoke configuration of a function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AsyncConfig {
    /// Retries after the first failed attempt (at most [`MAX_RETRY_ATTEMPTS`]; default [`DEFAULT_MAX_RETRY_ATTEMPTS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_async_retry_attempts: Option<u32>,
    /// Events older than this many seconds are not run any more (1 to [`MAX_EVENT_AGE_SECS`], the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_async_event_age_in_seconds: Option<u32>,
    /// Where finished invocations are reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<DestinationConfig>,
    /// Stateful async tasks: every invocation gets a task id that can be queried and stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub async_task: Option<bool>,
}

impl AsyncConfig {
    /// Retries allowed, FC's default when unset.
    pub fn retry_attempts(&self) -> u32 {
        self.max_async_retry_attempts
            .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS)
    }

    /// Oldest age an event may run at, in seconds (the maximum when unset).
    pub fn max_age_secs(&self) -> u32 {
        self.max_async_event_age_in_seconds
            .unwrap_or(MAX_EVENT_AGE_SECS)
    }

    /// Whether invocations get task ids (off unless set).
    pub fn task_enabled(&self) -> bool {
        self.async_task.unwrap_or(false)
    }
}

/// The function a destination ARN names, or `None` for an HTTP destination.
pub fn destination_function(destination: &str) -> Option<&str> {
    destination
        .strip_prefix("acs:fc:")
        .and_then(|rest| rest.split_once(":functions/"))
        .map(|(_, name)| name)
}

fn check_destination(field: &str, d: &Option<Destination>) -> Result<(), ModelError> {
    let Some(d) = d else { return Ok(()) };
    let ok = match destination_function(&d.destination) {
        Some(name) => crate::validate_function_name(name).is_ok(),
        None => d.destination.starts_with("http://"),
    };
    if ok {
        Ok(())
    } else {
        Err(ModelError::new(
            format!("{field}.destination"),
            format!(
                "'{}' is neither a function ARN (acs:fc:<region>:<account>:functions/<name>) nor an http:// URL",
                d.destination
            ),
        ))
    }
}

/// Parses and validates a PutAsyncInvokeConfig body.
pub fn parse_async_config(body: &[u8]) -> Result<AsyncConfig, ModelError> {
    let config: AsyncConfig = crate::parse_body(body)?;
    if let Some(n) = config.max_async_retry_attempts {
        if n > MAX_RETRY_ATTEMPTS {
            return Err(ModelError::new(
                "maxAsyncRetryAttempts",
                format!("must be between 0 and {MAX_RETRY_ATTEMPTS}, got {n}"),
            ));
        }
    }
    if let Some(n) = config.max_async_event_age_in_seconds {
        if !(1..=MAX_EVENT_AGE_SECS).contains(&n) {
            return Err(ModelError::new(
                "maxAsyncEventAgeInSeconds",
                format!("must be between 1 and {MAX_EVENT_AGE_SECS}, got {n}"),
            ));
        }
    }
    if let Some(d) = &config.destination_config {
        check_destination("destinationConfig.onSuccess", &d.on_success)?;
        check_destination("destinationConfig.onFailure", &d.on_failure)?;
    }
    Ok(config)
}

/// FC's rule for caller-given async task ids: a letter or `_` first, then letters, digits,
/// `_` or `-`, at most 128 characters.
pub fn validate_task_id(id: &str) -> Result<(), ModelError> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if first_ok && rest_ok && id.len() <= 128 {
        Ok(())
    } else {
        Err(ModelError::new(
            "x-fc-async-task-id",
            format!(
                "'{}' must start with a letter or '_', hold only letters, digits, '_' and '-', and be at most 128 characters",
                id.chars().take(64).collect::<String>()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fc_config_and_names_bad_fields() {
        let c = parse_async_config(
            br#"{"maxAsyncRetryAttempts":2,"maxAsyncEventAgeInSeconds":60,"asyncTask":true,
                "destinationConfig":{"onFailure":{"destination":"acs:fc:local:1:functions/dlq"}}}"#,
        )
        .unwrap();
        assert_eq!(c.retry_attempts(), 2);
        assert!(c.task_enabled());
        let e = parse_async_config(br#"{"maxAsyncRetryAttempts":9}"#).unwrap_err();
        assert_eq!(e.field, "maxAsyncRetryAttempts");
        let e = parse_async_config(br#"{"maxAsyncEventAgeInSeconds":0}"#).unwrap_err();
        assert_eq!(e.field, "maxAsyncEventAgeInSeconds");
        let e = parse_async_config(
            br#"{"destinationConfig":{"onSuccess":{"destination":"mns:queue"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.field, "destinationConfig.onSuccess.destination");
        assert_eq!(
            parse_async_config(br#"{"bogus":1}"#).unwrap_err().field,
            "bogus"
        );
    }

    #[test]
    fn task_ids_follow_fc_rule() {
        assert!(validate_task_id("_abc-1").is_ok());
        assert!(validate_task_id("a").is_ok());
        assert!(validate_task_id("1abc").is_err());
        assert!(validate_task_id("").is_err());
        assert!(validate_task_id("a b").is_err());
        assert!(validate_task_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn destination_function_reads_arns() {
        assert_eq!(
            destination_function("acs:fc:local:123:functions/dlq"),
            Some("dlq")
        );
        assert_eq!(destination_function("http://127.0.0.1:1/x"), None);
    }
}
