//! `fcx logs NAME`: GetFunctionLogs, the latest lines (or those from `--from` on, page by
//! page), filtered by request, instance and time; with `--follow` a poll every half second
//! for new ones, which the server's token carries across log rotations.

use std::io::Write;

use serde_json::Value;

use crate::cli::args::LogsArgs;
use crate::cli::client::{function_path, Client};
use crate::cli::output::{paint_out, str_of};

/// How often `--follow` asks for new lines.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

pub fn run(client: &Client, args: &LogsArgs, json: bool) -> anyhow::Result<u8> {
    let tail = args.tail.clamp(1, 10_000).to_string();
    let path = format!("{}/logs", function_path(&args.name));
    let mut since: Option<String> = None;
    loop {
        let v = client
            .get("GetFunctionLogs", path.as_str())
            .query("tail", tail.as_str())
            .query_opt("requestId", args.request_id.as_deref())
            .query_opt("instanceId", args.instance_id.as_deref())
            .query_opt("from", args.from.as_deref())
            .query_opt("to", args.to.as_deref())
            .query_opt("since", since.as_deref())
            .call()?
            .json()?;
        for line in v
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let instance = paint_out(str_of(line, "instanceId"), "2");
            // A closed pipe (`| head`) ends the output, not with a panic.
            let _ = if json {
                writeln!(std::io::stdout(), "{line}")
            } else if args.timestamps {
                writeln!(
                    std::io::stdout(),
                    "{} {instance} {} {}",
                    str_of(line, "timestamp"),
                    line.get("requestId").and_then(Value::as_str).unwrap_or("-"),
                    str_of(line, "line")
                )
            } else {
                writeln!(std::io::stdout(), "{instance} {}", str_of(line, "line"))
            };
        }
        let _ = std::io::stdout().flush();
        since = v
            .get("nextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let more = v.get("truncated").and_then(Value::as_bool).unwrap_or(false);
        // A page that was cut short is continued at once; otherwise wait (or stop).
        if !more {
            if !args.follow {
                return Ok(0);
            }
            std::thread::sleep(FOLLOW_EVERY);
        }
    }
}
