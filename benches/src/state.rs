//! Per-connection send/receive state and run counters, shared by the event
//! loop ([`crate::engine`]) and the hot path ([`crate::traffic`]).

use crate::frame::PublishTemplate;
use crate::seq::SeqTracker;

/// Send side of one publishing connection.
#[derive(Debug)]
pub(crate) struct Publisher {
    pub(crate) conn: usize,
    pub(crate) tmpl: PublishTemplate,
    /// Messages sent = next sequence number.
    pub(crate) sent: u64,
    /// QoS 0 window: every sequence below this was delivered (or lost) at every receiver.
    pub(crate) base: u64,
    /// QoS>0: packet ids awaiting PUBACK / PUBREC / PUBCOMP.
    pub(crate) inflight: u32,
    /// QoS>0: max inflight (window, receive maximum, 65535).
    pub(crate) cap: u32,
    pub(crate) next_pid: u16,
    /// Bit per packet id: in flight.
    pub(crate) awaiting: Box<[u64]>,
    /// Bit per packet id: PUBREC received, PUBREL sent (QoS 2).
    pub(crate) released: Box<[u64]>,
    pub(crate) blocked_since: Option<u64>,
    pub(crate) done: bool,
}

/// Receive side of one subscribing connection.
#[derive(Debug)]
pub(crate) struct Subscriber {
    pub(crate) conn: usize,
    /// Publisher index of `trackers[0]`.
    pub(crate) pub_base: u32,
    pub(crate) trackers: Vec<SeqTracker>,
}

/// Counters of the whole run.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) duplicates: u64,
    pub(crate) reordered: u64,
    pub(crate) foreign: u64,
    pub(crate) window_stalls: u64,
    pub(crate) unexpected_acks: u64,
    pub(crate) ack_errors: u64,
    pub(crate) conn_failures: u64,
    pub(crate) conns_lost: u64,
    /// Sent / received at or after the start of measurement.
    pub(crate) measured_sent: u64,
    pub(crate) measured_received: u64,
    pub(crate) last_delivery_ns: u64,
    /// Last delivery or acknowledgement (drain ends after `drain` seconds without one).
    pub(crate) last_progress_ns: u64,
    pub(crate) granted_qos_min: Option<u8>,
    pub(crate) first_error: Option<String>,
}
