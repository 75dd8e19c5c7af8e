//! `fcx versions NAME` (ListFunctionVersions) and `fcx versions publish NAME`
//! (PublishFunctionVersion).

use anyhow::anyhow;
use serde_json::{json, Value};

use crate::cli::args::VersionsAction;
use crate::cli::client::{function_path, Client};
use crate::cli::output::{print_header, print_json, str_of};

pub fn run(
    client: &Client,
    action: Option<VersionsAction>,
    name: Option<String>,
    json: bool,
) -> anyhow::Result<u8> {
    match action {
        Some(VersionsAction::Publish { name, description }) => {
            let body = json!({ "description": description.unwrap_or_default() });
            let v = client
                .post(
                    "PublishFunctionVersion",
                    format!("{}/versions", function_path(&name)),
                )
                .json(&body)
                .call()?
                .json()?;
            if json {
                print_json(&v);
            } else {
                println!("published version {}", str_of(&v, "versionId"));
            }
        }
        None => {
            let name = name.ok_or_else(|| {
                anyhow!("give a function name: fcx versions NAME (or fcx versions publish NAME)")
            })?;
            list(client, &name, json)?;
        }
    }
    Ok(0)
}

fn list(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let v = client
        .get(
            "ListFunctionVersions",
            format!("{}/versions", function_path(name)),
        )
        .query("limit", "100")
        .call()?
        .json()?;
    let versions = v.get("versions").cloned().unwrap_or(json!([]));
    if json {
        print_json(&versions);
        return Ok(());
    }
    print_header(&format!(
        "{:<10} {:<25} {}",
        "VERSION", "CREATED", "DESCRIPTION"
    ));
    for ver in versions.as_array().into_iter().flatten() {
        println!(
            "{:<10} {:<25} {}",
            str_of(ver, "versionId"),
            str_of(ver, "createdTime"),
            ver.get("description").and_then(Value::as_str).unwrap_or(""),
        );
    }
    Ok(())
}
