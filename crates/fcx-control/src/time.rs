//! RFC 3339 UTC timestamps for `createdTime` / `lastModifiedTime` and date messages, without a
//! date library (the formatter is fcx-sign's `x-acs-date` one).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_rfc3339(secs)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`: the same format as the signing date, so one
/// formatter (`fcx_sign::format_date`) serves both.
pub fn format_rfc3339(secs: u64) -> String {
    fcx_sign::format_date(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_795_613_764), "2026-11-25T13:36:04Z");
    }
}
