//! The single-threaded event loop: connection setup, phases, timing and the
//! final measurements. Traffic (publishing, acks, deliveries) is in
//! [`crate::traffic`].

use std::time::Duration;

use mio::{Events, Poll, Token};

use crate::cli::{Config, Scenario};
use crate::conn::{source_addr, Conn, ConnError, ConnState, Fill, Role};
use crate::frame::{self, Frame, PublishTemplate};
use crate::hist::Histogram;
use crate::report::{BrokerFigures, Summary};
use crate::seq::SeqTracker;
pub(crate) use crate::state::{Publisher, Stats, Subscriber};
use crate::sys::{self, BrokerSample};

const SEC: u64 = 1_000_000_000;

/// A run that could not start or had to be abandoned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cannot create the event loop: {0}")]
    Poll(std::io::Error),
    #[error("cannot read broker process {pid}: {err} (is --broker-pid right?)")]
    BrokerPid { pid: u32, err: std::io::Error },
    #[error("{0}")]
    Setup(String),
}

/// Run phases, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Connecting,
    Publishing,
    Draining,
    Holding,
    Done,
}

/// The whole generator state.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) cfg: Config,
    poll: Poll,
    pub(crate) conns: Vec<Conn>,
    pub(crate) pubs: Vec<Publisher>,
    pub(crate) subs: Vec<Subscriber>,
    pub(crate) dirty: Vec<usize>,
    pub(crate) st: Stats,
    pub(crate) lat: Histogram,
    pub(crate) lat_tick: Histogram,
    conn_lat: Histogram,
    pub(crate) phase: Phase,
    total: usize,
    opened: usize,
    handshaking: usize,
    ready: usize,
    receive_max: Option<u16>,
    run_tag: String,
    t_start: u64,
    t_connected: u64,
    pub(crate) t_pub_start: u64,
    pub(crate) t_measure: u64,
    measuring: bool,
    t_pub_end: u64,
    t_deadline: u64,
    timed_out: bool,
    fatal: Option<String>,
    broker_start: Option<BrokerSample>,
    broker_connected: Option<BrokerSample>,
    broker_measure: Option<BrokerSample>,
    self_cpu_measure: u64,
    next_tick: u64,
    tick_sent: u64,
    tick_received: u64,
}

impl Engine {
    /// Prepare a run; nothing is connected yet.
    pub(crate) fn new(cfg: Config) -> Result<Self, RunError> {
        let poll = Poll::new().map_err(RunError::Poll)?;
        let total = cfg.total_conns() as usize;
        let nofile = sys::raise_nofile();
        if total as u64 + 16 > nofile {
            return Err(RunError::Setup(format!(
                "{total} connections need more file descriptors than the limit {nofile} (raise ulimit -n)"
            )));
        }
        let now = sys::mono_ns();
        Ok(Self {
            poll,
            conns: Vec::with_capacity(total),
            pubs: Vec::with_capacity(cfg.pubs as usize),
            subs: Vec::with_capacity(cfg.subs as usize),
            dirty: Vec::with_capacity(total),
            st: Stats::default(),
            lat: Histogram::new(),
            lat_tick: Histogram::new(),
            conn_lat: Histogram::new(),
            phase: Phase::Connecting,
            total,
            opened: 0,
            handshaking: 0,
            ready: 0,
            receive_max: None,
            run_tag: format!("tb{:x}{:x}", std::process::id(), now % 0xffff_ffff),
            t_start: now,
            t_connected: 0,
            t_pub_start: 0,
            t_measure: 0,
            measuring: false,
            t_pub_end: 0,
            t_deadline: now + cfg.timeout_ns,
            timed_out: false,
            fatal: None,
            broker_start: None,
            broker_connected: None,
            broker_measure: None,
            self_cpu_measure: 0,
            next_tick: now + SEC,
            tick_sent: 0,
            tick_received: 0,
            cfg,
        })
    }

    fn sample_broker(&self) -> Option<BrokerSample> {
        self.cfg.broker_pid.and_then(|p| sys::sample_broker(p).ok())
    }

