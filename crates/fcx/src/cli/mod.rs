//! The client side of `fcx`: commands that talk to an fcx server (or any FC 3.0 endpoint) over
//! its HTTP API, signing requests like the SDKs, plus `fcx keys` and `fcx local invoke`.
//!
//! - `args`: the clap structs (flags, subcommands, help)
//! - `commands/<verb>.rs`: one file per command
//! - `client`: the signed HTTP client and its request builder
//! - `project`: the `s.yaml` loader (project file → CreateFunction / CreateTrigger bodies)
//! - `package`: code folders zipped for upload
//! - `local_server`: the private server of `fcx local invoke`
//! - `output`: colours and JSON printing shared by the commands

mod args;
pub mod client;
mod commands;
mod local_server;
mod output;
mod package;
mod project;

use std::process::ExitCode;

use anyhow::anyhow;

pub use args::{ClientCommand, GlobalArgs, KeysCommand, Output};
pub use commands::keys::run as keys;
pub use output::paint_err;

use client::{ApiError, Client, Config};

/// Exit code: the signature or AccessKey was refused.
pub const EXIT_AUTH: u8 = 3;
/// Exit code: the invoked function failed (`x-fc-error-type`).
pub const EXIT_FUNCTION: u8 = 4;

/// Runs a client command; prints errors as `error: <Code>: <Message> (request <id>)`.
pub fn run(cmd: ClientCommand, global: GlobalArgs) -> ExitCode {
    match commands::execute(cmd, &global) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let prefix = paint_err("error:", "1;31");
            if let Some(api) = e.downcast_ref::<ApiError>() {
                eprintln!("{prefix} {api}");
                if api.is_auth() {
                    return ExitCode::from(EXIT_AUTH);
                }
            } else {
                eprintln!("{prefix} {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The client the global flags describe (endpoint and credentials).
fn connect(global: &GlobalArgs) -> anyhow::Result<Client> {
    let credentials = match (
        &global.access_key_id,
        &global.access_key_secret,
        &global.credentials,
    ) {
        (_, _, Some(file)) => Some(client::read_credentials_file(file)?),
        (Some(id), Some(secret), None) => Some((id.clone(), secret.clone())),
        (Some(_), None, None) | (None, Some(_), None) => {
            return Err(anyhow!(
                "give both --access-key-id and --access-key-secret (or FCX_ACCESS_KEY_ID and FCX_ACCESS_KEY_SECRET)"
            ))
        }
        (None, None, None) => None,
    };
    Client::new(Config {
        endpoint: global.endpoint.trim_end_matches('/').to_owned(),
        credentials,
    })
}
