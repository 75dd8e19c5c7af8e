//! `fcx invoke NAME`: InvokeFunction, synchronous (the result on stdout, a function error as
//! exit code 4) or `--async` (the request and task ids).

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context as _;
use base64::Engine;
use serde_json::{json, Value};

use crate::cli::args::InvokeArgs;
use crate::cli::client::{function_path, ApiError, Client};
use crate::cli::output::{paint_err, print_json};
use crate::cli::EXIT_FUNCTION;

pub fn run(client: &Client, args: InvokeArgs, json: bool) -> anyhow::Result<u8> {
    let body = read_event(args.event, args.event_file.as_deref())?;
    let mut request = client
        .post(
            "InvokeFunction",
            format!("{}/invocations", function_path(&args.name)),
        )
        .query_opt("qualifier", args.qualifier)
        .header("content-type", "application/octet-stream");
    if args.is_async {
        request = request.header("x-fc-invocation-type", "Async");
    }
    if args.tail {
        request = request.header("x-fc-log-type", "Tail");
    }
    let r = request.body(body).send()?;
    // A function error (x-fc-error-type) may come with a non-2xx status (502
    // FunctionNotStarted); anything else non-2xx is an API error.
    if !(200..300).contains(&r.status) && r.header("x-fc-error-type").is_none() {
        return Err(ApiError::from_response(&r).into());
    }
    let rid = r.header("x-fc-request-id").unwrap_or("").to_owned();
    if args.tail {
        if let Some(log) = r.header("x-fc-log-result") {
            print_log(log);
        }
    }
    if args.is_async {
        let task = r.header("x-fc-async-task-id").map(str::to_owned);
        if json {
            print_json(&json!({ "requestId": rid, "asyncTaskId": task }));
        } else {
            println!("requestId: {rid}");
            if let Some(t) = task {
                println!("asyncTaskId: {t}");
            }
        }
        return Ok(0);
    }
    let error_type = r.header("x-fc-error-type").map(str::to_owned);
    if json {
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let result = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        print_json(&json!({
            "requestId": rid,
            "errorType": error_type,
            "result": result,
        }));
    } else {
        let mut out = std::io::stdout();
        out.write_all(&r.body)?;
        out.flush()?;
    }
    if let Some(t) = error_type {
        eprintln!(
            "{} the function failed ({t}, request {rid})",
            paint_err("error:", "1;31")
        );
        return Ok(EXIT_FUNCTION);
    }
    Ok(0)
}

/// The event: `--event`, `--event-file`, stdin when it is not a terminal, or empty.
fn read_event(event: Option<String>, file: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    Ok(match (event, file) {
        (Some(e), _) => e.into_bytes(),
        (None, Some(f)) => {
            std::fs::read(f).with_context(|| format!("reading the event file {}", f.display()))?
        }
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
        (None, None) => Vec::new(),
    })
}

/// The function's log (`x-fc-log-result`, base64) on stderr, ending with a newline.
fn print_log(log: &str) {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(log.trim())
        .unwrap_or_else(|_| log.as_bytes().to_vec());
    let mut err = std::io::stderr();
    let _ = err.write_all(&decoded);
    if !decoded.ends_with(b"\n") {
        let _ = err.write_all(b"\n");
    }
}
