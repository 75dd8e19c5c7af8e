//! A timer trigger's `triggerConfig` (FC 3.0 `TimerTriggerConfig`: `cronExpression`,
//! `payload`, `enable`) and its schedule: FC's cron form with a seconds field (`0 */5 * * *
//! *`), `@every <duration>` (Go duration syntax: `5m`, `1h30m`, `10s`) and the `CRON_TZ=<IANA
//! zone>` prefix (UTC otherwise). Parsed with `croner` and `chrono-tz`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::Value;

use crate::ModelError;

/// A timer trigger's configuration, checked.
#[derive(Debug, Clone)]
pub struct TimerTriggerConfig {
    /// The expression as given (answered by GetTrigger).
    pub cron_expression: String,
    /// The parsed schedule.
    pub schedule: Schedule,
    /// Sent as the event's `payload` (FC passes it as a string).
    pub payload: String,
    /// `enable: false` stops the trigger.
    pub enable: bool,
}

/// When a timer fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// `@every <duration>`: at this interval from the last fire (or from when the trigger
    /// was enabled).
    Every(Duration),
    /// A cron pattern evaluated in a time zone.
    Cron {
        /// The pattern (6 fields with seconds).
        cron: Box<Cron>,
        /// `CRON_TZ`, UTC when absent.
        zone: Tz,
    },
}

impl Schedule {
    /// The first fire strictly after `after`, `None` when the pattern never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(interval) => {
                // Checked: `@every 99999999999h` parses, and `+` would panic past year 262143
                // (found by the cron fuzz target).
                let step = chrono::Duration::from_std(*interval).ok()?;
                after.checked_add_signed(step)
            }
            Schedule::Cron { cron, zone } => {
                let local = zone.from_utc_datetime(&after.naive_utc());
                cron.find_next_occurrence(&local, false)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }

    /// The last fire at or before `now` of a schedule last fired (or enabled) at `anchor`
    /// (`anchor` ≤ `now`): the one catch-up fire after fires were missed.
    pub fn latest_at_or_before(
        &self,
        anchor: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(interval) => {
                let step = interval.as_millis().max(1) as i64;
                let gone = (now - anchor).num_milliseconds().max(0);
                Some(anchor + chrono::Duration::milliseconds(gone / step * step))
            }
            Schedule::Cron { cron, zone } => {
                let local = zone.from_utc_datetime(&now.naive_utc());
                cron.find_previous_occurrence(&local, true)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }
        }
    }
}

/// The shortest `@every` interval fcx accepts.
pub const EVERY_MIN: Duration = Duration::from_secs(1);

/// Parses `cronExpression` (`field` names it in errors).
pub fn parse_schedule(field: &str, text: &str) -> Result<Schedule, ModelError> {
    let text = text.trim();
    if let Some(every) = text.strip_prefix("@every") {
        let interval = parse_go_duration(every.trim())
            .map_err(|m| ModelError::new(field, format!("'{text}': {m}")))?;
        if interval < EVERY_MIN {
            return Err(ModelError::new(
                field,
                format!("'{text}': the interval must be at least 1s"),
            ));
        }
        return Ok(Schedule::Every(interval));
    }
    let (zone, pattern) = match text.strip_prefix("CRON_TZ=") {
        Some(rest) => {
            let (name, pattern) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                ModelError::new(
                    field,
                    format!("'{text}': CRON_TZ=<zone> must be followed by a pattern"),
                )
            })?;
            let zone: Tz = name.parse().map_err(|_| {
                ModelError::new(
                    field,
                    format!("'{name}' is not an IANA time zone such as Asia/Shanghai or UTC"),
                )
            })?;
            (zone, pattern.trim())
        }
        None => (Tz::UTC, text),
    };
    let fields = pattern.split_whitespace().count();
    if fields != 6 {
        return Err(ModelError::new(
            field,
            format!(
                "'{text}' has {fields} fields: FC's cron form has 6 (seconds minutes hours \
                 day-of-month month day-of-week, e.g. '0 0/5 * * * *'), or use '@every 5m'"
            ),
        ));
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .sloppy_ranges(true)
        .build()
        .parse(pattern)
        .map_err(|e| ModelError::new(field, format!("'{text}' is not a cron pattern: {e}")))?;
    Ok(Schedule::Cron {
        cron: Box::new(cron),
        zone,
    })
}

