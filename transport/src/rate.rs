//! Connection rate per source IP: a token bucket, and a ban for addresses
//! that connect too often (flapping).
//!
//! [`ConnectRate::check`] takes the peer's address and the time, so it can
//! run wherever the real address becomes known: on the acceptor for plain
//! listeners, and in the connection task after a PROXY header for proxied
//! ones. It takes one short lock, never allocates for a known address, and
//! never reads the clock itself (tests drive it with made-up instants).
//!
//! Memory is bounded: at most [`RateLimits::max_tracked`] addresses are
//! remembered. When the table is full, addresses with nothing left to
//! remember (bucket refilled, flap window over, not banned) are forgotten;
//! if that frees too little, the least recently seen unbanned addresses
//! are forgotten until an eighth of the table is free (forgetting an
//! address only gives it a full bucket again). Bans are kept; when every
//! remembered address is banned, a new address is let through untracked
//! and counted in [`RateStats::untracked`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The settings of a [`ConnectRate`]; each part is off at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Connects per minute one address may keep up (the bucket's refill);
    /// 0 = no rate limit.
    pub per_minute: u32,
    /// Connects one address may make at once (the bucket's size, >= 1).
    pub burst: u32,
    /// Connects within `flap_window` after which an address is banned;
    /// 0 = no ban. Up to this many are let through per window; the next
    /// one is refused and starts the ban.
    pub flap_connects: u32,
    /// The window `flap_connects` counts in; it starts at an address's
    /// first connect and restarts at the first connect after it ends.
    pub flap_window: Duration,
    /// How long a ban lasts. Connects during a ban are refused and do not
    /// extend it.
    pub ban: Duration,
    /// Addresses remembered at most (>= 1).
    pub max_tracked: usize,
    /// IPv6 addresses count by this many leading bits (1..=128; 64 = one
    /// count per /64, what one host or site usually gets). IPv4 addresses
    /// always count by the whole address.
    pub ipv6_prefix: u8,
}

impl RateLimits {
    /// Everything off.
    pub const OFF: Self = Self {
        per_minute: 0,
        burst: 1,
        flap_connects: 0,
        flap_window: Duration::from_secs(1),
        ban: Duration::from_secs(1),
        max_tracked: 1,
        ipv6_prefix: 128,
    };

    fn is_off(&self) -> bool {
        self.per_minute == 0 && self.flap_connects == 0
    }
}

/// Why [`ConnectRate::check`] refused a connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateRefusal {
    /// The address's bucket is empty.
    #[error("connection rate limit reached for this address")]
    Rate,
    /// This connect was one too many within the flap window: the address
    /// is banned from now on.
    #[error("too many connections from this address: banned")]
    BanStarted,
    /// The address is banned for flapping.
    #[error("address banned for connecting too often")]
    Banned,
}

/// What a [`ConnectRate`] counted since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateStats {
    /// Bans started.
    pub bans: u64,
    /// Addresses remembered now.
    pub tracked: usize,
    /// Addresses banned now (bans that ended but were not looked at again
    /// since count until the table is swept).
    pub banned: usize,
    /// Connects let through untracked because the table was full of bans.
    pub untracked: u64,
    /// Addresses forgotten to make room while they still had state.
    pub evicted: u64,
}

/// Per-address connect rate and flapping ban, shared by the threads that
/// admit connections (cheap to clone). The limits can be changed while in
/// use ([`ConnectRate::set_limits`]); remembered state is kept.
#[derive(Debug, Clone)]
pub struct ConnectRate {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug)]
struct Table {
    limits: RateLimits,
    entries: HashMap<IpAddr, Entry>,
    stats: RateStats,
    /// When a sweep of a full table last found nothing to forget: the
    /// next one waits a second, so a table full of bans costs no scan per
    /// connect.
    futile_sweep: Option<Instant>,
}

/// The table key of `ip`: IPv4 (also IPv4-mapped IPv6) whole, IPv6 cut to
/// its first `prefix` bits.
fn key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix.clamp(1, 128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
        v4 => v4,
    }
}

/// Units of a token: milliseconds in a minute.
const PER_TOKEN: u64 = 60_000;

