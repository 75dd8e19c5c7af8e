//! How `fcx image` shows sizes, ages and digests to people: decimal units as registries and
//! `docker images` print them, ages relative to now, digests shortened to 12 hex digits
//! (enough to tell images apart, as Docker's IMAGE ID column does).

/// `512 B`, `12.3 MB`, `1.2 GB` (powers of 1000).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `sha256:0123456789ab…`: a digest cut to 12 hex digits for progress lines and tables.
pub fn short_digest(digest: &str) -> String {
    let (algo, hex) = digest.split_once(':').unwrap_or(("", digest));
    let cut: String = hex.chars().take(12).collect();
    let ellipsis = if hex.len() > cut.len() { "…" } else { "" };
    if algo.is_empty() {
        format!("{cut}{ellipsis}")
    } else {
        format!("{algo}:{cut}{ellipsis}")
    }
}

/// `just now`, `5 minutes ago`, `1 day ago`: how long before `now` the Unix time `then` is.
pub fn age(then: u64, now: u64) -> String {
    let secs = now.saturating_sub(then);
    let (n, unit) = match secs {
        0..=9 => return "just now".to_string(),
        10..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} ago")
}

/// Seconds since the Unix epoch (0 when the clock is before it).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1000), "1.0 kB");
        assert_eq!(bytes(12_345_678), "12.3 MB");
        assert_eq!(bytes(999_999), "1.0 MB");
        assert_eq!(bytes(3_000_000_000), "3.0 GB");
    }

    #[test]
    fn digests_are_cut_to_twelve_hex_digits() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_digest(&d), "sha256:abababababab…");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
    }

    #[test]
    fn ages_are_relative() {
        assert_eq!(age(100, 100), "just now");
        assert_eq!(age(100, 145), "45 seconds ago");
        assert_eq!(age(0, 60), "1 minute ago");
        assert_eq!(age(0, 7200), "2 hours ago");
        assert_eq!(age(0, 86_400 * 3), "3 days ago");
        assert_eq!(age(200, 100), "just now");
    }
}
