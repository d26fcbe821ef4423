//! Retained replay: the retained messages a new subscription is owed
//! ([MQTT-3.3.1-9], [MQTT-3.8.4-4]; v5 Retain Handling 0 and 1), handed to
//! the connection only as fast as it takes them.
//!
//! A SUBSCRIBE that may match retained messages adds a [`ReplayRun`] to its
//! connection's [`Replay`]: a [`RetainedCursor`] into the retained store
//! and the subscription's granted QoS and identifier. The worker pumps the
//! front run (`Worker::pump_replay`) whenever the connection has room
//! (`ConnShared::replay_room`, `Watermarks::replay_room`): after the SUBACK, after the socket took
//! bytes, after an acknowledgement freed the inflight window. Nothing is
//! dropped for being a burst: a message is offered only when the writer is
//! below half its high-water mark and, for QoS 1/2, the window or a short
//! queue has room. Memory per run: the cursor, at most [`FETCH`] fetched
//! messages (shared `Arc`s, never payload copies), and the topics below.
//!
//! Ordering with live traffic: a live message delivered to the connection
//! on a topic the replay has not reached yet supersedes that topic's
//! retained message, which the replay then skips — the client never gets
//! an older retained value after a newer live one. At most
//! [`MAX_SUPERSEDED`] topics are remembered per run; past that the replay
//! sends them anyway (counted).

use bytestring::ByteString;
use smallvec::SmallVec;
use std::collections::{HashSet, VecDeque};
use tern_codec::QoS;
use tern_routing::{RetainedCursor, RetainedMessage};

/// Messages fetched from the store at a time (one lock of the store).
pub(crate) const FETCH: usize = 32;
/// Topics looked at per fetch, matching or not: bounds how long one fetch
/// holds the store's lock when a filter matches few of many topics.
pub(crate) const SCAN: usize = 4096;
/// Superseded topics remembered per run.
pub(crate) const MAX_SUPERSEDED: usize = 65_536;

/// The retained replays of one connection, oldest SUBSCRIBE first.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    runs: VecDeque<ReplayRun>,
}

/// The replay of one subscription.
#[derive(Debug)]
pub(crate) struct ReplayRun {
    pub(crate) cursor: RetainedCursor,
    pub(crate) granted: QoS,
    pub(crate) ids: SmallVec<[u32; 2]>,
    /// Fetched and not offered yet, in topic order.
    pending: VecDeque<RetainedMessage>,
    /// Topics ahead of the cursor that a live message reached first.
    superseded: HashSet<ByteString, ahash::RandomState>,
}

/// What the pump does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Offer this message with the run's QoS and identifiers.
    Offer(RetainedMessage, QoS, SmallVec<[u32; 2]>),
    /// The front run needs its next batch from the store.
    Fetch,
    /// Every run is finished.
    Done,
}

impl ReplayRun {
    pub(crate) fn new(filter: &str, granted: QoS, ids: SmallVec<[u32; 2]>) -> Self {
        Self {
            cursor: RetainedCursor::new(filter),
            granted,
            ids,
            pending: VecDeque::new(),
            superseded: HashSet::default(),
        }
    }

    /// Takes a batch the store returned for this run's cursor, leaving out
    /// superseded topics. Returns how many it left out.
    pub(crate) fn accept(&mut self, batch: &mut Vec<RetainedMessage>) -> usize {
        let mut skipped = 0;
        for msg in batch.drain(..) {
            if !self.superseded.is_empty() && self.superseded.remove(&msg.publish.topic) {
                skipped += 1;
                continue;
            }
            self.pending.push_back(msg);
        }
        skipped
    }

    /// A live message on `topic` reached the client. Returns false when
    /// the topic was ahead but could not be remembered.
    fn note_live(&mut self, topic: &ByteString) -> bool {
        let before = self.pending.len();
        self.pending.retain(|m| m.publish.topic != *topic);
        if self.pending.len() != before || !self.cursor.is_ahead(topic) {
            return true;
        }
        if self.superseded.len() >= MAX_SUPERSEDED {
            return false;
        }
        self.superseded.insert(topic.clone());
        true
    }
}

impl Replay {
    /// Queues the replay of one subscription behind the others.
    pub(crate) fn push(&mut self, run: ReplayRun) {
        self.runs.push_back(run);
    }

    /// The next thing the pump should do; drops finished runs.
    pub(crate) fn step(&mut self) -> Step {
        while let Some(run) = self.runs.front_mut() {
            if let Some(msg) = run.pending.pop_front() {
                return Step::Offer(msg, run.granted, run.ids.clone());
            }
            if !run.cursor.is_done() {
                return Step::Fetch;
            }
            self.runs.pop_front();
        }
        Step::Done
    }

