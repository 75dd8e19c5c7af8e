//! Function logs (an fcx extension; FC keeps logs in SLS): `GET
//! /2023-03-30/functions/{name}/logs` reads the instances' log segments (see
//! `fcx_runtime::logs::format`), merged by time. Without `since` or `from` it answers the
//! latest `tail` lines; with `from` (a time) or `since` (the previous answer's `nextToken`) it
//! pages forward, `limit` lines at a time, which is also how `fcx logs --follow` follows,
//! across segment rotations. `requestId`, `instanceId` and `from`/`to` filter.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine;
use fcx_runtime::logs::format;
use serde::{Deserialize, Serialize};

use crate::{Command, ControlError, ControlPlane, OffWorker};

/// Most bytes read from one instance's segments per answer.
const READ_MAX: u64 = 4 * 1024 * 1024;
const TAIL_DEFAULT: usize = 200;
const TAIL_MAX: usize = 10_000;
const LIMIT_DEFAULT: usize = 1000;
const LIMIT_MAX: usize = 10_000;

/// Where reading stopped in one instance's log: segment and byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Pos {
    seq: u64,
    off: u64,
}

type Positions = BTreeMap<String, Pos>;

fn decode_token(token: &str) -> Option<Positions> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode_token(positions: &Positions) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(positions).unwrap_or_default())
}

/// GetFunctionLogs (an fcx extension): the function's stored instance logs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetLogs {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Latest lines to return (default 200, at most 10000) when neither `since` nor `from`
    /// is given.
    pub tail: Option<String>,
    /// The previous answer's `nextToken`: the lines written after it.
    pub since: Option<String>,
    /// Lines per page when paging forward (default 1000, at most 10000).
    pub limit: Option<String>,
    /// Only lines at or after this time (RFC 3339 UTC such as `2026-12-01T11:00:00Z`, or
    /// Unix milliseconds); without `since`, paging starts here.
    pub from: Option<String>,
    /// Only lines at or before this time.
    pub to: Option<String>,
    /// Only this request's lines (its markers and what the function printed for it).
    pub request_id: Option<String>,
    /// Only this instance's lines.
    pub instance_id: Option<String>,
}

/// One log line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogLine {
    /// The instance whose output it is.
    pub instance_id: String,
    /// When it was read from the instance (RFC 3339, ms).
    pub timestamp: String,
    /// The request it belongs to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The line, without its newline.
    pub line: String,
}

/// GetLogs' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    /// Oldest first.
    pub lines: Vec<LogLine>,
    /// Where the next page (or the next `--follow` poll) starts.
    pub next_token: String,
    /// More lines were already there than this page holds.
    pub truncated: bool,
}

/// Each instance's segments, by number.
fn instances(dir: &Path) -> BTreeMap<String, BTreeMap<u64, PathBuf>> {
    let mut out: BTreeMap<String, BTreeMap<u64, PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name();
        if let Some((instance, seq)) = name.to_str().and_then(format::parse_segment) {
            out.entry(instance.to_owned())
                .or_default()
                .insert(seq, entry.path());
        }
    }
    out
}

/// A line read, with the position just after it.
struct Read1 {
    at_ms: u64,
    request_id: Option<String>,
    text: String,
    after: Pos,
}

/// Reads complete lines from `from` on, across segments, at most READ_MAX bytes. A
/// segment that is gone (pruned) is skipped to the next one there is.
fn read_instance(
    instance: &str,
    segments: &BTreeMap<u64, PathBuf>,
    from: Pos,
) -> std::io::Result<(Vec<Read1>, Pos)> {
    let mut out = Vec::new();
    let mut budget = READ_MAX;
    let mut end = from;
    for (&seq, path) in segments.range(from.seq..) {
        let start = if seq == from.seq { from.off } else { 0 };
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let start = start.min(len);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take((len - start).min(budget))
            .read_to_end(&mut bytes)?;
        // A partly written last line is left for the next read.
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut off = start;
        for raw in bytes[..complete].split_inclusive(|b| *b == b'\n') {
            off += raw.len() as u64;
            let text = String::from_utf8_lossy(raw);
            let line = format::parse_line(text.trim_end_matches('\n'), instance);
            out.push(Read1 {
                at_ms: line.at_ms,
                request_id: line.request_id.map(str::to_owned),
                text: line.text.to_owned(),
                after: Pos { seq, off },
            });
        }
        end = Pos { seq, off };
        budget = budget.saturating_sub(complete as u64);
        if budget == 0 || (complete as u64) < len - start {
            break;
        }
    }
    Ok((out, end))
}

/// The position READ_MAX bytes before the end of an instance's newest segments.
fn tail_start(segments: &BTreeMap<u64, PathBuf>) -> Pos {
    let mut left = READ_MAX;
    let mut pos = Pos::default();
    for (&seq, path) in segments.iter().rev() {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        pos = Pos {
            seq,
            off: len.saturating_sub(left),
        };
        if len >= left {
            break;
        }
        left -= len;
    }
    pos
}

