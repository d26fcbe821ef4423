//! Wall-clock time for what must survive a restart: the broker works in
//! `Instant`s, which mean nothing to another process, so the store keeps
//! milliseconds since the Unix epoch and converts at its edges.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One pair of readings of both clocks, taken when the store opens.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall_ms: u64,
}

impl Clock {
    /// Reads both clocks now.
    pub fn now() -> Self {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            instant: Instant::now(),
            wall_ms,
        }
    }

    /// `t` as wall-clock milliseconds (never 0: 0 means "none" in records).
    pub fn wall_ms(&self, t: Instant) -> u64 {
        let ms = if t >= self.instant {
            self.wall_ms.saturating_add(
                u64::try_from(t.duration_since(self.instant).as_millis()).unwrap_or(u64::MAX),
            )
        } else {
            self.wall_ms.saturating_sub(
                u64::try_from(self.instant.duration_since(t).as_millis()).unwrap_or(u64::MAX),
            )
        };
        ms.max(1)
    }

    /// Wall-clock `ms` as an `Instant` of this process: time that passed
    /// while the broker was down counts, and a time still to come (a
    /// will's due time, a retained message's expiry) stays that far ahead.
    pub fn instant(&self, ms: u64) -> Instant {
        if ms >= self.wall_ms {
            let ahead = Duration::from_millis(ms - self.wall_ms);
            return self.instant.checked_add(ahead).unwrap_or(self.instant);
        }
        let ago = Duration::from_millis(self.wall_ms - ms);
        self.instant.checked_sub(ago).unwrap_or(self.instant)
    }

    /// The wall-clock reading, ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.wall_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_within_a_millisecond() {
        let c = Clock::now();
        let later = c.instant + Duration::from_millis(1500);
        assert_eq!(c.wall_ms(later), c.now_ms() + 1500);
        assert_eq!(
            c.instant(c.now_ms() + 1500),
            later,
            "the future stays ahead"
        );
        if let Some(earlier) = c.instant.checked_sub(Duration::from_secs(3)) {
            assert_eq!(c.instant(c.wall_ms(earlier)), earlier);
        }
    }
}
