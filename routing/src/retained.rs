//! The retained-message store.

use bytestring::ByteString;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tern_codec::topic::is_sys_topic;
use tern_codec::{Publish, ReasonCode};

pub use cursor::RetainedCursor;
use cursor::Skip;

mod cursor;
#[cfg(test)]
mod tests;

/// A retained message: the PUBLISH as received and when it stops being sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedMessage {
    /// The message; `publish.topic` (alias already resolved) is the key.
    pub publish: Arc<Publish>,
    /// From the v5 Message Expiry Interval, computed by the broker at
    /// reception; `None` never expires. When delivering, the broker sends the
    /// remaining interval.
    pub expires_at: Option<Instant>,
}

impl RetainedMessage {
    /// When the broker received the message: `expires_at` minus its v5
    /// Message Expiry Interval. A delivery counts the remaining interval
    /// from here ([MQTT5-3.3.2-6]); `None` when the message never expires.
    pub fn received_at(&self) -> Option<Instant> {
        let secs = self.publish.properties.message_expiry_interval?;
        self.expires_at?
            .checked_sub(Duration::from_secs(u64::from(secs)))
    }
}

/// Capacity of the store, for the clients' messages: the broker's own
/// `$SYS` topics are stored beside them and not counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetainedLimits {
    /// Most retained messages held.
    pub max_messages: usize,
    /// Most bytes held, counting topic length plus payload length per message.
    pub max_bytes: usize,
}

impl RetainedLimits {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

impl Default for RetainedLimits {
    fn default() -> Self {
        Self::UNLIMITED
    }
}

/// How much of the store a group of topics uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetainedUsage {
    /// Messages.
    pub messages: usize,
    /// Topic plus payload bytes of those messages.
    pub bytes: usize,
}

/// The store's usage, kept apart for the clients' topics (what the limits
/// apply to) and the broker's own `$SYS` topics (a fixed set the broker
/// publishes, never refused).
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    clients: RetainedUsage,
    sys: RetainedUsage,
}

impl Usage {
    fn of(&mut self, topic: &str) -> &mut RetainedUsage {
        if is_sys_topic(topic) {
            &mut self.sys
        } else {
            &mut self.clients
        }
    }

    fn add(&mut self, publish: &Publish) {
        let u = self.of(&publish.topic);
        u.messages += 1;
        u.bytes += size_of(publish);
    }

    fn sub(&mut self, publish: &Publish) {
        let u = self.of(&publish.topic);
        u.messages -= 1;
        u.bytes -= size_of(publish);
    }
}

/// What [`RetainedStore::set`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetainOutcome {
    /// A message was stored for a topic that had none.
    Stored,
    /// The topic's previous message was replaced ([MQTT-3.3.1-5]).
    Replaced,
    /// An empty payload removed the topic's message and is not stored itself
    /// ([MQTT-3.3.1-6], [MQTT-3.3.1-7] in v5; [MQTT-3.3.1-10], [MQTT-3.3.1-11]
    /// in 3.1.1).
    Deleted,
    /// An empty payload for a topic with no retained message: nothing changed.
    NothingToDelete,
}

/// Why a message could not be retained. The PUBLISH itself is still
/// delivered to current subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetainError {
    /// The message count or byte limit would be exceeded.
    #[error("retained message store is full")]
    Full,
}

impl RetainError {
    /// The v5 reason code to report to the publisher (Quota exceeded).
    pub fn reason_code(self) -> ReasonCode {
        match self {
            Self::Full => ReasonCode::QUOTA_EXCEEDED,
        }
    }
}

