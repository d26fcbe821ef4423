//! The hot path: publishing in batches under rate and window limits, QoS 1/2
//! acknowledgement flows in both directions, and delivery accounting.
//! Nothing here allocates per message.

use crate::cli::Scenario;
use crate::conn::{ConnState, Role};
use crate::engine::{Engine, Publisher};
use crate::frame::{self, ptype, Frame, Incoming};
use crate::seq::SeqOutcome;

/// Most messages one publisher queues per loop turn.
const BATCH: u64 = 128;
/// Most bytes one publisher queues per loop turn.
const BATCH_BYTES: u64 = 64 * 1024;
/// Do not queue more while this much is waiting for the socket.
const WBUF_HIGH: usize = 256 * 1024;
/// QoS 0 closed loop: after this long without the window opening, the
/// outstanding messages are presumed lost and the window is reset.
const STALL_NS: u64 = 2_000_000_000;

fn bit(bits: &[u64], pid: u16) -> bool {
    bits[usize::from(pid) >> 6] & (1 << (pid & 63)) != 0
}

fn set_bit(bits: &mut [u64], pid: u16, on: bool) {
    let w = &mut bits[usize::from(pid) >> 6];
    if on {
        *w |= 1 << (pid & 63);
    } else {
        *w &= !(1 << (pid & 63));
    }
}

impl Publisher {
    /// A free packet id. Callers ensure `inflight < cap <= 65535`, so one exists.
    fn alloc_pid(&mut self) -> u16 {
        loop {
            let pid = self.next_pid;
            self.next_pid = if pid == u16::MAX { 1 } else { pid + 1 };
            if !bit(&self.awaiting, pid) {
                set_bit(&mut self.awaiting, pid, true);
                self.inflight += 1;
                return pid;
            }
        }
    }

    /// Forget `pid` (acknowledged). Returns false if it was not in flight.
    fn complete(&mut self, pid: u16) -> bool {
        if !bit(&self.awaiting, pid) {
            return false;
        }
        set_bit(&mut self.awaiting, pid, false);
        if !self.released.is_empty() {
            set_bit(&mut self.released, pid, false);
        }
        self.inflight -= 1;
        true
    }
}

impl Engine {
    /// QoS 0 window base for publisher `p`: the lowest "highest sequence + 1"
    /// over its live receivers.
    fn delivered_base(&self, p: usize) -> u64 {
        let live = |s: usize| self.conns[self.subs[s].conn].state == ConnState::Ready;
        let sent = self.pubs[p].sent;
        match self.cfg.scenario {
            Scenario::Pairs => {
                if live(p) {
                    self.subs[p].trackers[0].next()
                } else {
                    sent
                }
            }
            _ => (0..self.subs.len())
                .filter(|&s| live(s))
                .map(|s| self.subs[s].trackers[p].next())
                .min()
                .unwrap_or(sent),
        }
    }

    /// When the next rate-limited message is due (u64::MAX without --rate).
    pub(crate) fn next_rate_due(&self, now: u64) -> u64 {
        let Some(rate) = self.cfg.rate else {
            return u64::MAX;
        };
        self.pubs
            .iter()
            .filter(|p| !p.done)
            .map(|p| self.t_pub_start + (p.sent as f64 * 1e9 / rate) as u64)
            .min()
            .unwrap_or(u64::MAX)
            .max(now)
    }

    /// Queue a batch for every publisher that may send. Returns true if some
    /// publisher stopped only at the batch limit (so poll without waiting).
    pub(crate) fn pump(&mut self, now: u64) -> bool {
        let mut busy = false;
        let qos = self.cfg.qos;
        let window = u64::from(self.cfg.window);
        for p in 0..self.pubs.len() {
            let pb = &self.pubs[p];
            let ci = pb.conn;
            let c = &self.conns[ci];
            if pb.done
                || c.state != ConnState::Ready
                || c.write_blocked
                || c.pending_write() >= WBUF_HIGH
            {
                continue;
            }
            let batch = BATCH.min((BATCH_BYTES / pb.tmpl.len() as u64).max(1));
            let mut n = batch;
            if let Some(count) = self.cfg.count {
                n = n.min(count - pb.sent);
            }
            if let Some(rate) = self.cfg.rate {
                let due = ((now - self.t_pub_start) as f64 * rate / 1e9) as u64 + 1;
                n = n.min(due.saturating_sub(pb.sent));
            }
            let mut window_room = u64::MAX;
            if qos > 0 {
                window_room = u64::from(pb.cap - pb.inflight);
            } else if window > 0 {
                if pb.sent - pb.base >= window {
                    let base = self.delivered_base(p);
                    self.pubs[p].base = base;
                }
                window_room = window.saturating_sub(self.pubs[p].sent - self.pubs[p].base);
            }
            let pb = &mut self.pubs[p];
            if window_room == 0 && n > 0 {
                let since = *pb.blocked_since.get_or_insert(now);
                if qos == 0 && now - since >= STALL_NS {
                    pb.base = pb.sent;
                    pb.blocked_since = None;
                    self.st.window_stalls += 1;
                }
                continue;
            }
            pb.blocked_since = None;
            n = n.min(window_room);
            if n == 0 {
                continue;
            }
            let c = &mut self.conns[ci];
            for _ in 0..n {
                let pid = if qos > 0 { pb.alloc_pid() } else { 0 };
                pb.tmpl.write(&mut c.wbuf, pid, now, pb.sent as u32);
                pb.sent += 1;
            }
            if self.cfg.count == Some(pb.sent) {
                pb.done = true;
            }
            busy |= n == batch;
            self.st.sent += n;
            if now >= self.t_measure {
                self.st.measured_sent += n;
            }
            self.mark_dirty(ci);
        }
        busy
    }

