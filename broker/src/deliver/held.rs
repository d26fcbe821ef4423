//! Acknowledgements held back until what they acknowledge is durable
//! (`durability = "sync"`): a connection's PUBACK/PUBREC go out in the
//! order the PUBLISH packets came ([MQTT-4.6.0-2]), so one that need not
//! wait still waits behind one that does.

use std::collections::VecDeque;
use tern_codec::{PacketId, QoS, ReasonCode};
use tern_session::{Connection, PublishOutcome};

/// One acknowledgement not sent yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldAck {
    pub(crate) qos: QoS,
    pub(crate) packet_id: Option<PacketId>,
    pub(crate) outcome: PublishOutcome,
    /// What it waits for; `None` once nothing.
    pub(crate) token: Option<u64>,
}

/// A connection's held acknowledgements, oldest first.
#[derive(Debug, Default)]
pub(crate) struct HeldAcks {
    queue: VecDeque<HeldAck>,
}

impl HeldAcks {
    pub(crate) fn push(&mut self, ack: HeldAck) {
        self.queue.push_back(ack);
    }

    /// The acknowledgement of `token` says `code` instead (its token stays
    /// for [`release`](Self::release)).
    pub(crate) fn refuse(&mut self, token: u64, code: ReasonCode) {
        if let Some(a) = self.queue.iter_mut().find(|a| a.token == Some(token)) {
            a.outcome = PublishOutcome::Refused(code);
        }
    }

    /// `token` is durable: its acknowledgement, and those behind it that
    /// wait for nothing more, are completed on `conn`. True when the queue
    /// is empty afterwards.
    pub(crate) fn release(&mut self, token: u64, conn: &mut Connection) -> bool {
        if let Some(a) = self.queue.iter_mut().find(|a| a.token == Some(token)) {
            a.token = None;
        }
        while let Some(a) = self.queue.front().filter(|a| a.token.is_none()).copied() {
            self.queue.pop_front();
            conn.complete_publish(a.qos, a.packet_id, a.outcome);
        }
        self.queue.is_empty()
    }
}
