//! One file per client command; [`execute`] hands a parsed command to its file. Each command
//! gets the connected client and whether `--output json` was asked for, and returns the exit
//! code.

pub mod alias;
pub mod deploy;
pub mod get;
pub mod invoke;
pub mod keys;
pub mod local;
pub mod logs;
pub mod ls;
pub mod rm;
pub mod triggers;
pub mod versions;

use super::args::{ClientCommand, GlobalArgs, Output};
use serde_json::Value;

/// Runs one client command against the server `global` names.
pub fn execute(cmd: ClientCommand, global: &GlobalArgs) -> anyhow::Result<u8> {
    let client = super::connect(global)?;
    let json = global.output == Output::Json;
    match cmd {
        ClientCommand::Invoke(args) => invoke::run(&client, args, json),
        ClientCommand::Ls(args) => ls::run(&client, &args, json),
        ClientCommand::Get(args) => get::run(&client, &args.name, json),
        ClientCommand::Rm(args) => rm::run(&client, &args.name, json),
        ClientCommand::Versions { action, name } => versions::run(&client, action, name, json),
        ClientCommand::Alias(action) => alias::run(&client, action, json),
        ClientCommand::Logs(args) => logs::run(&client, &args, json),
        ClientCommand::Local(action) => local::run(action, global.output),
        ClientCommand::Deploy(args) => deploy::run(&client, &args.file, json),
        ClientCommand::Triggers(action) => triggers::run(&client, action, json),
    }
}

/// Every item under `key` of a paged List* API: asks `page` for each page (with the previous
/// answer's `nextToken`, none for the first) until an answer has no token left.
pub fn all_pages(
    key: &str,
    mut page: impl FnMut(Option<&str>) -> anyhow::Result<Value>,
) -> anyhow::Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let v = page(token.as_deref())?;
        if let Some(items) = v.get(key).and_then(Value::as_array) {
            all.extend(items.iter().cloned());
        }
        token = v
            .get("nextToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_none() {
            return Ok(all);
        }
    }
}
