//! Durations in log-spaced buckets: memory fixed whatever the count, quantiles within ~9 %.

use std::time::Duration;

/// Sub-buckets per doubling.
const SUB: u32 = 8;
/// Durations below 2^`LOW_BITS` ns share the first bucket.
const LOW_BITS: u32 = 6;
/// Doublings covered above that: up to about 2^46 ns, 19 hours.
const OCTAVES: u32 = 40;
const BUCKETS: usize = (OCTAVES * SUB + 1) as usize;

/// A histogram of durations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The exact mean, or `None` if empty.
    pub fn mean(&self) -> Option<Duration> {
        (self.count > 0).then(|| {
            Duration::from_nanos(
                u64::try_from(self.sum_ns / u128::from(self.count)).unwrap_or(u64::MAX),
            )
        })
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket; `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_edge(i)));
            }
        }
        Some(Duration::from_nanos(upper_edge(BUCKETS - 1)))
    }
}

fn bucket(ns: u64) -> usize {
    if ns < (1 << LOW_BITS) {
        return 0;
    }
    let octave = ns.ilog2(); // at least LOW_BITS
    let sub = (ns >> (octave - 3)) & u64::from(SUB - 1);
    let i = (octave - LOW_BITS) * SUB + sub as u32 + 1;
    (i as usize).min(BUCKETS - 1)
}

fn upper_edge(i: usize) -> u64 {
    if i == 0 {
        return 1 << LOW_BITS;
    }
    let i = i as u32 - 1;
    let octave = i / SUB + LOW_BITS;
    let sub = u64::from(i % SUB);
    (1u64 << octave) + (sub + 1) * (1u64 << (octave - 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close_and_the_mean_exact() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.mean(), Some(Duration::from_nanos(500_500)));
        let p99 = h.quantile(0.99).unwrap().as_micros() as f64;
        assert!((990.0..=990.0 * 1.13).contains(&p99), "p99 {p99}");
        let p50 = h.quantile(0.5).unwrap().as_micros() as f64;
        assert!((500.0..=500.0 * 1.13).contains(&p50), "p50 {p50}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn buckets_are_ordered_and_cover_their_values() {
        for ns in [0u64, 63, 64, 65, 1000, 123_456, 9_999_999_999] {
            assert!(
                ns < upper_edge(bucket(ns)) || bucket(ns) == BUCKETS - 1,
                "{ns}"
            );
        }
        assert!(bucket(1_000) < bucket(2_000));
    }
}