/// Go's `time.ParseDuration` units as FC's `@every` takes them: `1h30m`, `90s`, `1.5h`.
fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("@every needs a duration such as 5m, 1h30m or 10s".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("'{s}': a number needs a unit (h, m, s, ms)"))?;
        let (number, after) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("'{s}': '{number}' is not a number"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            other => return Err(format!("'{s}': unit '{other}' is not one of h, m, s, ms")),
        };
        total += value * secs;
        rest = next;
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a timer trigger's `triggerConfig` (the JSON text of the API field).
pub fn parse_timer_trigger_config(text: &str) -> Result<TimerTriggerConfig, ModelError> {
    const F: &str = "triggerConfig";
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| ModelError::new(F, format!("must be a JSON document in a string: {e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| ModelError::new(F, "must be a JSON object"))?;
    for key in obj.keys() {
        if !["cronExpression", "payload", "enable"].contains(&key.as_str()) {
            return Err(ModelError::new(
                format!("{F}.{key}"),
                "is not a field of a timer trigger (FC has cronExpression, payload, enable)",
            ));
        }
    }
    let cron_expression = obj
        .get("cronExpression")
        .and_then(Value::as_str)
        .ok_or_else(|| ModelError::new(format!("{F}.cronExpression"), "is required (a string)"))?
        .to_owned();
    let schedule = parse_schedule(&format!("{F}.cronExpression"), &cron_expression)?;
    let payload = match obj.get("payload") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // s.yaml files write mappings; FC passes the payload on as text.
        Some(other) => other.to_string(),
    };
    let enable = match obj.get("enable") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ModelError::new(
                format!("{F}.enable"),
                "must be true or false",
            ))
        }
    };
    Ok(TimerTriggerConfig {
        cron_expression,
        schedule,
        payload,
        enable,
    })
}

/// The event a timer fire sends: FC's `{"triggerTime","triggerName","payload"}`, with the
/// scheduled time in RFC 3339 UTC.
pub fn timer_event(trigger_name: &str, trigger_time: DateTime<Utc>, payload: &str) -> Vec<u8> {
    let time = trigger_time.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    serde_json::to_vec(&serde_json::json!({
        "triggerTime": time,
        "triggerName": trigger_name,
        "payload": payload,
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_takes_go_durations() {
        let every = |s: &str| match parse_schedule("c", s).unwrap() {
            Schedule::Every(d) => d,
            other => panic!("{other:?}"),
        };
        assert_eq!(every("@every 5m"), Duration::from_secs(300));
        assert_eq!(every("@every 1h30m"), Duration::from_secs(5400));
        assert_eq!(every("@every 1s"), Duration::from_secs(1));
        assert_eq!(every("@every 1.5h"), Duration::from_secs(5400));
        for bad in ["@every", "@every 5", "@every 5d", "@every 100ms"] {
            assert!(parse_schedule("c", bad).is_err(), "{bad}");
        }
        let s = parse_schedule("c", "@every 2s").unwrap();
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T00:00:02Z"))
        );
    }

    #[test]
    fn cron_has_seconds_and_optional_zone() {
        let s = parse_schedule("c", "0 0/15 * * * *").unwrap();
        assert_eq!(
            s.next_after(at("2024-01-01T00:07:10Z")),
            Some(at("2024-01-01T00:15:00Z"))
        );
        // 04:00 in Shanghai is 20:00 UTC the day before.
        let s = parse_schedule("c", "CRON_TZ=Asia/Shanghai 0 0 4 * * *").unwrap();
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-01T20:00:00Z"))
        );
        // Day of week: 0 and SUN are Sunday (2024-01-07 is a Sunday).
        let s = parse_schedule("c", "30 0 12 ? * SUN").unwrap();
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z")),
            Some(at("2024-01-07T12:00:30Z"))
        );
        assert_eq!(
            s.latest_at_or_before(at("2024-01-01T00:00:00Z"), at("2024-01-20T13:00:00Z")),
            Some(at("2024-01-14T12:00:30Z"))
        );
        let every = parse_schedule("c", "@every 10s").unwrap();
        assert_eq!(
            every.latest_at_or_before(at("2024-01-01T00:00:00Z"), at("2024-01-01T00:01:05Z")),
            Some(at("2024-01-01T00:01:00Z"))
        );
        let e = parse_schedule("f", "0 * * * *").unwrap_err();
        assert!(e.message.contains("has 5 fields"), "{e}");
        let e = parse_schedule("f", "CRON_TZ=Mars/Olympus 0 * * * * *").unwrap_err();
        assert!(e.message.contains("not an IANA time zone"), "{e}");
        assert!(parse_schedule("f", "61 * * * * *").is_err());
    }

    #[test]
    fn config_fields_and_event_shape() {
        let c =
            parse_timer_trigger_config(r#"{"cronExpression":"@every 1m","payload":"hi"}"#).unwrap();
        assert!(c.enable);
        assert_eq!(c.payload, "hi");
        let e = parse_timer_trigger_config(r#"{"payload":"x"}"#).unwrap_err();
        assert_eq!(e.field, "triggerConfig.cronExpression");
        let e = parse_timer_trigger_config(r#"{"cronExpression":"@every 1m","enable":"no"}"#)
            .unwrap_err();
        assert_eq!(e.field, "triggerConfig.enable");
        let event: Value =
            serde_json::from_slice(&timer_event("t", at("2024-01-01T00:00:05Z"), "p")).unwrap();
        assert_eq!(
            event,
            serde_json::json!({"triggerTime": "2024-01-01T00:00:05Z", "triggerName": "t", "payload": "p"})
        );
    }
}