fn bucket_size(limits: &RateLimits) -> u64 {
    u64::from(limits.burst.max(1)) * PER_TOKEN
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Tokens, in units of 1/[`PER_TOKEN`] (so a per-minute refill needs
    /// no floats).
    units: u64,
    /// When the tokens were last refilled.
    refilled: Instant,
    /// Start of the flap window and connects counted in it.
    window_start: Instant,
    window_connects: u32,
    banned_until: Option<Instant>,
    last_seen: Instant,
}

impl Entry {
    fn new(now: Instant, limits: &RateLimits) -> Self {
        Self {
            units: bucket_size(limits),
            refilled: now,
            window_start: now,
            window_connects: 0,
            banned_until: None,
            last_seen: now,
        }
    }

    fn refill(&mut self, now: Instant, limits: &RateLimits) {
        let cap = bucket_size(limits);
        let elapsed_ms = now.saturating_duration_since(self.refilled).as_millis();
        // A token is `PER_TOKEN` units; `per_minute` tokens a minute is
        // `per_minute` units a millisecond: no rounding.
        let gained = u64::try_from(elapsed_ms * u128::from(limits.per_minute)).unwrap_or(u64::MAX);
        self.units = self.units.saturating_add(gained).min(cap);
        if self.units >= cap {
            self.refilled = now;
        } else {
            let ms = u64::try_from(elapsed_ms).unwrap_or(u64::MAX);
            self.refilled += Duration::from_millis(ms);
        }
    }

    fn banned_at(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// True when forgetting it loses nothing: a new entry would behave the same.
    fn is_idle(&self, now: Instant, limits: &RateLimits) -> bool {
        if self.banned_at(now) {
            return false;
        }
        let window_over = limits.flap_connects == 0
            || now.saturating_duration_since(self.window_start) >= limits.flap_window;
        let mut e = *self;
        e.refill(now, limits);
        let full = limits.per_minute == 0 || e.units >= bucket_size(limits);
        window_over && full
    }
}

impl ConnectRate {
    /// A table with these limits.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Table {
                limits,
                entries: HashMap::new(),
                stats: RateStats::default(),
                futile_sweep: None,
            })),
        }
    }

    /// Counts a connect from `ip` at `now`: `Ok` lets it through. IPv4-mapped
    /// IPv6 addresses count as their IPv4 address, other IPv6 addresses by
    /// their [`RateLimits::ipv6_prefix`].
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), RateRefusal> {
        let mut table = self.table();
        if table.limits.is_off() {
            return Ok(());
        }
        let limits = table.limits;
        let ip = key(ip, limits.ipv6_prefix);
        if !table.entries.contains_key(&ip) && !table.make_room(now) {
            table.stats.untracked += 1;
            return Ok(());
        }
        let Table { entries, stats, .. } = &mut *table;
        let entry = entries
            .entry(ip)
            .or_insert_with(|| Entry::new(now, &limits));
        entry.last_seen = now;
        if entry.banned_at(now) {
            return Err(RateRefusal::Banned);
        }
        if entry.banned_until.take().is_some() {
            // The ban is over: count afresh.
            entry.window_start = now;
            entry.window_connects = 0;
        }
        if limits.flap_connects > 0 {
            if now.saturating_duration_since(entry.window_start) >= limits.flap_window {
                entry.window_start = now;
                entry.window_connects = 0;
            }
            entry.window_connects = entry.window_connects.saturating_add(1);
            if entry.window_connects > limits.flap_connects {
                entry.banned_until = Some(now + limits.ban);
                stats.bans += 1;
                return Err(RateRefusal::BanStarted);
            }
        }
        if limits.per_minute > 0 {
            entry.refill(now, &limits);
            if entry.units < PER_TOKEN {
                return Err(RateRefusal::Rate);
            }
            entry.units -= PER_TOKEN;
        }
        Ok(())
    }

    /// Changes the limits for later checks. Remembered addresses keep
    /// their state (a ban keeps its end; a bucket larger than the new burst
    /// is cut down at its next refill); a table over a lowered
    /// `max_tracked` is cut down at once (`now`: for what is idle).
    pub fn set_limits(&self, limits: RateLimits, now: Instant) {
        let mut table = self.table();
        table.limits = limits;
        table.futile_sweep = None;
        if limits.is_off() {
            table.entries = HashMap::new();
        } else if table.entries.len() >= limits.max_tracked.max(1) {
            table.make_room(now);
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.table().limits
    }

    /// Counters and table sizes (`now`: what "banned now" means).
    pub fn stats(&self, now: Instant) -> RateStats {
        let table = self.table();
        RateStats {
            tracked: table.entries.len(),
            banned: table.entries.values().filter(|e| e.banned_at(now)).count(),
            ..table.stats
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Plain counters, never left half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Table {
    /// Makes room for one more address; false when none can be made.
    fn make_room(&mut self, now: Instant) -> bool {
        let cap = self.limits.max_tracked.max(1);
        if self.entries.len() < cap {
            return true;
        }
        if self
            .futile_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return false;
        }
        let limits = self.limits;
        self.entries.retain(|_, e| !e.is_idle(now, &limits));
        let target = cap - cap.div_ceil(8);
        if self.entries.len() > target {
            let mut unbanned: Vec<(Instant, IpAddr)> = self
                .entries
                .iter()
                .filter(|(_, e)| !e.banned_at(now))
                .map(|(ip, e)| (e.last_seen, *ip))
                .collect();
            let excess = (self.entries.len() - target).min(unbanned.len());
            if excess > 0 {
                unbanned.select_nth_unstable(excess - 1);
                for (_, ip) in &unbanned[..excess] {
                    self.entries.remove(ip);
                }
                self.stats.evicted += excess as u64;
            }
        }
        if self.entries.capacity() > 2 * cap {
            self.entries.shrink_to(cap);
        }
        let room = self.entries.len() < cap;
        self.futile_sweep = (!room).then_some(now);
        room
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn ipv6_counts_by_prefix() {
        let r = ConnectRate::new(RateLimits {
            ipv6_prefix: 64,
            ..rate(60, 1)
        });
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        r.check(a, t0).unwrap();
        assert_eq!(r.check(same_64, t0), Err(RateRefusal::Rate));
        r.check(other_64, t0).unwrap();
        assert_eq!(key(a, 128), a);
        assert_eq!(key(a, 1), "::".parse::<IpAddr>().unwrap());
        assert_eq!(key(A, 1), A, "IPv4 is never cut");
    }

    fn rate(per_minute: u32, burst: u32) -> RateLimits {
        RateLimits {
            per_minute,
            burst,
            max_tracked: 1000,
            ..RateLimits::OFF
        }
    }

    fn flapping(connects: u32, window: u64, ban: u64) -> RateLimits {
        RateLimits {
            flap_connects: connects,
            flap_window: secs(window),
            ban: secs(ban),
            max_tracked: 1000,
            ..RateLimits::OFF
        }
    }

    #[test]
    fn off_lets_everything_through_and_remembers_nothing() {
        let r = ConnectRate::new(RateLimits::OFF);
        let t0 = Instant::now();
        for _ in 0..1000 {
            r.check(A, t0).unwrap();
        }
        assert_eq!(r.stats(t0).tracked, 0);
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        // 60 per minute = one per second, three at once.
        let r = ConnectRate::new(rate(60, 3));
        let t0 = Instant::now();
        for _ in 0..3 {
            r.check(A, t0).unwrap();
        }
        assert_eq!(r.check(A, t0), Err(RateRefusal::Rate));
        assert_eq!(
            r.check(A, t0 + Duration::from_millis(999)),
            Err(RateRefusal::Rate)
        );
        r.check(A, t0 + secs(1)).unwrap();
        assert_eq!(r.check(A, t0 + secs(1)), Err(RateRefusal::Rate));
        // Other addresses have their own bucket.
        r.check(B, t0).unwrap();
        // A long pause refills to the burst, not beyond.
        let later = t0 + secs(3600);
        for _ in 0..3 {
            r.check(A, later).unwrap();
        }
        assert_eq!(r.check(A, later), Err(RateRefusal::Rate));
    }

    #[test]
    fn slow_rates_refill_in_fractions() {
        // One per minute: after 30 s half a token, after 60 s one.
        let r = ConnectRate::new(rate(1, 1));
        let t0 = Instant::now();
        r.check(A, t0).unwrap();
        assert_eq!(r.check(A, t0 + secs(30)), Err(RateRefusal::Rate));
        assert_eq!(r.check(A, t0 + secs(59)), Err(RateRefusal::Rate));
        r.check(A, t0 + secs(60)).unwrap();
    }

    #[test]
    fn flapping_bans_then_lets_back_after_the_ban() {
        // More than 3 connects in 10 s: banned for 30 s.
        let r = ConnectRate::new(flapping(3, 10, 30));
        let t0 = Instant::now();
        for i in 0..3 {
            r.check(A, t0 + secs(i)).unwrap();
        }
        assert_eq!(r.check(A, t0 + secs(3)), Err(RateRefusal::BanStarted));
        assert_eq!(r.stats(t0 + secs(3)).bans, 1);
        assert_eq!(r.stats(t0 + secs(3)).banned, 1);
        // Attempts during the ban are refused and do not extend it.
        for i in 4..33 {
            assert_eq!(r.check(A, t0 + secs(i)), Err(RateRefusal::Banned));
        }
        r.check(B, t0 + secs(5)).unwrap();
        // Over at 3 + 30 s; counting starts afresh.
        for i in 0..3 {
            r.check(A, t0 + secs(33) + Duration::from_millis(i))
                .unwrap();
        }
        assert_eq!(r.stats(t0 + secs(33)).bans, 1);
        assert_eq!(r.check(A, t0 + secs(34)), Err(RateRefusal::BanStarted));
        assert_eq!(r.stats(t0 + secs(34)).bans, 2);
    }

    #[test]
    fn connects_spread_over_windows_are_not_flapping() {
        let r = ConnectRate::new(flapping(2, 10, 30));
        let t0 = Instant::now();
        for i in 0..20 {
            // Two per 10 s window, every window.
            r.check(A, t0 + secs(i * 5)).unwrap();
        }
        assert_eq!(r.stats(t0).bans, 0);
    }

    #[test]
    fn rate_refusals_count_towards_flapping() {
        let r = ConnectRate::new(RateLimits {
            per_minute: 60,
            burst: 1,
            ..flapping(3, 10, 30)
        });
        let t0 = Instant::now();
        r.check(A, t0).unwrap();
        assert_eq!(r.check(A, t0), Err(RateRefusal::Rate));
        assert_eq!(r.check(A, t0), Err(RateRefusal::Rate));
        assert_eq!(r.check(A, t0), Err(RateRefusal::BanStarted));
        assert_eq!(r.check(A, t0), Err(RateRefusal::Banned));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_the_ipv4_address() {
        let r = ConnectRate::new(rate(60, 1));
        let t0 = Instant::now();
        r.check(A, t0).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(r.check(mapped, t0), Err(RateRefusal::Rate));
        r.check(IpAddr::V6(Ipv6Addr::LOCALHOST), t0).unwrap();
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood_of_addresses() {
        let limits = RateLimits {
            max_tracked: 64,
            ..rate(60, 2)
        };
        let r = ConnectRate::new(limits);
        let t0 = Instant::now();
        // A remembered address with an empty bucket, seen last.
        r.check(A, t0).unwrap();
        r.check(A, t0).unwrap();
        for i in 0..100_000u32 {
            // 100,000 addresses within 0.1 s: none has refilled yet.
            let now = t0 + Duration::from_micros(u64::from(i));
            let ip = IpAddr::V6(Ipv6Addr::from(u128::from(i) + 1));
            r.check(ip, now).unwrap();
            assert!(r.stats(now).tracked <= 64);
            if i % 7 == 0 {
                // A keeps being seen, so it is never the least recent.
                assert_eq!(r.check(A, now), Err(RateRefusal::Rate), "at {i}");
            }
        }
        let stats = r.stats(t0);
        assert!(stats.evicted > 0);
        assert_eq!(stats.untracked, 0);
        // Once their buckets refilled, addresses are simply forgotten.
        let later = t0 + secs(10);
        r.check(B, later).unwrap();
        assert!(r.stats(later).tracked <= 64);
    }

    #[test]
    fn bans_survive_a_full_table() {
        let limits = RateLimits {
            max_tracked: 8,
            ..flapping(1, 10, 60)
        };
        let r = ConnectRate::new(limits);
        let t0 = Instant::now();
        r.check(A, t0).unwrap();
        assert_eq!(r.check(A, t0), Err(RateRefusal::BanStarted));
        for i in 0..1000u32 {
            r.check(IpAddr::V6(Ipv6Addr::from(u128::from(i) + 1)), t0)
                .unwrap();
        }
        assert_eq!(r.check(A, t0 + secs(1)), Err(RateRefusal::Banned));
        // A table of bans only: new addresses pass untracked.
        let r = ConnectRate::new(RateLimits {
            max_tracked: 2,
            ..flapping(1, 10, 60)
        });
        for ip in [A, B] {
            r.check(ip, t0).unwrap();
            assert_eq!(r.check(ip, t0), Err(RateRefusal::BanStarted));
        }
        let c = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
        r.check(c, t0).unwrap();
        r.check(c, t0).unwrap();
        assert_eq!(r.stats(t0).untracked, 2);
        assert_eq!(r.stats(t0).tracked, 2);
    }

    #[test]
    fn limits_change_in_place() {
        let r = ConnectRate::new(rate(60, 1));
        let t0 = Instant::now();
        r.check(A, t0).unwrap();
        assert_eq!(r.check(A, t0), Err(RateRefusal::Rate));
        r.set_limits(rate(60, 5), t0);
        assert_eq!(r.limits().burst, 5);
        // The empty bucket refills towards the new size.
        r.check(A, t0 + secs(2)).unwrap();
        r.check(A, t0 + secs(2)).unwrap();
        // A lower max_tracked applies at once.
        for i in 0..100u32 {
            r.check(IpAddr::V6(Ipv6Addr::from(u128::from(i) + 1)), t0 + secs(2))
                .unwrap();
        }
        assert_eq!(r.stats(t0).tracked, 101);
        r.set_limits(
            RateLimits {
                max_tracked: 16,
                ..rate(60, 5)
            },
            t0 + secs(2),
        );
        assert!(r.stats(t0).tracked < 16, "{}", r.stats(t0).tracked);
        r.set_limits(RateLimits::OFF, t0);
        r.check(A, t0 + secs(2)).unwrap();
        assert_eq!(r.stats(t0).tracked, 0, "off forgets everything");
    }
}