impl GetLogs {
    fn keeps(&self, instance: &str, line: &Read1, from: Option<u64>, to: Option<u64>) -> bool {
        self.instance_id.as_deref().map_or(true, |i| i == instance)
            && self
                .request_id
                .as_deref()
                .map_or(true, |r| line.request_id.as_deref() == Some(r))
            && from.map_or(true, |f| line.at_ms >= f)
            && to.map_or(true, |t| line.at_ms <= t)
    }
}

fn time(field: &str, value: &Option<String>) -> Result<Option<u64>, ControlError> {
    match value.as_deref().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => format::parse_time(v).map(Some).ok_or_else(|| {
            ControlError::invalid(
                field,
                format!(
                    "'{v}' is not a time: use RFC 3339 UTC (2026-12-01T11:00:00Z) or Unix \
                     milliseconds"
                ),
            )
        }),
    }
}

impl Command for GetLogs {
    type Output = LogPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<LogPage, ControlError> {
        cp.function(&self.function_name)?;
        let tail = crate::params::count("tail", self.tail.as_deref(), TAIL_DEFAULT, TAIL_MAX)?;
        let limit = crate::params::count("limit", self.limit.as_deref(), LIMIT_DEFAULT, LIMIT_MAX)?;
        let (from, to) = (time("from", &self.from)?, time("to", &self.to)?);
        let since = match crate::params::token(&self.since) {
            None => None,
            Some(t) => Some(decode_token(t).ok_or_else(|| crate::params::bad_token("since", t))?),
        };
        let forward = since.is_some() || from.is_some();
        let all = instances(&cp.paths.log_dir.join(&self.function_name));
        // Each instance's lines from where this read starts, oldest first.
        let mut streams = Vec::new();
        for (instance, segments) in &all {
            let start = match &since {
                Some(s) => s.get(instance).copied().unwrap_or_default(),
                None if forward => Pos::default(),
                None => tail_start(segments),
            };
            let (lines, end) =
                read_instance(instance, segments, start).map_err(|source| ControlError::Io {
                    what: format!("reading the logs of instance {instance}"),
                    source,
                })?;
            streams.push((instance.as_str(), lines, 0usize, start, end));
        }
        // Merged by time: take the oldest next line of any instance.
        let cap = if forward { limit } else { usize::MAX };
        let mut lines = Vec::new();
        let mut truncated = false;
        loop {
            let next = streams
                .iter()
                .enumerate()
                .filter(|(_, s)| s.2 < s.1.len())
                .min_by_key(|(_, s)| s.1[s.2].at_ms)
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let (instance, stream, idx, pos, _) = &mut streams[i];
            let line = &stream[*idx];
            if self.keeps(instance, line, from, to) {
                if lines.len() == cap {
                    truncated = true;
                    break;
                }
                lines.push(LogLine {
                    instance_id: (*instance).to_owned(),
                    timestamp: format::format_time(line.at_ms),
                    request_id: line.request_id.clone(),
                    line: line.text.clone(),
                });
            }
            *pos = line.after;
            *idx += 1;
        }
        if !forward && lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
        // A page that stopped early resumes after its last line; otherwise after all.
        let positions: Positions = streams
            .into_iter()
            .map(|(instance, stream, idx, pos, end)| {
                let at = if idx < stream.len() { pos } else { end };
                (instance.to_owned(), at)
            })
            .collect();
        Ok(LogPage {
            lines,
            next_token: encode_token(&positions),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let mut p = Positions::new();
        p.insert("c-1".into(), Pos { seq: 3, off: 42 });
        assert_eq!(decode_token(&encode_token(&p)), Some(p));
        assert_eq!(decode_token("not a token"), None);
    }

    #[test]
    fn reading_continues_across_segments_and_skips_pruned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let line = |ms, text| format!("{}\n", format::format_line(ms, "c-1", Some("r"), text));
        let seg = |n| dir.path().join(format::segment_name("c-1", n));
        std::fs::write(seg(1), line(1, "one") + &line(2, "two")).unwrap();
        std::fs::write(seg(3), line(3, "three")).unwrap();
        let segments = instances(dir.path()).remove("c-1").unwrap();
        let (all, end) = read_instance("c-1", &segments, Pos::default()).unwrap();
        let texts: Vec<&str> = all.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(end.seq, 3);
        // From after "one": the rest of segment 1, then segment 3 (2 was pruned).
        let (rest, _) = read_instance("c-1", &segments, all[0].after).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[1].text, "three");
        // A token into a pruned segment starts at the next one there is.
        let (gone, _) = read_instance("c-1", &segments, Pos { seq: 2, off: 10 }).unwrap();
        assert_eq!(gone[0].text, "three");
    }
}
