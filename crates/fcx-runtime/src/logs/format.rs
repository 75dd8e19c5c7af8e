//! How instance logs are stored: segment files `<log dir>/<function>/<instance>.<seq>.log`
//! (`seq` counts up from 1 as segments rotate; a file `<instance>.log` of an older fcx reads
//! as segment 0), each line `<UTC time, ms> <instance> <request id or -> <text>`. The logs
//! API reads them back with [`parse_line`] and [`parse_segment`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_time(ms: u64) -> String {
    let secs = fcx_sign::format_date(ms / 1000);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms % 1000)
}

/// [`format_time`]'s text (or whole seconds, or unix milliseconds) as unix milliseconds.
pub fn parse_time(text: &str) -> Option<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let secs = u64::try_from(fcx_sign::parse_date(text)?).ok()?;
    let frac = text
        .trim_end_matches('Z')
        .split_once('.')
        .map_or("", |(_, f)| f);
    let ms = format!("{frac:0<3}")[..3].parse::<u64>().unwrap_or(0);
    Some(secs * 1000 + ms)
}

/// The file name of segment `seq` of `instance`.
pub fn segment_name(instance: &str, seq: u64) -> String {
    format!("{instance}.{seq:06}.log")
}

/// `(instance, seq)` of a segment file name; `None` for other files.
pub fn parse_segment(file_name: &str) -> Option<(&str, u64)> {
    let stem = file_name.strip_suffix(".log")?;
    match stem.rsplit_once('.') {
        Some((instance, seq)) if seq.bytes().all(|b| b.is_ascii_digit()) && !seq.is_empty() => {
            Some((instance, seq.parse().ok()?))
        }
        _ => Some((stem, 0)),
    }
}

/// One stored line.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// When the line was read from the instance (Unix ms).
    pub at_ms: u64,
    /// The instance that wrote it.
    pub instance: &'a str,
    /// `None` when no single request could be named.
    pub request_id: Option<&'a str>,
    /// The line as the instance wrote it, without its newline.
    pub text: &'a str,
}

/// The stored form of a line (without its newline).
pub fn format_line(at_ms: u64, instance: &str, request_id: Option<&str>, text: &str) -> String {
    format!(
        "{} {instance} {} {text}",
        format_time(at_ms),
        request_id.unwrap_or("-")
    )
}

/// A stored line; a line of an older fcx (no prefix) reads as text with time 0.
pub fn parse_line<'a>(line: &'a str, instance: &'a str) -> Line<'a> {
    let parsed = (|| {
        let (time, rest) = line.split_once(' ')?;
        let at_ms = parse_time(time).filter(|_| time.ends_with('Z'))?;
        let (inst, rest) = rest.split_once(' ')?;
        let (rid, text) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(Line {
            at_ms,
            instance: inst,
            request_id: (rid != "-").then_some(rid),
            text,
        })
    })();
    parsed.unwrap_or(Line {
        at_ms: 0,
        instance,
        request_id: None,
        text: line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let at = 1_764_588_747_123;
        let stored = format_line(at, "c-1", Some("r-1"), "hello world");
        assert_eq!(stored, "2025-12-01T11:32:27.123Z c-1 r-1 hello world");
        assert_eq!(
            parse_line(&stored, "x"),
            Line {
                at_ms: at,
                instance: "c-1",
                request_id: Some("r-1"),
                text: "hello world"
            }
        );
        let none = format_line(at, "c-1", None, "");
        assert_eq!(parse_line(&none, "x").request_id, None);
        assert_eq!(parse_line("legacy text", "c-9").instance, "c-9");
        assert_eq!(parse_line("legacy text", "c-9").at_ms, 0);
    }

    #[test]
    fn times_parse_in_three_spellings() {
        assert_eq!(
            parse_time("2025-12-01T11:32:27.123Z"),
            Some(1_764_588_747_123)
        );
        assert_eq!(parse_time("2025-12-01T11:32:27Z"), Some(1_764_588_747_000));
        assert_eq!(
            parse_time("2025-12-01T11:32:27.5Z"),
            Some(1_764_588_747_500)
        );
        assert_eq!(parse_time("1764588747123"), Some(1_764_588_747_123));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name("c-ab", 3), "c-ab.000003.log");
        assert_eq!(parse_segment("c-ab.000003.log"), Some(("c-ab", 3)));
        assert_eq!(parse_segment("c-ab.log"), Some(("c-ab", 0)));
        assert_eq!(parse_segment("c-ab.txt"), None);
    }
}
