//! `fcx logs NAME`: GetFunctionLogs, the latest lines or one request's, and with `--follow`
//! a poll every second for new ones.

use std::io::Write;

use serde_json::Value;

use crate::cli::args::LogsArgs;
use crate::cli::client::{function_path, Client};
use crate::cli::output::{paint_out, str_of};

pub fn run(client: &Client, args: &LogsArgs, json: bool) -> anyhow::Result<u8> {
    let tail = args.tail.clamp(1, 10_000).to_string();
    let path = format!("{}/logs", function_path(&args.name));
    let mut since: Option<String> = None;
    loop {
        let v = client
            .get("GetFunctionLogs", path.as_str())
            .query("tail", tail.as_str())
            .query_opt("requestId", args.request_id.as_deref())
            .query_opt("since", since.as_deref())
            .call()?
            .json()?;
        for line in v
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // A closed pipe (`| head`) ends the output, not with a panic.
            let _ = if json {
                writeln!(std::io::stdout(), "{line}")
            } else {
                writeln!(
                    std::io::stdout(),
                    "{} {}",
                    paint_out(str_of(line, "instanceId"), "2"),
                    str_of(line, "line")
                )
            };
        }
        if !args.follow {
            return Ok(0);
        }
        since = v
            .get("nextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
