//! A fixed log-linear histogram of `u64` values (nanoseconds here): exact
//! below 128, then 64 linear sub-buckets per power of two (relative error
//! under 1/64 ≈ 1.6%). One boxed array allocated up front; recording never
//! allocates.

const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// 64 exact buckets, then 64 sub-buckets for each exponent 6..=63.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// Latency histogram with exact count, min, max and mean.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let shift = exp - SUB_BITS;
    let mantissa = (v >> shift) as usize & (SUB - 1);
    SUB + shift as usize * SUB + mantissa
}

/// Highest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let shift = ((i - SUB) / SUB) as u32;
    let mantissa = ((i - SUB) % SUB) as u64;
    let lower = (SUB as u64 + mantissa) << shift;
    lower.saturating_add((1u64 << shift) - 1)
}

impl Histogram {
    /// An empty histogram.
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    /// Record one value.
    pub(crate) fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    /// Number of recorded values.
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value (0 when empty).
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// Smallest recorded value (0 when empty).
    pub(crate) fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Arithmetic mean (0 when empty).
    pub(crate) fn mean(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            (self.sum / u128::from(self.total)) as u64
        }
    }

    /// The value at quantile `q` in `0.0..=1.0`: the highest value of the
    /// bucket holding the ⌈q·n⌉-th smallest sample, clamped to the exact max.
    /// 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max).max(self.min);
            }
        }
        self.max
    }

    /// Forget every sample, keeping the allocation.
    pub(crate) fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
        self.sum = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_monotonic() {
        let mut prev_upper = None;
        for i in 0..BUCKETS {
            let lo = prev_upper.map_or(0, |u: u64| u + 1);
            assert_eq!(index(lo), i, "lower bound of bucket {i}");
            assert_eq!(index(upper(i)), i, "upper bound of bucket {i}");
            prev_upper = Some(upper(i));
        }
        assert_eq!(prev_upper, Some(u64::MAX));
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.9), 90);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.quantile(0.0), 1);
        assert_eq!((h.min(), h.max(), h.count()), (1, 100, 100));
        assert_eq!(h.mean(), 50);
    }

    #[test]
    fn large_values_within_relative_error() {
        let mut h = Histogram::new();
        // 1 µs .. 1 s in 1 µs steps → exact quantile of q is q * 1e6 µs.
        for us in 1..=1_000_000u64 {
            h.record(us * 1_000);
        }
        for (q, exact) in [
            (0.5, 500_000_000u64),
            (0.9, 900_000_000),
            (0.99, 990_000_000),
            (0.999, 999_000_000),
        ] {
            let got = h.quantile(q);
            let err = got.abs_diff(exact) as f64 / exact as f64;
            assert!(got >= exact, "q={q}: {got} below exact {exact}");
            assert!(err < 1.0 / 64.0, "q={q}: {got} vs {exact} ({err})");
        }
        assert_eq!(h.quantile(1.0), 1_000_000_000);
    }

    #[test]
    fn skewed_distribution_tail() {
        let mut h = Histogram::new();
        for _ in 0..9_990 {
            h.record(10_000);
        }
        for _ in 0..10 {
            h.record(5_000_000);
        }
        let p50 = h.quantile(0.5);
        assert!((10_000..10_200).contains(&p50), "{p50}");
        assert!(h.quantile(0.99) < 10_200);
        assert_eq!(h.quantile(0.9995), 5_000_000);
        assert_eq!(h.max(), 5_000_000);
    }

    #[test]
    fn empty_and_reset() {
        let mut h = Histogram::new();
        assert_eq!((h.quantile(0.99), h.min(), h.max(), h.mean()), (0, 0, 0, 0));
        h.record(7);
        h.reset();
        assert_eq!((h.count(), h.quantile(0.5)), (0, 0));
        h.record(3);
        assert_eq!(h.quantile(0.5), 3);
    }
}
