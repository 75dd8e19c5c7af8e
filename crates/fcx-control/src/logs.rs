//! Function logs (an fcx extension; FC keeps logs in SLS): `GET
//! /2023-03-30/functions/{name}/logs` reads the per-instance log files with their
//! `FC Invoke Start/End RequestId` markers. `requestId` keeps one request's lines; `since`
//! (the previous answer's `nextToken`) returns only what was written after it, for
//! `fcx logs --follow`.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{Command, ControlError, ControlPlane, OffWorker};

/// Most bytes read from one log file per answer.
const READ_MAX: u64 = 4 * 1024 * 1024;
const TAIL_DEFAULT: usize = 200;
const TAIL_MAX: usize = 10_000;

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

/// GetFunctionLogs (an fcx extension): the function's stored instance logs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogs {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Last lines to return (default 200, at most 10000); ignored with `since`.
    pub tail: Option<String>,
    /// The previous answer's `nextToken`: only what was written after it.
    pub since: Option<String>,
    /// Only this request's lines.
    pub request_id: Option<String>,
}

/// One log line and the instance that wrote it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// The instance whose output it is.
    pub instance_id: String,
    /// The line, without its newline.
    pub line: String,
}

/// GetLogs' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// Where the next `since` read starts.
    pub next_token: String,
}

/// The function's `.log` files, oldest first.
fn log_files(dir: &Path) -> Vec<(SystemTime, String, PathBuf)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
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
    files
}

impl Command for GetLogs {
    type Output = LogPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<LogPage, ControlError> {
        cp.function(&self.function_name)?;
        let tail = crate::params::count("tail", self.tail.as_deref(), TAIL_DEFAULT, TAIL_MAX)?;
        let since = match crate::params::token(&self.since) {
            None => None,
            Some(t) => Some(decode_token(t).ok_or_else(|| crate::params::bad_token("since", t))?),
        };
        let mut offsets = Offsets::new();
        let mut lines = Vec::new();
        for (_, instance, path) in log_files(&cp.paths.log_dir.join(&self.function_name)) {
            let from = since
                .as_ref()
                .and_then(|s| s.get(&instance))
                .copied()
                .unwrap_or(0);
            let (text, end) = read_from(&path, from).map_err(|source| ControlError::Io {
                what: format!("reading {}", path.display()),
                source,
            })?;
            offsets.insert(instance.clone(), end);
            let picked: Vec<&str> = match &self.request_id {
                Some(rid) => request_lines(&text, rid),
                None => text.lines().collect(),
            };
            lines.extend(picked.into_iter().map(|l| LogLine {
                instance_id: instance.clone(),
                line: l.to_owned(),
            }));
        }
        if since.is_none() && lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
        Ok(LogPage {
            lines,
            next_token: encode_token(&offsets),
        })
    }
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