    /// The run to fetch for (the front one).
    pub(crate) fn front_mut(&mut self) -> Option<&mut ReplayRun> {
        self.runs.front_mut()
    }

    /// QoS granted to the run being replayed.
    pub(crate) fn front_qos(&self) -> QoS {
        self.runs.front().map_or(QoS::AtMostOnce, |r| r.granted)
    }

    /// A live message on `topic` was just given to the client (see the
    /// module docs). Returns how many runs could not remember it.
    pub(crate) fn note_live(&mut self, topic: &ByteString) -> usize {
        let mut lost = 0;
        for run in &mut self.runs {
            if !run.note_live(topic) {
                lost += 1;
            }
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Instant;
    use tern_codec::Publish;
    use tern_routing::RetainedStore;

    fn retained(topic: &str) -> RetainedMessage {
        RetainedMessage {
            publish: Arc::new(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: topic.into(),
                packet_id: None,
                properties: Default::default(),
                payload: Bytes::from_static(b"old"),
            }),
            expires_at: None,
        }
    }

    fn store(topics: &[&str]) -> RetainedStore {
        let mut store = RetainedStore::new(Default::default());
        for t in topics {
            store.set(retained(t)).unwrap();
        }
        store
    }

    /// One fetch of at most `max` messages for the front run, as the pump does it.
    fn fetch(replay: &mut Replay, store: &RetainedStore, max: usize) -> usize {
        let run = replay.front_mut().unwrap();
        let mut batch = Vec::new();
        store.next_matches(&mut run.cursor, Instant::now(), max, SCAN, &mut batch);
        run.accept(&mut batch)
    }

    fn offered(replay: &mut Replay) -> Option<String> {
        match replay.step() {
            Step::Offer(m, _, _) => Some(m.publish.topic.to_string()),
            _ => None,
        }
    }

    #[test]
    fn live_messages_supersede_topics_ahead_of_the_replay() {
        let store = store(&["t/1", "t/2", "t/3", "t/4", "u/1"]);
        let mut replay = Replay::default();
        replay.push(ReplayRun::new("t/#", QoS::AtLeastOnce, SmallVec::new()));
        assert!(matches!(replay.step(), Step::Fetch));
        assert_eq!(fetch(&mut replay, &store, 2), 0);
        assert_eq!(offered(&mut replay).as_deref(), Some("t/1"));
        // Live traffic: t/1 (replayed already), t/2 (fetched, not offered),
        // t/4 (ahead of the cursor), u/1 (not this filter).
        for t in ["t/1", "t/2", "t/4", "u/1"] {
            assert_eq!(replay.note_live(&t.into()), 0);
        }
        assert_eq!(replay.front_mut().unwrap().superseded.len(), 1, "only t/4");
        assert!(matches!(replay.step(), Step::Fetch), "t/2 was superseded");
        assert_eq!(fetch(&mut replay, &store, 2), 1, "t/4 is left out");
        assert!(
            replay.front_mut().unwrap().superseded.is_empty(),
            "a topic passed is forgotten"
        );
        assert_eq!(offered(&mut replay).as_deref(), Some("t/3"));
        assert!(matches!(replay.step(), Step::Fetch));
        assert_eq!(fetch(&mut replay, &store, 2), 0);
        assert!(matches!(replay.step(), Step::Done));
    }

    #[test]
    fn runs_replay_in_subscribe_order_with_their_own_qos_and_ids() {
        let store = store(&["a", "b"]);
        let mut replay = Replay::default();
        replay.push(ReplayRun::new("a", QoS::AtMostOnce, SmallVec::new()));
        replay.push(ReplayRun::new(
            "+",
            QoS::ExactlyOnce,
            SmallVec::from_slice(&[7]),
        ));
        let mut seen = Vec::new();
        loop {
            match replay.step() {
                Step::Offer(m, qos, ids) => {
                    seen.push((m.publish.topic.to_string(), qos, ids.to_vec()))
                }
                Step::Fetch => {
                    fetch(&mut replay, &store, 1);
                }
                Step::Done => break,
            }
        }
        assert_eq!(
            seen,
            [
                ("a".to_string(), QoS::AtMostOnce, vec![]),
                ("a".to_string(), QoS::ExactlyOnce, vec![7]),
                ("b".to_string(), QoS::ExactlyOnce, vec![7]),
            ]
        );
    }

    #[test]
    fn superseded_topics_are_bounded() {
        let mut run = ReplayRun::new("#", QoS::AtMostOnce, SmallVec::new());
        for i in 0..MAX_SUPERSEDED {
            assert!(run.note_live(&ByteString::from(format!("{i}"))));
        }
        assert!(!run.note_live(&ByteString::from("one more")));
        assert_eq!(run.superseded.len(), MAX_SUPERSEDED);
    }
}
