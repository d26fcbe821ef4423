//! The worker's sampled gauges, taken on its 500 ms tick rather than on the
//! message path: the thread's CPU time (every tick), and from one walk over
//! its sessions (every [`SESSION_WALK_TICKS`] ticks) the sessions online and
//! offline, the outgoing QoS > 0 messages inflight, and the distribution of
//! session queue depths.

use super::Worker;
use crate::client::ClientState;
use std::time::Duration;

/// Every how many ticks the sessions are walked (1 s, the rate at which the
/// metrics thread reads them). The walk reads two lengths per session and
/// does one bucket search: a few milliseconds per 100k sessions.
const SESSION_WALK_TICKS: u64 = 2;

impl Worker {
    /// Samples the gauges at tick number `tick` (1 for the first).
    pub(super) fn sample_gauges(&self, tick: u64) {
        if let Some(busy) = thread_cpu_time() {
            let nanos = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX);
            self.stats.busy_nanos.set(nanos);
        }
        if tick.wrapping_sub(1).is_multiple_of(SESSION_WALK_TICKS) {
            self.sample_sessions();
        }
    }

    /// One walk over this worker's sessions.
    fn sample_sessions(&self) {
        let Ok(clients) = self.clients.try_borrow() else {
            return;
        };
        let depth = &self.stats.queue_depth;
        depth.reset();
        let (mut online, mut offline, mut inflight) = (0u64, 0u64, 0u64);
        for client in clients.values() {
            let session = match &client.state {
                ClientState::Online(cell) => {
                    online += 1;
                    let Ok(cs) = cell.try_borrow() else {
                        continue;
                    };
                    let Some(conn) = cs.conn.as_ref() else {
                        continue;
                    };
                    let s = conn.session();
                    (s.inflight_len(), s.queued_len())
                }
                ClientState::Offline(session) => {
                    offline += 1;
                    (session.inflight_len(), session.queued_len())
                }
            };
            inflight += session.0 as u64;
            depth.record(session.1 as u64);
        }
        self.stats.sessions_online.set(online);
        self.stats.sessions_offline.set(offline);
        self.stats.inflight.set(inflight);
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` that outlives the call;
    // clock_gettime only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u32::try_from(ts.tv_nsec).ok()?;
    Some(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_grows_with_work_on_this_thread_only() {
        let before = thread_cpu_time().expect("CLOCK_THREAD_CPUTIME_ID");
        // Spin until this thread has used 10 ms of CPU (however loaded the
        // machine is).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let used = thread_cpu_time().expect("clock") - before;
            if used >= Duration::from_millis(10) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "CPU time stuck at {used:?}"
            );
        }
        // Sleeping, or another thread's work, adds (almost) nothing.
        let after = thread_cpu_time().expect("clock");
        std::thread::spawn(|| {
            let t = std::time::Instant::now();
            while t.elapsed() < Duration::from_millis(30) {
                std::hint::black_box(0u64);
            }
        })
        .join()
        .expect("spinner");
        std::thread::sleep(Duration::from_millis(20));
        let later = thread_cpu_time().expect("clock");
        assert!(
            later - after < Duration::from_millis(15),
            "{after:?} → {later:?}"
        );
    }
}