    /// Acks, deliveries and pings once a connection is set up.
    pub(crate) fn handle_traffic(&mut self, i: usize, f: Frame, now: u64) {
        self.st.last_progress_ns = now;
        let role = self.conns[i].role;
        match (f, role) {
            (Frame::Publish(inc), Role::Subscriber(s)) => {
                let c = &mut self.conns[i];
                match inc.qos {
                    1 => frame::ack(&mut c.wbuf, ptype::PUBACK, inc.pid),
                    2 => frame::ack(&mut c.wbuf, ptype::PUBREC, inc.pid),
                    _ => {}
                }
                if inc.qos > 0 {
                    self.mark_dirty(i);
                }
                self.delivered(s as usize, &inc, now);
            }
            (Frame::PubRel { pid, .. }, _) => {
                frame::ack(&mut self.conns[i].wbuf, ptype::PUBCOMP, pid);
                self.mark_dirty(i);
            }
            (Frame::PubAck { pid, code }, Role::Publisher(p)) => {
                let pb = &mut self.pubs[p as usize];
                if self.cfg.qos == 1 && pb.complete(pid) {
                    self.st.ack_errors += u64::from(code >= 0x80);
                } else {
                    self.st.unexpected_acks += 1;
                }
            }
            (Frame::PubRec { pid, code }, Role::Publisher(p)) => {
                let pb = &mut self.pubs[p as usize];
                if self.cfg.qos != 2 || !bit(&pb.awaiting, pid) {
                    self.st.unexpected_acks += 1;
                } else if code >= 0x80 {
                    // [MQTT-4.3.3] v5: a failing PUBREC ends the exchange.
                    pb.complete(pid);
                    self.st.ack_errors += 1;
                } else {
                    set_bit(&mut pb.released, pid, true);
                    frame::ack(&mut self.conns[i].wbuf, ptype::PUBREL, pid);
                    self.mark_dirty(i);
                }
            }
            (Frame::PubComp { pid, code }, Role::Publisher(p)) => {
                let pb = &mut self.pubs[p as usize];
                if self.cfg.qos == 2 && bit(&pb.released, pid) && pb.complete(pid) {
                    self.st.ack_errors += u64::from(code >= 0x80);
                } else {
                    self.st.unexpected_acks += 1;
                }
            }
            (Frame::PingResp, _) => {}
            (Frame::Publish(_), _) => self.st.foreign += 1,
            (other, _) => self.fail(i, &format!("unexpected frame {other:?}")),
        }
    }

    /// Account one delivery to subscriber `s`.
    fn delivered(&mut self, s: usize, inc: &Incoming, now: u64) {
        let Some(stamp) = inc.stamp else {
            self.st.foreign += 1;
            return;
        };
        let sub = &mut self.subs[s];
        let slot = stamp.publisher.wrapping_sub(sub.pub_base) as usize;
        let Some(tracker) = sub.trackers.get_mut(slot) else {
            self.st.foreign += 1;
            return;
        };
        match tracker.record(stamp.seq) {
            SeqOutcome::Duplicate => {
                self.st.duplicates += 1;
                return;
            }
            SeqOutcome::Reordered => self.st.reordered += 1,
            SeqOutcome::InOrder => {}
        }
        self.st.received += 1;
        if now >= self.t_measure {
            self.st.measured_received += 1;
            self.st.last_delivery_ns = now;
        }
        if stamp.ts_ns >= self.t_measure {
            let lat = now.saturating_sub(stamp.ts_ns);
            self.lat.record(lat);
            self.lat_tick.record(lat);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_bitmap_alloc_wraps_and_skips_in_flight() {
        let mut p = Publisher {
            conn: 0,
            tmpl: frame::PublishTemplate::new(false, 1, b"t", 16, 0),
            sent: 0,
            base: 0,
            inflight: 0,
            cap: 65_535,
            next_pid: 65_534,
            awaiting: vec![0; 1024].into_boxed_slice(),
            released: Box::new([]),
            blocked_since: None,
            done: false,
        };
        assert_eq!(p.alloc_pid(), 65_534);
        assert_eq!(p.alloc_pid(), 65_535);
        assert_eq!(p.alloc_pid(), 1); // 0 is never a packet id
        assert_eq!(p.inflight, 3);
        p.next_pid = 65_535;
        assert_eq!(p.alloc_pid(), 2); // 65535 and 1 are in flight
        assert!(p.complete(65_535));
        assert!(!p.complete(65_535));
        assert_eq!(p.inflight, 3);
        p.next_pid = 65_535;
        assert_eq!(p.alloc_pid(), 65_535);
    }
}
