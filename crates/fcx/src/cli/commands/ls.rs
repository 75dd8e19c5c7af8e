//! `fcx ls`: ListFunctions, every page, as a table or a JSON array.

use serde_json::Value;

use crate::cli::args::LsArgs;
use crate::cli::client::{functions_path, Client};
use crate::cli::output::{print_header, print_json, str_of};

pub fn run(client: &Client, args: &LsArgs, json: bool) -> anyhow::Result<u8> {
    let all = super::all_pages("functions", |token| {
        client
            .get("ListFunctions", functions_path())
            .query("limit", "100")
            .query_opt("prefix", args.prefix.as_deref())
            .query_opt("nextToken", token)
            .call()?
            .json()
    })?;
    if json {
        print_json(&Value::Array(all));
        return Ok(0);
    }
    print_header(&format!(
        "{:<32} {:<18} {:>7} {:<25}",
        "NAME", "RUNTIME", "MEMORY", "MODIFIED"
    ));
    for f in &all {
        println!(
            "{:<32} {:<18} {:>7} {:<25}",
            str_of(f, "functionName"),
            str_of(f, "runtime"),
            f.get("memorySize")
                .map(|m| m.to_string())
                .unwrap_or_default(),
            str_of(f, "lastModifiedTime"),
        );
    }
    Ok(0)
}
