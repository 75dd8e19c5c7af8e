//! `fcx triggers ls FUNCTION`: ListTriggers, every page, as a table with each trigger's URL
//! (HTTP triggers: `httpTrigger.urlInternet`) or schedule (timers), or a JSON array.

use serde_json::Value;

use crate::cli::args::TriggersAction;
use crate::cli::client::{function_path, Client};
use crate::cli::output::{print_header, print_json, str_of};

pub fn run(client: &Client, action: TriggersAction, json: bool) -> anyhow::Result<u8> {
    let TriggersAction::Ls { name } = action;
    let path = format!("{}/triggers", function_path(&name));
    let all = super::all_pages("triggers", |token| {
        client
            .get("ListTriggers", path.as_str())
            .query("limit", "100")
            .query_opt("nextToken", token)
            .call()?
            .json()
    })?;
    if json {
        print_json(&Value::Array(all));
        return Ok(0);
    }
    print_header(&format!(
        "{:<24} {:<8} {:<12} URL / SCHEDULE",
        "NAME", "TYPE", "QUALIFIER"
    ));
    for t in &all {
        println!(
            "{:<24} {:<8} {:<12} {}",
            str_of(t, "triggerName"),
            str_of(t, "triggerType"),
            str_of(t, "qualifier"),
            target(t)
        );
    }
    Ok(0)
}

/// Where or when a trigger fires: an HTTP trigger's URL (and auth), a timer's schedule.
fn target(t: &Value) -> String {
    let config: Value = t
        .get("triggerConfig")
        .and_then(Value::as_str)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or(Value::Null);
    match str_of(t, "triggerType") {
        "http" => {
            let url = t
                .pointer("/httpTrigger/urlInternet")
                .and_then(Value::as_str)
                .unwrap_or("-");
            let auth = config
                .get("authType")
                .and_then(Value::as_str)
                .unwrap_or("function");
            format!("{url}/  (auth {auth})")
        }
        "timer" => {
            let cron = config
                .get("cronExpression")
                .and_then(Value::as_str)
                .unwrap_or("-");
            let enabled = config
                .get("enable")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            format!("{cron}{}", if enabled { "" } else { "  (disabled)" })
        }
        _ => "-".into(),
    }
}
