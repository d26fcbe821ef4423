//! Connection caps: global, per source IP and per listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Caps live connections in total, per source IP and per listener. Cheap to clone (an
/// `Arc`), shared by the acceptor and the workers; touched only on accept and
/// close. IPv4-mapped IPv6 peers count as their IPv4 address. The caps can
/// be changed while connections are live ([`ConnectionLimiter::set_limits`]).
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// 0 = unlimited.
    max_total: AtomicUsize,
    /// 0 = unlimited (and connections accepted meanwhile are not counted per IP).
    max_per_ip: AtomicUsize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// One slot per listener, by index (see [`ConnectionLimiter::with_listeners`]).
    listeners: Box<[ListenerSlot]>,
}

#[derive(Debug, Default)]
struct ListenerSlot {
    /// 0 = unlimited.
    max: AtomicUsize,
    current: AtomicUsize,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    /// The global connection cap is reached.
    #[error("connection limit reached")]
    Total,
    /// The per-source-IP cap is reached for this peer.
    #[error("per-IP connection limit reached")]
    PerIp,
    /// The cap of the listener the connection came in on is reached.
    #[error("listener connection limit reached")]
    Listener,
}

/// One connection slot; dropping it frees the slot. `Send`, so it travels with
/// the connection to its worker.
#[derive(Debug)]
#[must_use = "the slot is released as soon as the permit is dropped"]
pub struct ConnectionPermit {
    inner: Arc<Inner>,
    /// The counted IP, when per-IP limiting is on.
    ip: Option<IpAddr>,
    /// The counted listener's index (`u16` keeps the permit, which every
    /// parked connection holds, at four words).
    listener: Option<u16>,
}

