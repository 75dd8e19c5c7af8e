//! `fcx get NAME`: GetFunction, as `key: value` lines or the JSON answer.

use serde_json::Value;

use crate::cli::client::{function_path, Client};
use crate::cli::output::{paint_out, print_json};

pub fn run(client: &Client, name: &str, json: bool) -> anyhow::Result<u8> {
    let v = client
        .get("GetFunction", function_path(name))
        .call()?
        .json()?;
    if json {
        print_json(&v);
    } else if let Some(obj) = v.as_object() {
        for (k, val) in obj {
            let shown = match val {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{}: {shown}", paint_out(k, "1"));
        }
    }
    Ok(0)
}
