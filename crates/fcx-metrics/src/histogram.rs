//! A latency histogram made of atomics: observing is one bucket search over a few integers
//! and two `fetch_add`s, with no lock and no allocation, so it can sit on the warm path.
//! prometheus-client's own histogram takes a lock per observation; this one plugs into its
//! encoder through [`EncodeMetric`], so the exposition text is still the crate's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds (seconds) of the latency buckets: 1 ms to 5 min, about ×2.5 apart.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

const N: usize = LATENCY_BUCKETS.len();

struct Inner {
    /// Bucket bounds in nanoseconds, so an observation compares integers.
    bounds_ns: [u64; N],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [AtomicU64; N + 1],
    sum_ns: AtomicU64,
}

/// A histogram of durations with [`LATENCY_BUCKETS`]; clones share their counts.
#[derive(Clone)]
pub struct AtomicHistogram {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicHistogram")
            .field("count", &self.count())
            .finish()
    }
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram {
            inner: Arc::new(Inner {
                bounds_ns: LATENCY_BUCKETS.map(|s| (s * 1e9) as u64),
                counts: std::array::from_fn(|_| AtomicU64::new(0)),
                sum_ns: AtomicU64::new(0),
            }),
        }
    }
}

impl AtomicHistogram {
    /// Counts one observation: two relaxed atomic adds (its bucket and the sum), no lock.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self.inner.bounds_ns.partition_point(|b| *b < ns);
        self.inner.counts[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of the observations, in seconds.
    pub fn sum_secs(&self) -> f64 {
        self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// Counts per upper bound, `+Inf` last (the encoder makes them cumulative).
    fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(&self.inner.counts)
            .map(|(bound, c)| (bound, c.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let buckets = self.buckets();
        let count = buckets.iter().map(|b| b.1).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum_secs(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_bucket_of_their_upper_bound() {
        let h = AtomicHistogram::default();
        h.observe(Duration::from_micros(500)); // ≤ 1 ms
        h.observe(Duration::from_millis(1)); // ≤ 1 ms (bounds are inclusive)
        h.observe(Duration::from_millis(300)); // ≤ 0.5 s
        h.observe(Duration::from_secs(1000)); // +Inf
        let b = h.buckets();
        assert_eq!(b[0], (0.001, 2));
        assert_eq!(b[7], (0.25, 0));
        assert_eq!(b[8], (0.5, 1));
        assert_eq!(b[N - 1], (300.0, 0));
        assert_eq!(b[N], (f64::INFINITY, 1));
        assert_eq!(h.count(), 4);
        assert!((h.sum_secs() - 1000.3015).abs() < 1e-6, "{}", h.sum_secs());
    }
}