impl ConnectionLimiter {
    /// A limiter allowing `max_total` connections and `max_per_ip` per source
    /// address; 0 means unlimited for either.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self::with_listeners(max_total, max_per_ip, &[])
    }

    /// Like [`new`](Self::new), with a cap per listener (0 = unlimited),
    /// by index: [`acquire_on`](Self::acquire_on) names the index. Only
    /// the first 65,535 listeners can have a cap.
    pub fn with_listeners(max_total: usize, max_per_ip: usize, listeners: &[usize]) -> Self {
        let listeners = listeners
            .iter()
            .take(usize::from(u16::MAX))
            .map(|&max| ListenerSlot {
                max: AtomicUsize::new(max),
                current: AtomicUsize::new(0),
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                max_total: AtomicUsize::new(max_total),
                max_per_ip: AtomicUsize::new(max_per_ip),
                total: AtomicUsize::new(0),
                per_ip: Mutex::new(HashMap::new()),
                listeners,
            }),
        }
    }

    /// Takes a slot for a connection from `ip`, or `None` when a cap is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Option<ConnectionPermit> {
        self.acquire(ip).ok()
    }

    /// Like [`try_acquire`](Self::try_acquire), saying which cap refused.
    pub fn acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, LimitExceeded> {
        self.acquire_on(None, ip)
    }

    /// Takes a slot for a connection from `ip` on listener `listener` (an
    /// index given to [`with_listeners`](Self::with_listeners); `None` or
    /// an unknown index: no listener cap), saying which cap refused.
    pub fn acquire_on(
        &self,
        listener: Option<usize>,
        ip: IpAddr,
    ) -> Result<ConnectionPermit, LimitExceeded> {
        self.take(listener, Some(ip.to_canonical()))
    }

    /// Takes a slot under the global and the listener's cap only, for a
    /// connection whose source is not known yet (a PROXY listener: the
    /// socket's peer is the proxy). Charge the source later with
    /// [`ConnectionPermit::attribute`].
    pub fn acquire_unattributed(
        &self,
        listener: Option<usize>,
    ) -> Result<ConnectionPermit, LimitExceeded> {
        self.take(listener, None)
    }

    fn take(
        &self,
        listener: Option<usize>,
        ip: Option<IpAddr>,
    ) -> Result<ConnectionPermit, LimitExceeded> {
        let inner = &self.inner;
        // Hold the per-IP table (if any) across every check so a refusal by
        // one cap never leaves another incremented.
        let max_per_ip = inner.max_per_ip.load(Ordering::Relaxed);
        let max_total = inner.max_total.load(Ordering::Relaxed);
        let mut table = ip.filter(|_| max_per_ip > 0).map(|ip| (ip, inner.table()));
        if let Some((ip, table)) = &table {
            let count = table.get(ip).copied().unwrap_or(0);
            if count as usize >= max_per_ip {
                return Err(LimitExceeded::PerIp);
            }
        }
        inner
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max_total == 0 || n < max_total).then_some(n + 1)
            })
            .map_err(|_| LimitExceeded::Total)?;
        let slot = listener.and_then(|i| Some((i, inner.listeners.get(i)?)));
        let mut listener = None;
        if let Some((i, slot)) = slot {
            let max = slot.max.load(Ordering::Relaxed);
            let took = slot
                .current
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (max == 0 || n < max).then_some(n + 1)
                });
            if took.is_err() {
                inner.total.fetch_sub(1, Ordering::AcqRel);
                return Err(LimitExceeded::Listener);
            }
            listener = u16::try_from(i).ok();
        }
        let counted = table.as_mut().map(|(ip, table)| {
            *table.entry(*ip).or_insert(0) += 1;
            *ip
        });
        Ok(ConnectionPermit {
            inner: Arc::clone(&self.inner),
            ip: counted,
            listener,
        })
    }

    /// Live connections.
    pub fn current(&self) -> usize {
        self.inner.total.load(Ordering::Acquire)
    }

    /// Live connections from `ip` (0 when per-IP limiting is off).
    pub fn current_for(&self, ip: IpAddr) -> usize {
        self.inner
            .table()
            .get(&ip.to_canonical())
            .map_or(0, |&n| n as usize)
    }

    /// Live connections on listener `index` (0 for an unknown index).
    pub fn current_on(&self, index: usize) -> usize {
        self.inner
            .listeners
            .get(index)
            .map_or(0, |s| s.current.load(Ordering::Acquire))
    }

    /// Changes the cap of listener `index` (0 = unlimited) for later
    /// acquisitions; live connections are never closed. An unknown index
    /// is ignored.
    pub fn set_listener_limit(&self, index: usize, max: usize) {
        if let Some(slot) = self.inner.listeners.get(index) {
            slot.max.store(max, Ordering::Relaxed);
        }
    }

    /// The global cap (0 = unlimited).
    pub fn max_total(&self) -> usize {
        self.inner.max_total.load(Ordering::Relaxed)
    }

    /// The per-IP cap (0 = unlimited).
    pub fn max_per_ip(&self) -> usize {
        self.inner.max_per_ip.load(Ordering::Relaxed)
    }

    /// Changes both caps (0 = unlimited) for later acquisitions. Live
    /// connections are never closed: a lower cap refuses new ones until
    /// enough have closed. Connections accepted while per-IP limiting was off
    /// are not counted against a per-IP cap turned on later.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        self.inner.max_total.store(max_total, Ordering::Relaxed);
        self.inner.max_per_ip.store(max_per_ip, Ordering::Relaxed);
    }
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // The table holds plain counters that are never left half-updated.
        self.per_ip.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ConnectionPermit {
    /// The counted source address, when per-IP limiting is on.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Charges the connection to its source `ip` under the per-IP cap (a
    /// permit from [`ConnectionLimiter::acquire_unattributed`], once the
    /// PROXY header told the client's address). A permit charged already is
    /// moved from its old address to `ip`. `Err` when `ip` is at its cap:
    /// the permit stays as it was; drop it to refuse the connection.
    pub fn attribute(&mut self, ip: IpAddr) -> Result<(), LimitExceeded> {
        let ip = ip.to_canonical();
        let max_per_ip = self.inner.max_per_ip.load(Ordering::Relaxed);
        if max_per_ip == 0 || self.ip == Some(ip) {
            return Ok(());
        }
        let mut table = self.inner.table();
        let count = table.get(&ip).copied().unwrap_or(0);
        if count as usize >= max_per_ip {
            return Err(LimitExceeded::PerIp);
        }
        *table.entry(ip).or_insert(0) += 1;
        if let Some(old) = self.ip.replace(ip) {
            if let Some(n) = table.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    table.remove(&old);
                }
            }
        }
        Ok(())
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut table = self.inner.table();
            if let Some(count) = table.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    table.remove(&ip);
                }
            }
        }
        if let Some(slot) = self
            .listener
            .and_then(|i| self.inner.listeners.get(usize::from(i)))
        {
            slot.current.fetch_sub(1, Ordering::AcqRel);
        }
        self.inner.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn global_cap_and_release_on_drop() {
        let limiter = ConnectionLimiter::new(2, 0);
        let p1 = limiter.try_acquire(A).unwrap();
        let p2 = limiter.try_acquire(B).unwrap();
        assert_eq!(limiter.current(), 2);
        assert_eq!(limiter.acquire(A).unwrap_err(), LimitExceeded::Total);
        assert!(limiter.try_acquire(B).is_none());
        drop(p1);
        assert_eq!(limiter.current(), 1);
        let p3 = limiter.try_acquire(A).unwrap();
        assert_eq!(p3.ip(), None, "per-IP counting is off");
        drop((p2, p3));
        assert_eq!(limiter.current(), 0);
    }

    #[test]
    fn unattributed_then_charged_to_the_reported_address() {
        let limiter = ConnectionLimiter::new(3, 1);
        let mut p1 = limiter.acquire_unattributed(None).unwrap();
        let mut p2 = limiter.acquire_unattributed(None).unwrap();
        assert_eq!(limiter.current(), 2);
        assert_eq!(limiter.current_for(A), 0);
        p1.attribute(A).unwrap();
        assert_eq!(p1.ip(), Some(A));
        assert_eq!(limiter.current_for(A), 1);
        assert_eq!(p2.attribute(A), Err(LimitExceeded::PerIp));
        assert_eq!(p2.ip(), None);
        p2.attribute(B).unwrap();
        // Moving a charged permit frees its old address.
        p1.attribute(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)))
            .unwrap();
        assert_eq!(limiter.current_for(A), 0);
        let _p3 = limiter.acquire_unattributed(None).unwrap();
        assert_eq!(
            limiter.acquire_unattributed(None).unwrap_err(),
            LimitExceeded::Total
        );
        drop((p1, p2));
        assert_eq!(limiter.current_for(B), 0);
        assert_eq!(limiter.current(), 1);
    }

    #[test]
    fn per_ip_cap() {
        let limiter = ConnectionLimiter::new(0, 2);
        let a1 = limiter.try_acquire(A).unwrap();
        let a2 = limiter.try_acquire(A).unwrap();
        assert_eq!(limiter.acquire(A).unwrap_err(), LimitExceeded::PerIp);
        let b1 = limiter.try_acquire(B).unwrap();
        assert_eq!(limiter.current_for(A), 2);
        assert_eq!(limiter.current_for(B), 1);
        assert_eq!(limiter.current(), 3);
        drop(a1);
        assert_eq!(limiter.current_for(A), 1);
        let a3 = limiter.try_acquire(A).unwrap();
        drop((a2, a3, b1));
        assert_eq!(limiter.current(), 0);
        assert_eq!(limiter.current_for(A), 0);
        assert!(
            limiter.inner.table().is_empty(),
            "released IPs are forgotten"
        );
    }

    #[test]
    fn refusal_by_one_cap_does_not_leak_the_other() {
        let limiter = ConnectionLimiter::new(1, 5);
        let _a = limiter.try_acquire(A).unwrap();
        assert_eq!(limiter.acquire(B).unwrap_err(), LimitExceeded::Total);
        assert_eq!(limiter.current_for(B), 0);
        assert_eq!(limiter.current(), 1);

        let limiter = ConnectionLimiter::new(10, 1);
        let _a = limiter.try_acquire(A).unwrap();
        assert_eq!(limiter.acquire(A).unwrap_err(), LimitExceeded::PerIp);
        assert_eq!(limiter.current(), 1);
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let limiter = ConnectionLimiter::new(0, 1);
        let _a = limiter.try_acquire(A).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(limiter.try_acquire(mapped).is_none());
        assert!(limiter
            .try_acquire(IpAddr::V6(Ipv6Addr::LOCALHOST))
            .is_some());
    }

    #[test]
    fn limits_change_while_connections_live() {
        let limiter = ConnectionLimiter::new(3, 0);
        let held: Vec<_> = (0..3).map(|_| limiter.try_acquire(A).unwrap()).collect();
        limiter.set_limits(2, 0);
        assert_eq!(limiter.max_total(), 2);
        assert_eq!(limiter.current(), 3, "live connections are kept");
        assert_eq!(limiter.acquire(B).unwrap_err(), LimitExceeded::Total);
        drop(held);
        let _b = limiter.try_acquire(B).unwrap();
        limiter.set_limits(0, 1);
        assert_eq!(limiter.max_per_ip(), 1);
        let a = limiter.try_acquire(A).unwrap();
        assert_eq!(a.ip(), Some(A), "counted per IP from now on");
        assert_eq!(limiter.acquire(A).unwrap_err(), LimitExceeded::PerIp);
        let _b2 = limiter.try_acquire(B).unwrap();
        assert!(limiter.try_acquire(B).is_none());
        limiter.set_limits(0, 0);
        let _b3 = limiter.try_acquire(B).unwrap();
        drop(a);
        assert_eq!(limiter.current_for(A), 0);
    }

    #[test]
    fn listener_caps() {
        let limiter = ConnectionLimiter::with_listeners(3, 0, &[1, 0]);
        let l0 = limiter.acquire_on(Some(0), A).unwrap();
        assert_eq!(
            limiter.acquire_on(Some(0), B).unwrap_err(),
            LimitExceeded::Listener
        );
        assert_eq!(limiter.current(), 1, "the refusal gave the total back");
        let l1 = limiter.acquire_on(Some(1), B).unwrap();
        let any = limiter.acquire_on(None, B).unwrap();
        assert_eq!(limiter.current_on(0), 1);
        assert_eq!(limiter.current_on(1), 1);
        assert_eq!(
            limiter.acquire_on(Some(1), B).unwrap_err(),
            LimitExceeded::Total
        );
        assert_eq!(limiter.current_on(1), 1, "the total refused first");
        drop(l0);
        assert_eq!(limiter.current_on(0), 0);
        let l0b = limiter.acquire_on(Some(0), A).unwrap();
        limiter.set_listener_limit(0, 2);
        drop(any);
        let l0c = limiter.acquire_on(Some(0), A).unwrap();
        // An unknown index has no cap of its own.
        limiter.set_listener_limit(7, 1);
        assert_eq!(limiter.current_on(7), 0);
        drop((l0b, l0c, l1));
        let _unknown = limiter.acquire_on(Some(7), A).unwrap();
        assert_eq!(limiter.current(), 1);
        assert_eq!(limiter.current_on(0), 0);
    }

    #[test]
    fn unlimited_still_counts() {
        let limiter = ConnectionLimiter::new(0, 0);
        let permits: Vec<_> = (0..100).map(|_| limiter.try_acquire(A).unwrap()).collect();
        assert_eq!(limiter.current(), 100);
        drop(permits);
        assert_eq!(limiter.current(), 0);
    }

    #[test]
    fn concurrent_acquire_never_exceeds_cap() {
        let limiter = ConnectionLimiter::new(8, 0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for _ in 0..1000 {
                        if let Some(p) = limiter.try_acquire(A) {
                            assert!(limiter.current() <= 8);
                            held.push(p);
                        }
                        if held.len() > 2 {
                            held.clear();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(limiter.current(), 0);
    }
}
