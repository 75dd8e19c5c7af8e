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
