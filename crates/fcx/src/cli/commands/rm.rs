//! `fcx rm NAME`: DeleteFunction.

use serde_json::json;

use crate::cli::client::{function_path, Client};
use crate::cli::output::print_json;

pub fn run(client: &Client, name: &str, json: bool) -> anyhow::Result<u8> {
    client
        .delete("DeleteFunction", function_path(name))
        .call()?;
    if json {
        print_json(&json!({ "deleted": name }));
    } else {
        println!("deleted {name}");
    }
    Ok(0)
}