/// Retained messages by topic name, queried by topic filter.
///
/// A plain value: the broker wraps it in a mutex taken for PUBLISH with
/// RETAIN=1 (`set`), for each batch of a new subscription's replay
/// (`next_matches`) and on a timer (`purge_expired`). The clock is never
/// read: `now` is passed in.
///
/// Messages are ordered by topic name (bytewise) so that a replay is a
/// resumable range scan ([`RetainedCursor`]): from the filter's literal
/// prefix (its levels before the first wildcard) onwards, each topic tested
/// against the filter. A filter starting with a wildcard scans every topic,
/// in bounded batches.
pub struct RetainedStore {
    /// The key is the message's own topic (`publish.topic`, shared).
    topics: BTreeMap<ByteString, RetainedMessage>,
    /// `(expires_at, topic)` of every message that expires, soonest first.
    expiries: BTreeSet<(Instant, ByteString)>,
    usage: Usage,
    limits: RetainedLimits,
}

impl fmt::Debug for RetainedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedStore")
            .field("len", &self.len())
            .field("usage", &self.usage)
            .field("limits", &self.limits)
            .finish()
    }
}

fn size_of(publish: &Publish) -> usize {
    publish.topic.len() + publish.payload.len()
}

impl RetainedStore {
    /// An empty store with the given limits.
    pub fn new(limits: RetainedLimits) -> Self {
        Self {
            topics: BTreeMap::new(),
            expiries: BTreeSet::new(),
            usage: Usage::default(),
            limits,
        }
    }

    /// Number of retained messages, `$SYS` included (expired ones count
    /// until purged).
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Messages and bytes of the clients' topics: what the limits apply to,
    /// the broker's own `$SYS` topics left out (exact at every moment;
    /// expired messages count until purged).
    pub fn usage(&self) -> RetainedUsage {
        self.usage.clients
    }

    /// True when no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Topic plus payload bytes of every retained message, `$SYS` included.
    pub fn bytes(&self) -> usize {
        self.usage.clients.bytes + self.usage.sys.bytes
    }

    /// The limits.
    pub fn limits(&self) -> RetainedLimits {
        self.limits
    }

    /// The unexpired message retained for exactly `topic`.
    pub fn get(&self, topic: &str, now: Instant) -> Option<&Arc<Publish>> {
        let msg = self.topics.get(topic)?;
        (!is_expired(msg, now)).then_some(&msg.publish)
    }

    /// Handles a PUBLISH with RETAIN=1: an empty payload deletes the topic's
    /// message, anything else stores or replaces it ([MQTT-3.3.1-5]).
    ///
    /// A new topic is refused with [`RetainError::Full`] when it would pass
    /// either limit; replacing an existing topic only needs the bytes to fit.
    /// On refusal the previous message, if any, stays. The broker's own
    /// `$SYS` topics are never refused and do not count against the limits.
    pub fn set(&mut self, msg: RetainedMessage) -> Result<RetainOutcome, RetainError> {
        let topic = msg.publish.topic.clone();
        if msg.publish.payload.is_empty() {
            return Ok(match self.remove(&topic) {
                Some(_) => RetainOutcome::Deleted,
                None => RetainOutcome::NothingToDelete,
            });
        }
        let size = size_of(&msg.publish);
        let limited = !is_sys_topic(&topic);
        let used = self.usage.clients;
        if let Some(old) = self.topics.get_mut(topic.as_ref() as &str) {
            if limited && used.bytes - size_of(&old.publish) + size > self.limits.max_bytes {
                return Err(RetainError::Full);
            }
            if let Some(at) = old.expires_at {
                self.expiries.remove(&(at, topic.clone()));
            }
            if let Some(at) = msg.expires_at {
                self.expiries.insert((at, topic));
            }
            self.usage.sub(&old.publish);
            self.usage.add(&msg.publish);
            *old = msg;
            return Ok(RetainOutcome::Replaced);
        }
        let fits_bytes = used
            .bytes
            .checked_add(size)
            .is_some_and(|b| b <= self.limits.max_bytes);
        if limited && (used.messages >= self.limits.max_messages || !fits_bytes) {
            return Err(RetainError::Full);
        }
        if let Some(at) = msg.expires_at {
            self.expiries.insert((at, topic.clone()));
        }
        self.usage.add(&msg.publish);
        self.topics.insert(topic, msg);
        Ok(RetainOutcome::Stored)
    }