    /// Run to completion and summarise.
    pub(crate) fn run(mut self) -> Result<Summary, RunError> {
        if let Some(pid) = self.cfg.broker_pid {
            let s = sys::sample_broker(pid).map_err(|err| RunError::BrokerPid { pid, err })?;
            self.broker_start = Some(s);
        }
        let self_cpu_start = sys::self_cpu_ns();
        let mut events = Events::with_capacity(1024);
        loop {
            let now = sys::mono_ns();
            self.step_phase(now);
            if self.phase == Phase::Done {
                break;
            }
            let busy = self.phase == Phase::Publishing && self.pump(now);
            self.flush_dirty(now);
            let wake = if busy { now } else { self.next_wake(now) };
            let timeout = Duration::from_nanos(wake.saturating_sub(now).min(100_000_000));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.fatal = Some(format!("poll failed: {e}"));
                    break;
                }
            }
            let now = sys::mono_ns();
            for ev in events.iter() {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                self.on_event(ev.token().0, readable, ev.is_writable(), now);
            }
            self.flush_dirty(now);
            if now >= self.next_tick {
                self.tick(now);
            }
            if let Some(msg) = &self.fatal {
                return Err(RunError::Setup(msg.clone()));
            }
        }
        let t_end = sys::mono_ns();
        let broker_end = self.sample_broker();
        let self_cpu_end = sys::self_cpu_ns();
        self.close_all(t_end);
        let (cpu_from, t_from) = if self.measuring {
            (self.self_cpu_measure, self.t_measure)
        } else {
            (self_cpu_start, self.t_start)
        };
        Ok(self.summarise(
            broker_end,
            self_cpu_end - cpu_from,
            t_end.saturating_sub(t_from),
        ))
    }

    /// Open connections, move between phases, enforce deadlines.
    fn step_phase(&mut self, now: u64) {
        if now >= self.t_deadline && self.phase != Phase::Done {
            self.timed_out = true;
            if self.phase == Phase::Publishing {
                self.t_pub_end = now;
            }
            self.phase = Phase::Done;
            return;
        }
        match self.phase {
            Phase::Connecting => {
                let parallel = self.cfg.connect_parallel as usize;
                while self.opened < self.total && self.handshaking < parallel {
                    self.open_next(now);
                    if self.fatal.is_some() {
                        return;
                    }
                }
                if self.ready + self.st.conn_failures as usize == self.total {
                    self.all_connected(now);
                }
            }
            Phase::Publishing => {
                if !self.measuring && now >= self.t_measure {
                    self.start_measuring(now);
                }
                let finished = match (self.cfg.duration_ns, self.cfg.count) {
                    (Some(d), _) => now >= self.t_measure + d,
                    _ => self.pubs.iter().all(|p| p.done),
                };
                if finished {
                    for p in &mut self.pubs {
                        p.done = true;
                    }
                    self.t_pub_end = now;
                    self.phase = Phase::Draining;
                }
            }
            Phase::Draining => {
                let all_in = self.st.received >= self.expected()
                    && self.pubs.iter().all(|p| p.inflight == 0);
                if all_in || now >= self.drain_deadline() {
                    self.phase = Phase::Done;
                }
            }
            Phase::Holding => {
                if now >= self.t_measure + self.cfg.duration_ns.unwrap_or(0) {
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
    }

    fn all_connected(&mut self, now: u64) {
        self.t_connected = now;
        self.broker_connected = self.sample_broker();
        if self.cfg.scenario == Scenario::Conns {
            self.t_measure = now;
            self.phase = Phase::Holding;
            return;
        }
        if self.st.conn_failures > 0 {
            self.fatal = Some("some connections failed during setup".to_owned());
            return;
        }
        let qos = self.cfg.qos;
        let window = if self.cfg.window == 0 {
            65_535
        } else {
            self.cfg.window.min(65_535)
        };
        let cap = window.min(u32::from(self.receive_max.unwrap_or(65_535)));
        for p in &mut self.pubs {
            p.cap = if qos > 0 { cap } else { u32::MAX };
        }
        self.t_pub_start = now;
        self.t_measure = now + self.cfg.warmup_ns;
        self.phase = Phase::Publishing;
        if !self.cfg.quiet {
            eprintln!(
                "connected {} connections in {:.3}s; publishing",
                self.ready,
                (now - self.t_start) as f64 / 1e9
            );
        }
        if self.cfg.warmup_ns == 0 {
            self.start_measuring(now);
        }
    }

    fn start_measuring(&mut self, now: u64) {
        self.measuring = true;
        self.t_measure = now;
        self.broker_measure = self.sample_broker();
        self.self_cpu_measure = sys::self_cpu_ns();
    }

    /// Role of the `i`-th connection: subscribers first, then publishers.
    fn role_of(&self, i: usize) -> Role {
        let subs = self.cfg.subs as usize;
        match self.cfg.scenario {
            Scenario::Conns => Role::Idle,
            _ if i < subs => Role::Subscriber(i as u32),
            _ => Role::Publisher((i - subs) as u32),
        }
    }

    fn open_next(&mut self, now: u64) {
        let i = self.opened;
        let role = self.role_of(i);
        let rbuf = match role {
            Role::Subscriber(_) => 64 * 1024,
            Role::Publisher(_) => 8 * 1024,
            Role::Idle => 256,
        };
        self.opened += 1;
        let opened = Conn::open(
            self.cfg.addr,
            source_addr(self.cfg.addr, self.cfg.source_ips, i),
            Token(i),
            self.poll.registry(),
            role,
            rbuf,
            now,
        )
        .and_then(|c| c.with_tls(self.cfg.tls.as_ref()));
        match opened {
            Ok(mut c) => {
                if let Some(path) = &self.cfg.ws {
                    c.use_websocket(&self.cfg.addr.to_string(), path);
                }
                self.conns.push(c);
                self.handshaking += 1;
            }
            Err(e) => {
                let msg = format!("cannot connect to {}: {e}", self.cfg.addr);
                if self.cfg.scenario == Scenario::Conns {
                    self.note_error(msg);
                    self.st.conn_failures += 1;
                    self.opened = self.total; // the limit is hit: stop opening
                    self.st.conn_failures += (self.total - i - 1) as u64;
                } else {
                    self.fatal = Some(msg);
                }
                return;
            }
        }
        match role {
            Role::Subscriber(s) => {
                let (pub_base, n) = match self.cfg.scenario {
                    Scenario::Pairs => (s, 1),
                    _ => (0, self.cfg.pubs as usize),
                };
                self.subs.push(Subscriber {
                    conn: i,
                    pub_base,
                    trackers: vec![SeqTracker::default(); n],
                });
            }
            Role::Publisher(p) => {
                let topic = self.topic_for(p as usize);
                let tmpl = PublishTemplate::new(
                    self.cfg.v5,
                    self.cfg.qos,
                    topic.as_bytes(),
                    self.cfg.payload,
                    p,
                );
                let bits = if self.cfg.qos > 0 { 1024 } else { 0 };
                self.conns[i].wbuf.reserve(64 * 1024 + tmpl.len());
                self.pubs.push(Publisher {
                    conn: i,
                    tmpl,
                    sent: 0,
                    base: 0,
                    inflight: 0,
                    cap: 0,
                    next_pid: 1,
                    awaiting: vec![0; bits].into_boxed_slice(),
                    released: vec![0; if self.cfg.qos == 2 { bits } else { 0 }].into_boxed_slice(),
                    blocked_since: None,
                    done: false,
                });
            }
            Role::Idle => {}
        }
    }

    /// Topic a publisher writes to (pairs: its own; otherwise shared).
    fn topic_for(&self, p: usize) -> String {
        match self.cfg.scenario {
            Scenario::Pairs => format!("{}/pair/{p}", self.cfg.topic_prefix),
            _ => format!("{}/fan", self.cfg.topic_prefix),
        }
    }

    /// Filter a subscriber uses.
    fn filter_for(&self, s: usize) -> String {
        if self.cfg.wildcard {
            format!("{}/#", self.cfg.topic_prefix)
        } else {
            self.topic_for(s)
        }
    }

    /// Deliveries the run should produce for what was sent so far.
    pub(crate) fn expected(&self) -> u64 {
        let fan = match self.cfg.scenario {
            Scenario::Pairs => 1,
            _ => u64::from(self.cfg.subs),
        };
        self.st.sent * fan
    }

    pub(crate) fn note_error(&mut self, msg: String) {
        if self.st.first_error.is_none() {
            self.st.first_error = Some(msg);
        }
    }

    /// Close a connection after an error or hang-up.
    pub(crate) fn fail(&mut self, i: usize, why: &str) {
        let c = &mut self.conns[i];
        if c.state == ConnState::Closed {
            return;
        }
        let was = c.state;
        c.state = ConnState::Closed;
        let _ = self.poll.registry().deregister(&mut c.sock);
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        let msg = format!("connection {i} ({:?}): {why}", c.role);
        if was == ConnState::Ready {
            self.st.conns_lost += 1;
            if let Role::Publisher(p) = c.role {
                self.pubs[p as usize].done = true;
            }
            self.note_error(msg);
            return;
        }
        self.handshaking -= 1;
        if self.cfg.scenario == Scenario::Conns {
            self.st.conn_failures += 1;
            self.note_error(msg);
        } else if self.fatal.is_none() {
            self.fatal = Some(msg);
        }
    }

    pub(crate) fn mark_dirty(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(i);
        }
    }

    fn flush_dirty(&mut self, now: u64) {
        let mut list = std::mem::take(&mut self.dirty);
        for &i in &list {
            let c = &mut self.conns[i];
            c.dirty = false;
            if c.state == ConnState::Closed || c.write_blocked {
                continue;
            }
            if let Err(e) = c.flush(now) {
                self.fail(i, &format!("write failed: {e}"));
            }
        }
        list.clear();
        self.dirty = list;
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool, now: u64) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        match c.state {
            ConnState::Closed => return,
            ConnState::Connecting => match c.connect_done() {
                Ok(true) => {
                    let tag = &self.run_tag;
                    let id = match c.role {
                        Role::Subscriber(s) => format!("{tag}-s{s}"),
                        Role::Publisher(p) => format!("{tag}-p{p}"),
                        Role::Idle => format!("{tag}-c{i}"),
                    };
                    let persistent =
                        self.cfg.persistent_subs && matches!(c.role, Role::Subscriber(_));
                    frame::connect(
                        &mut c.wbuf,
                        self.cfg.v5,
                        id.as_bytes(),
                        self.cfg.keep_alive,
                        persistent,
                    );
                    c.state = ConnState::AwaitConnAck;
                    self.mark_dirty(i);
                }
                Ok(false) => return,
                Err(e) => {
                    let msg = format!("cannot connect to {}: {e}", self.cfg.addr);
                    self.fail(i, &msg);
                    return;
                }
            },
            _ if writable && c.write_blocked => {
                c.write_blocked = false;
                if c.pending_write() > 0 {
                    self.mark_dirty(i);
                }
            }
            _ => {}
        }
        if readable {
            self.read_conn(i, now);
        }
    }

    fn read_conn(&mut self, i: usize, now: u64) {
        let v5 = self.cfg.v5;
        let mut drained = false;
        loop {
            if self.conns[i].state == ConnState::Closed {
                return;
            }
            match self.conns[i].next_frame(v5) {
                Ok(Some(f)) => {
                    self.handle_frame(i, f, now);
                    continue;
                }
                Ok(None) if drained => return,
                Ok(None) => {}
                Err(e) => return self.fail(i, &e.to_string()),
            }
            match self.conns[i].fill() {
                Ok(Fill::Data) => {}
                Ok(Fill::Drained) => drained = true,
                Ok(Fill::WouldBlock) => return,
                Ok(Fill::Eof) => return self.fail(i, "closed by the broker"),
                Err(ConnError::Io(e)) => return self.fail(i, &format!("read failed: {e}")),
                Err(e) => return self.fail(i, &e.to_string()),
            }
        }
    }

    /// CONNACK and SUBACK during setup; everything else goes to traffic.
    fn handle_frame(&mut self, i: usize, f: Frame, now: u64) {
        match f {
            Frame::ConnAck { code, props, .. } => {
                if self.conns[i].state != ConnState::AwaitConnAck {
                    return self.fail(i, "unexpected CONNACK");
                }
                if code != 0 {
                    return self.fail(
                        i,
                        &format!("CONNACK refused the connection (code 0x{code:02x})"),
                    );
                }
                if let Some(q) = props.max_qos.filter(|&q| q < self.cfg.qos) {
                    return self.fail(i, &format!("broker supports QoS up to {q} only"));
                }
                if let Some(max) = props.max_packet_size {
                    let len = self.pubs.first().map_or(0, |p| p.tmpl.len());
                    if len as u64 > u64::from(max) {
                        return self.fail(
                            i,
                            &format!("broker maximum packet size {max} < PUBLISH of {len} bytes"),
                        );
                    }
                }
                if let Some(rm) = props.receive_max {
                    self.receive_max = Some(self.receive_max.map_or(rm, |m| m.min(rm)));
                }
                self.conn_lat.record(now - self.conns[i].started_ns);
                if let Role::Subscriber(s) = self.conns[i].role {
                    let filter = self.filter_for(s as usize);
                    let c = &mut self.conns[i];
                    frame::subscribe(&mut c.wbuf, self.cfg.v5, 1, filter.as_bytes(), self.cfg.qos);
                    c.state = ConnState::AwaitSubAck;
                    self.mark_dirty(i);
                } else {
                    self.set_ready(i);
                }
            }
            Frame::SubAck { code, .. } => {
                if self.conns[i].state != ConnState::AwaitSubAck {
                    return self.fail(i, "unexpected SUBACK");
                }
                if code >= 0x80 {
                    return self.fail(
                        i,
                        &format!("SUBACK refused the subscription (code 0x{code:02x})"),
                    );
                }
                self.st.granted_qos_min =
                    Some(self.st.granted_qos_min.map_or(code, |g| g.min(code)));
                self.set_ready(i);
            }
            Frame::Disconnect { code } => {
                self.fail(i, &format!("DISCONNECT from broker (reason 0x{code:02x})"));
            }
            other => self.handle_traffic(i, other, now),
        }
    }

    fn set_ready(&mut self, i: usize) {
        self.conns[i].state = ConnState::Ready;
        self.handshaking -= 1;
        self.ready += 1;
    }

    /// Draining stops `drain` seconds after publishing ended or after the
    /// last delivery or acknowledgement, whichever is later.
    fn drain_deadline(&self) -> u64 {
        self.t_pub_end.max(self.st.last_progress_ns) + self.cfg.drain_ns
    }

    /// Earliest time something needs doing without socket activity.
    fn next_wake(&self, now: u64) -> u64 {
        let mut wake = self.next_tick.min(self.t_deadline);
        match self.phase {
            Phase::Publishing => {
                if !self.measuring {
                    wake = wake.min(self.t_measure);
                }
                if let Some(d) = self.cfg.duration_ns {
                    wake = wake.min(self.t_measure + d);
                }
                wake = wake.min(self.next_rate_due(now));
                if self.pubs.iter().any(|p| p.blocked_since.is_some()) {
                    wake = wake.min(now + 10_000_000);
                }
            }
            Phase::Draining => wake = wake.min(self.drain_deadline()),
            Phase::Holding => wake = wake.min(self.t_measure + self.cfg.duration_ns.unwrap_or(0)),
            Phase::Connecting | Phase::Done => {}
        }
        wake.max(now)
    }

    /// Once a second: keep-alive pings and a progress line.
    fn tick(&mut self, now: u64) {
        self.next_tick = now + SEC - (now - self.next_tick) % SEC;
        let ka = u64::from(self.cfg.keep_alive) * SEC / 2;
        if ka > 0 {
            for i in 0..self.conns.len() {
                let c = &mut self.conns[i];
                if c.state == ConnState::Ready && now - c.last_tx_ns >= ka {
                    frame::pingreq(&mut c.wbuf);
                    c.last_tx_ns = now;
                    self.mark_dirty(i);
                }
            }
        }
        let (sent, recv) = (self.st.sent, self.st.received);
        if !self.cfg.quiet {
            let t = (now - self.t_start) as f64 / 1e9;
            match self.phase {
                Phase::Connecting => eprintln!(
                    "[{t:6.1}s] connecting: {} ready, {} failed of {}",
                    self.ready, self.st.conn_failures, self.total
                ),
                Phase::Holding => {
                    let rss = self.sample_broker().map_or(String::new(), |b| format!(", broker rss {} KiB", b.rss_kb));
                    eprintln!("[{t:6.1}s] holding {} connections{rss}", self.ready);
                }
                _ => eprintln!(
                    "[{t:6.1}s] {} sent {}/s, received {}/s, outstanding {}, latency p50 {:.0}µs p99 {:.0}µs max {:.0}µs",
                    if self.measuring { "measure" } else { "warmup " },
                    sent - self.tick_sent,
                    recv - self.tick_received,
                    self.expected().saturating_sub(recv),
                    self.lat_tick.quantile(0.5) as f64 / 1e3,
                    self.lat_tick.quantile(0.99) as f64 / 1e3,
                    self.lat_tick.max() as f64 / 1e3,
                ),
            }
        }
        self.tick_sent = sent;
        self.tick_received = recv;
        self.lat_tick.reset();
    }

    /// Best-effort DISCONNECT on every open connection.
    fn close_all(&mut self, now: u64) {
        for c in &mut self.conns {
            if c.state == ConnState::Ready {
                frame::disconnect(&mut c.wbuf);
                let _ = c.flush(now);
            }
            c.state = ConnState::Closed;
        }
    }

    fn summarise(
        &self,
        broker_end: Option<BrokerSample>,
        self_cpu: u64,
        self_wall: u64,
    ) -> Summary {
        let cfg = &self.cfg;
        let st = &self.st;
        let secs = |ns: u64| ns as f64 / 1e9;
        let per_s = |n: u64, ns: u64| if ns == 0 { 0.0 } else { n as f64 / secs(ns) };
        let expected = self.expected();
        let deliver_ns = st
            .last_delivery_ns
            .max(self.t_pub_end)
            .saturating_sub(self.t_measure);
        let publish_ns = self.t_pub_end.saturating_sub(self.t_measure);
        let connected = self.ready as u64;
        let connect_ns = self.t_connected.saturating_sub(self.t_start);
        let broker = match (self.broker_start, broker_end) {
            (Some(start), Some(end)) => {
                let connected_s = self.broker_connected.unwrap_or(end);
                let from = self.broker_measure.unwrap_or(connected_s);
                let cpu_ns = end.cpu_ns.saturating_sub(from.cpu_ns);
                let rss_delta = connected_s.rss_kb as i64 - start.rss_kb as i64;
                Some(BrokerFigures {
                    cpu_s: secs(cpu_ns),
                    deliveries_per_cpu_s: if cpu_ns == 0 {
                        None
                    } else {
                        Some(per_s(st.measured_received, cpu_ns))
                    },
                    connect_cpu_s: secs(connected_s.cpu_ns.saturating_sub(start.cpu_ns)),
                    rss_start_kb: start.rss_kb,
                    rss_connected_kb: connected_s.rss_kb,
                    rss_end_kb: end.rss_kb,
                    peak_rss_kb: end.hwm_kb,
                    rss_per_conn_bytes: if connected == 0 {
                        0.0
                    } else {
                        rss_delta as f64 * 1024.0 / connected as f64
                    },
                })
            }
            _ => None,
        };
        let lost = expected.saturating_sub(st.received);
        let status = if self.timed_out {
            "timeout"
        } else if st.conns_lost > 0 || st.conn_failures > 0 || st.ack_errors > 0 {
            "error"
        } else if cfg.qos > 0 && (lost > 0 || st.duplicates > 0) {
            "lost"
        } else {
            "ok"
        };
        Summary {
            scenario: cfg.scenario,
            mqtt: cfg.mqtt_name(),
            qos: cfg.qos,
            pubs: cfg.pubs,
            subs: cfg.subs,
            conns: connected,
            payload: cfg.payload,
            window: cfg.window,
            rate: cfg.rate,
            status,
            error: st.first_error.clone(),
            publish_s: secs(publish_ns),
            sent: st.sent,
            received: st.received,
            expected,
            lost,
            duplicates: st.duplicates,
            reordered: st.reordered,
            foreign: st.foreign,
            window_stalls: st.window_stalls,
            unexpected_acks: st.unexpected_acks,
            ack_errors: st.ack_errors,
            conns_lost: st.conns_lost,
            conn_failures: st.conn_failures,
            granted_qos: st.granted_qos_min,
            publish_rate: per_s(st.measured_sent, publish_ns),
            delivery_rate: per_s(st.measured_received, deliver_ns),
            lat: self.lat.clone(),
            connect_s: secs(connect_ns),
            connect_rate: per_s(connected, connect_ns),
            conn_lat: self.conn_lat.clone(),
            broker,
            bench_cpu_s: secs(self_cpu),
            bench_cpu_pct: if self_wall == 0 {
                0.0
            } else {
                100.0 * self_cpu as f64 / self_wall as f64
            },
        }
    }
}
