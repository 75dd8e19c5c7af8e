//! `x-acs-date`: `YYYY-MM-DDTHH:MM:SSZ` in UTC, as the SDKs send it; written by clients,
//! parsed by the verifier for its skew window. No date library: two of Howard Hinnant's
//! civil-calendar algorithms.

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_date(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what the SDKs send), optionally with fractional seconds, as unix
/// seconds; `None` for anything else.
pub fn parse_date(s: &str) -> Option<i64> {
    let s = s.trim().strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let time = time.split_once('.').map_or(time, |(t, frac)| {
        if frac.bytes().all(|b| b.is_ascii_digit()) {
            t
        } else {
            ""
        }
    });
    let num = |p: &str, len: usize| -> Option<i64> {
        (p.len() == len && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    let mut t = time.split(':');
    let (hh, mm, ss) = (num(t.next()?, 2)?, num(t.next()?, 2)?, num(t.next()?, 2)?);
    if d.next().is_some()
        || t.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    Some(days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format_as_the_sdks_send_them() {
        assert_eq!(format_date(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_date(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_date(951_782_400 + 3661), "2000-02-29T01:01:01Z");
        assert_eq!(format_date(1_795_613_764), "2026-11-25T13:36:04Z");
    }

    #[test]
    fn dates_parse_as_the_sdks_send_them() {
        assert_eq!(parse_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_date("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_date("2026-11-25T13:36:04Z"), Some(1_795_613_764));
        assert_eq!(parse_date("2026-11-25T13:36:04.250Z"), Some(1_795_613_764));
        for bad in [
            "",
            "2026-11-25 13:36:04Z",
            "2026-11-25T13:36:04",
            "2026-13-25T13:36:04Z",
            "Thu, 06 Feb 2020 07:32:54 GMT",
            "2026-11-25T13:36Z",
            "2026-11-25T13:36:04.xZ",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn formatting_and_parsing_round_trip() {
        for secs in [0u64, 59, 86_399, 951_782_400, 1_795_613_764, 4_102_444_800] {
            assert_eq!(parse_date(&format_date(secs)), Some(secs as i64), "{secs}");
        }
    }
}