    /// Removes the message retained for `topic`.
    pub fn remove(&mut self, topic: &str) -> Option<RetainedMessage> {
        let old = self.topics.remove(topic)?;
        self.usage.sub(&old.publish);
        if let Some(at) = old.expires_at {
            self.expiries.remove(&(at, old.publish.topic.clone()));
        }
        Some(old)
    }

    /// The next batch of a replay: appends to `out` the unexpired messages
    /// matching the cursor's filter after its position, in topic order (a
    /// filter with a leading wildcard does not match `$` topics,
    /// [MQTT-4.7.2-1]; for a shared subscription pass the inner filter),
    /// stopping after `max_out` messages or `max_scan` topics looked at
    /// (matching or not), and moves the cursor past what it looked at.
    /// Returns how many messages it appended; the cursor
    /// [is done](RetainedCursor::is_done) once no topic is left. A topic
    /// stored behind the cursor between two calls is not seen; one stored
    /// ahead of it is.
    pub fn next_matches(
        &self,
        cursor: &mut RetainedCursor,
        now: Instant,
        max_out: usize,
        max_scan: usize,
        out: &mut Vec<RetainedMessage>,
    ) -> usize {
        if cursor.is_done() {
            return 0;
        }
        if cursor.is_exact() {
            let found = self.topics.get(cursor.prefix());
            let n = match found {
                Some(msg) if !is_expired(msg, now) => {
                    out.push(msg.clone());
                    1
                }
                _ => 0,
            };
            cursor.finish();
            return n;
        }
        let (mut added, mut scanned) = (0, 0);
        // After a topic that fails at a literal level, the scan seeks past
        // every topic that fails the same way (`RetainedCursor::skip_after`),
        // so `a/+/c/#` costs its matches plus a few seeks per `a/x`, not a
        // look at every `a/…` topic.
        let mut seek: Option<String> = None;
        loop {
            let start = match &seek {
                Some(s) => Bound::Included(s.as_str()),
                None => cursor.start(),
            };
            let mut range = self.topics.range::<str, _>((start, Bound::Unbounded));
            seek = None;
            loop {
                let Some((topic, msg)) = range.next() else {
                    cursor.finish();
                    return added;
                };
                if !topic.starts_with(cursor.prefix()) {
                    cursor.finish();
                    return added;
                }
                cursor.advance(topic);
                scanned += 1;
                if cursor.matches(topic) {
                    if !is_expired(msg, now) {
                        out.push(msg.clone());
                        added += 1;
                    }
                } else {
                    match cursor.skip_after(topic) {
                        Some(Skip::Done) => {
                            cursor.finish();
                            return added;
                        }
                        Some(Skip::To(next)) => seek = Some(next),
                        None => {}
                    }
                }
                if added >= max_out || scanned >= max_scan {
                    return added;
                }
                if seek.is_some() {
                    break;
                }
            }
        }
    }

    /// Removes every message expired at `now`; returns how many.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        self.purge_expired_at_most(now, usize::MAX)
    }

    /// Removes at most `max` of the messages expired at `now`, soonest
    /// first (bounded work per call); returns how many.
    pub fn purge_expired_at_most(&mut self, now: Instant, max: usize) -> usize {
        let mut purged = 0;
        while purged < max {
            let Some((at, _)) = self.expiries.first() else {
                break;
            };
            if *at > now {
                break;
            }
            let Some((_, topic)) = self.expiries.pop_first() else {
                break;
            };
            if let Some(old) = self.topics.remove(&topic) {
                self.usage.sub(&old.publish);
                purged += 1;
            }
        }
        purged
    }
}

fn is_expired(msg: &RetainedMessage, now: Instant) -> bool {
    msg.expires_at.is_some_and(|at| at <= now)
}
