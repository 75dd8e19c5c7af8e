//! Process-level series of the fcx server itself, read from `/proc/self` at scrape time
//! under the names every Prometheus client library uses (`process_*`), so existing
//! dashboards work unchanged.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Linux reports CPU times in `/proc/<pid>/stat` in USER_HZ ticks, 100 on every
/// architecture fcx runs on.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self` says about this process.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    rss_bytes: Option<i64>,
    threads: Option<i64>,
    cpu_secs: Option<f64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

fn status_field(status: &str, name: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime from `/proc/self/stat` (fields 14 and 15, after the `(comm)` that may hold
/// spaces).
fn cpu_secs(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn max_fds(limits: &str) -> Option<i64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn sample() -> Sample {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Sample {
        rss_bytes: status_field(&status, "VmRSS").map(|kb| kb * 1024),
        threads: status_field(&status, "Threads"),
        cpu_secs: std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_secs(&s)),
        open_fds: std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64),
        max_fds: std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| max_fds(&s)),
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<i64>,
) -> std::fmt::Result {
    let Some(v) = value else { return Ok(()) };
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let s = sample();
        let e = &mut encoder;
        gauge(
            e,
            "process_resident_memory",
            "Resident memory of the fcx server",
            Some(&Unit::Bytes),
            s.rss_bytes,
        )?;
        gauge(
            e,
            "process_threads",
            "OS threads of the fcx server",
            None,
            s.threads,
        )?;
        gauge(
            e,
            "process_open_fds",
            "Open file descriptors",
            None,
            s.open_fds,
        )?;
        gauge(
            e,
            "process_max_fds",
            "Limit of open file descriptors",
            None,
            s.max_fds,
        )?;
        if let Some(cpu) = s.cpu_secs {
            let c = ConstCounter::new(cpu);
            c.encode(e.encode_descriptor(
                "process_cpu",
                "User and system CPU time of the fcx server",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample();
        assert!(s.rss_bytes.unwrap() > 0);
        assert!(s.threads.unwrap() >= 1);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        assert!(s.cpu_secs.unwrap() >= 0.0);
    }

    #[test]
    fn cpu_time_skips_a_command_name_with_spaces() {
        let stat = "42 (a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0";
        assert_eq!(cpu_secs(stat), Some(3.0));
    }
}
