//! `fcx deploy`: creates or updates the functions and triggers an `s.yaml` describes
//! (CreateFunction, or UpdateFunction when it exists; CreateTrigger, or UpdateTrigger), with
//! an upload progress bar on a terminal. Reading the project file is `project.rs`.

use std::io::IsTerminal;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::cli::client::{function_path, functions_path, seg, ApiError, Client, Progress};
use crate::cli::output::{paint_err, print_json};
use crate::cli::project::{self, Plan};

/// Applies the project and prints one line (or JSON object) per resource.
pub fn run(client: &Client, file: &Path, json: bool) -> anyhow::Result<u8> {
    let results = apply(client, file)?;
    if json {
        print_json(&Value::Array(results));
    } else {
        for r in &results {
            println!(
                "{}\t{}\t{}",
                r["resource"].as_str().unwrap_or(""),
                r["functionName"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}

/// Creates or updates every fc3 resource of the project file; one JSON object per resource
/// (`resource`, `functionName`, `action`, `function`, `triggers`).
pub fn apply(client: &Client, file: &Path) -> anyhow::Result<Vec<Value>> {
    let project = project::load(file)?;
    for w in &project.warnings {
        eprintln!("{} {w}", paint_err("warning:", "1;33"));
    }
    let mut results = Vec::new();
    for plan in &project.plans {
        let name = plan.function_name();
        let (action, function) = deploy_function(client, plan)?;
        eprintln!("fcx: {}: function {name} {action}", plan.id);
        let mut trigger_names = Vec::new();
        for t in &plan.triggers {
            let (tname, taction) = deploy_trigger(client, name, t)
                .map_err(|e| e.context(format!("{}: trigger {}", plan.id, trigger_name(t))))?;
            eprintln!("fcx: {}: trigger {tname} {taction}", plan.id);
            trigger_names.push(tname);
        }
        results.push(json!({
            "resource": plan.id,
            "functionName": name,
            "action": action,
            "function": function,
            "triggers": trigger_names,
        }));
    }
    Ok(results)
}

/// CreateFunction, or UpdateFunction when the function exists: the action and the answer.
fn deploy_function(client: &Client, plan: &Plan) -> anyhow::Result<(&'static str, Value)> {
    let name = plan.function_name();
    let mut body = plan.function_body()?;
    let created = client
        .post("CreateFunction", functions_path())
        .json(&Value::Object(body.clone()))
        .progress(progress_bar(name))
        .call();
    match created {
        Ok(r) => Ok(("created", r.json()?)),
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(|a| a.code == "FunctionAlreadyExists") =>
        {
            body.remove("functionName");
            let r = client
                .put("UpdateFunction", function_path(name))
                .json(&Value::Object(body))
                .progress(progress_bar(name))
                .call()?;
            Ok(("updated", r.json()?))
        }
        Err(e) => Err(e.context(format!("deploying {}", plan.id))),
    }
}

fn trigger_name(t: &Map<String, Value>) -> &str {
    t.get("triggerName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// CreateTrigger, or UpdateTrigger when it exists: the trigger's name and the action.
fn deploy_trigger(
    client: &Client,
    function: &str,
    t: &Map<String, Value>,
) -> anyhow::Result<(String, &'static str)> {
    let tname = trigger_name(t).to_owned();
    let triggers = format!("{}/triggers", function_path(function));
    let created = client
        .post("CreateTrigger", triggers.as_str())
        .json(&Value::Object(t.clone()))
        .call();
    match created {
        Ok(_) => Ok((tname, "created")),
        Err(e)
            if e.downcast_ref::<ApiError>()
                .is_some_and(|a| a.code == "TriggerAlreadyExists") =>
        {
            let mut u = t.clone();
            // UpdateTrigger takes neither the name nor the kind nor the source.
            for k in ["triggerName", "triggerType", "sourceArn"] {
                u.remove(k);
            }
            client
                .put("UpdateTrigger", format!("{triggers}/{}", seg(&tname)))
                .json(&Value::Object(u))
                .call()?;
            Ok((tname, "updated"))
        }
        Err(e) => Err(e),
    }
}

/// An upload progress bar, when stderr is a terminal.
fn progress_bar(name: &str) -> Option<Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} ({bytes_per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("uploading {name}"));
    Some(Box::new(move |sent, total| {
        bar.set_length(total);
        bar.set_position(sent);
        if sent >= total {
            bar.finish_and_clear();
        }
    }))
}
