//! `fcx local invoke`: one invocation of a code folder or an s.yaml project without a
//! running server (like `s local invoke`). It starts a private server (`local_server.rs`),
//! deploys, invokes once through the same API as `fcx invoke`, and stops the server (and so
//! its instances), so the invocation behaves exactly as served.

use anyhow::anyhow;
use base64::Engine;
use serde_json::json;

use super::{deploy, invoke};
use crate::cli::args::{InvokeArgs, LocalAction, LocalInvokeArgs, Output};
use crate::cli::client::{functions_path, Client, Config};
use crate::cli::local_server;
use crate::cli::package;

pub fn run(action: LocalAction, output: Output) -> anyhow::Result<u8> {
    let LocalAction::Invoke(args) = action;
    if args.template.is_none() && args.command.is_empty() {
        return Err(anyhow!(
            "give the folder's start command after `--`, e.g. -- node server.js"
        ));
    }
    let server = local_server::start_server()?;
    let client = Client::new(Config {
        endpoint: server.endpoint.clone(),
        credentials: None,
    })?;
    // `server` lives to the end of this function: dropping it stops the server.
    let name = deploy_local(&client, &args)?;
    invoke::run(
        &client,
        InvokeArgs {
            name,
            event: args.event,
            event_file: args.event_file,
            qualifier: None,
            is_async: false,
            tail: args.tail,
        },
        output == Output::Json,
    )
}

/// Deploys what `args` names to the private server; the function name to invoke.
fn deploy_local(client: &Client, args: &LocalInvokeArgs) -> anyhow::Result<String> {
    if let Some(template) = &args.template {
        let results = deploy::apply(client, template)?;
        let names: Vec<String> = results
            .iter()
            .filter_map(|r| r["functionName"].as_str().map(str::to_owned))
            .collect();
        return match args.function.as_deref() {
            Some(name) if names.iter().any(|n| n == name) => Ok(name.to_owned()),
            Some(name) => Err(anyhow!(
                "{} deploys no function named '{name}' (it has: {})",
                template.display(),
                names.join(", ")
            )),
            None if names.len() == 1 => Ok(names[0].clone()),
            None => Err(anyhow!(
                "{} deploys {} functions ({}): choose one with --function",
                template.display(),
                names.len(),
                names.join(", ")
            )),
        };
    }
    let dir = args.code.as_deref().ok_or_else(|| {
        anyhow!("give a project file (-f s.yaml) or a code folder (--code DIR -- COMMAND...)")
    })?;
    let zip = package::zip_path(dir)?;
    let name = args.function.as_deref().unwrap_or("local");
    let mut body = json!({
        "functionName": name,
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "timeout": 60,
        "code": {"zipFile": base64::engine::general_purpose::STANDARD.encode(zip)},
        "customRuntimeConfig": {
            "command": args.command,
            "port": args.port,
            "webServerMode": !args.non_web,
        },
    });
    if args.initializer {
        body["instanceLifecycleConfig"] =
            json!({"initializer": {"handler": "index.initializer", "timeout": 60}});
    }
    client
        .post("CreateFunction", functions_path())
        .header("content-type", "application/json")
        .json(&body)
        .call()?;
    Ok(name.to_owned())
}
