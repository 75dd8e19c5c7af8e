//! `fcx alias ls|set|rm`: ListAliases, UpdateAlias (CreateAlias when it does not exist yet),
//! DeleteAlias.

use serde_json::{json, Value};

use crate::cli::args::AliasAction;
use crate::cli::client::{function_path, seg, ApiError, Client};
use crate::cli::output::{print_header, print_json, str_of};

pub fn run(client: &Client, action: AliasAction, json: bool) -> anyhow::Result<u8> {
    match action {
        AliasAction::Ls { name } => list(client, &name, json)?,
        AliasAction::Set {
            name,
            alias,
            version,
            weight,
            description,
        } => {
            let weights: serde_json::Map<String, Value> =
                weight.into_iter().map(|(v, w)| (v, json!(w))).collect();
            let mut body = json!({
                "versionId": version,
                "additionalVersionWeight": weights,
            });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let aliases = format!("{}/aliases", function_path(&name));
            let updated = client
                .put("UpdateAlias", format!("{aliases}/{}", seg(&alias)))
                .json(&body)
                .call();
            let v = match updated {
                Ok(r) => r.json()?,
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(|a| a.status == 404 && a.code.contains("Alias")) =>
                {
                    body["aliasName"] = json!(alias);
                    client
                        .post("CreateAlias", aliases)
                        .json(&body)
                        .call()?
                        .json()?
                }
                Err(e) => return Err(e),
            };
            if json {
                print_json(&v);
            } else {
                println!("alias {alias} -> version {version}");
            }
        }
        AliasAction::Rm { name, alias } => {
            client
                .delete(
                    "DeleteAlias",
                    format!("{}/aliases/{}", function_path(&name), seg(&alias)),
                )
                .call()?;
            if json {
                print_json(&json!({ "deleted": alias }));
            } else {
                println!("deleted alias {alias}");
            }
        }
    }
    Ok(0)
}

fn list(client: &Client, name: &str, json: bool) -> anyhow::Result<()> {
    let v = client
        .get("ListAliases", format!("{}/aliases", function_path(name)))
        .query("limit", "100")
        .call()?
        .json()?;
    let aliases = v.get("aliases").cloned().unwrap_or(json!([]));
    if json {
        print_json(&aliases);
        return Ok(());
    }
    print_header(&format!("{:<20} {:<10} {}", "ALIAS", "VERSION", "WEIGHTS"));
    for a in aliases.as_array().into_iter().flatten() {
        let weights = a
            .get("additionalVersionWeight")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:<10} {}",
            str_of(a, "aliasName"),
            str_of(a, "versionId"),
            weights
        );
    }
    Ok(())
}
