//! Function logs (an fcx extension; FC keeps logs in SLS): `GET
//! /2023-03-30/functions/{name}/logs` reads the per-instance log files with their
//! `FC Invoke Start/End RequestId` markers. `requestId` keeps one request's lines; `since`
//! (the previous answer's `nextToken`) returns only what was written after it, for
//! `fcx logs --follow`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use base64::Engine;
use fcx_model::ModelError;
use http::StatusCode;
use serde_json::json;

use crate::ctx::{Ctx, Reply};
use crate::state::App;

/// Most bytes read from one log file per answer.
const READ_MAX: u64 = 4 * 1024 * 1024;
const TAIL_DEFAULT: usize = 200;

/// Byte offset reached in each instance's log file.
type Offsets = BTreeMap<String, u64>;

fn decode_token(token: &str) -> Option<Offsets> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode_token(offsets: &Offsets) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(offsets).unwrap_or_default())
}

/// The new bytes of one file from `from` (at most READ_MAX, ending at a line break), and the
/// offset after them.
fn read_from(path: &Path, from: u64) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = from.min(len).max(len.saturating_sub(READ_MAX));
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(len - start).read_to_end(&mut bytes)?;
    // Leave a partly written last line for the next read.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(complete);
    Ok((
        String::from_utf8_lossy(&bytes).into_owned(),
        start + complete as u64,
    ))
}

/// Lines of `text` that belong to `request_id` (between its Start and End markers).
fn request_lines<'a>(text: &'a str, request_id: &str) -> Vec<&'a str> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let marks = line.starts_with("FC ") && line.ends_with(&format!("RequestId: {request_id}"));
        if marks && line.contains(" Start ") {
            inside = true;
        }
        if inside {
            out.push(line);
        }
        if marks && line.contains(" End ") {
            inside = false;
        }
    }
    out
}

pub async fn get_logs(
    State(app): State<Arc<App>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Reply {
    let c = Ctx::new();
    c.function(&app, &name)?;
    let tail = match q.get("tail").map(|v| v.parse::<usize>()) {
        None => TAIL_DEFAULT,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        _ => {
            return Err(c.model(ModelError::new(
                "tail",
                "must be a number between 1 and 10000",
            )))
        }
    };
    let since = match q.get("since").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(decode_token(t).ok_or_else(|| {
            c.model(ModelError::new(
                "since",
                format!("'{t}' is not a token this server issued"),
            ))
        })?),
    };
    let dir = app.log_dir.join(&name);
    let mut files: Vec<(std::time::SystemTime, String, std::path::PathBuf)> =
        std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let path = e.path();
                        let id = path.file_stem()?.to_str()?.to_owned();
                        let modified = e.metadata().ok()?.modified().ok()?;
                        (path.extension()? == "log").then_some((modified, id, path))
                    })
                    .collect()
            })
            .unwrap_or_default();
    files.sort();
    let mut offsets = Offsets::new();
    let mut lines = Vec::new();
    for (_, instance, path) in files {
        let from = since
            .as_ref()
            .and_then(|s| s.get(&instance))
            .copied()
            .unwrap_or(0);
        let (text, end) = read_from(&path, from).map_err(|e| c.internal(e))?;
        offsets.insert(instance.clone(), end);
        let picked: Vec<&str> = match q.get("requestId") {
            Some(rid) => request_lines(&text, rid),
            None => text.lines().collect(),
        };
        lines.extend(
            picked
                .into_iter()
                .map(|l| json!({"instanceId": instance, "line": l})),
        );
    }
    if since.is_none() && lines.len() > tail {
        lines.drain(..lines.len() - tail);
    }
    Ok(c.ok(
        StatusCode::OK,
        Some(json!({"lines": lines, "nextToken": encode_token(&offsets)})),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_keep_one_request() {
        let text = "FC Invoke Start RequestId: a\nx\nFC Invoke End RequestId: a\n\
                    FC Invoke Start RequestId: b\ny\nFC Invoke End RequestId: b\n";
        assert_eq!(
            request_lines(text, "b"),
            [
                "FC Invoke Start RequestId: b",
                "y",
                "FC Invoke End RequestId: b"
            ]
        );
    }

    #[test]
    fn tokens_round_trip() {
        let mut o = Offsets::new();
        o.insert("c-1".into(), 42);
        assert_eq!(decode_token(&encode_token(&o)), Some(o));
        assert_eq!(decode_token("not a token"), None);
    }
}
