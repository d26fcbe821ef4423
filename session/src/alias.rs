//! Topic Aliases the broker assigns on its own PUBLISH packets (v5, 3.3.2.3.4).

use crate::session::FixedState;
use bytestring::ByteString;
use std::collections::HashMap;
use std::num::NonZeroU16;

/// How one outgoing PUBLISH uses a Topic Alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AliasUse {
    /// No alias: the full topic name, no Topic Alias property.
    None,
    /// The client knows this alias: send it with an empty topic name.
    Known(NonZeroU16),
    /// Set (or replace) this alias: send it with the full topic name.
    New(NonZeroU16),
}

impl AliasUse {
    /// The Topic Alias property to send, if any.
    pub fn alias(self) -> Option<NonZeroU16> {
        match self {
            Self::None => None,
            Self::Known(a) | Self::New(a) => Some(a),
        }
    }

    /// Whether the topic name is left out (the client already maps the alias).
    pub fn omits_topic(self) -> bool {
        matches!(self, Self::Known(_))
    }
}

/// Topic → alias mappings of one network connection, at most `max` of them
/// (the smaller of the client's Topic Alias Maximum and the broker's limit,
/// [MQTT5-3.3.2-11]). When all aliases are in use, a new topic takes over
/// the alias after the last one reassigned (round robin), so a connection
/// whose topics change keeps getting aliases for its recent topics.
#[derive(Debug)]
pub struct OutboundAliases {
    by_topic: HashMap<ByteString, u16, FixedState>,
    /// The topic each alias stands for, index = alias − 1.
    topics: Vec<ByteString>,
    max: u16,
    /// The alias the next new topic replaces once all are in use.
    next_victim: u16,
}

impl OutboundAliases {
    /// Mappings for up to `max` aliases (≥ 1).
    pub fn new(max: u16) -> Self {
        Self {
            by_topic: HashMap::default(),
            topics: Vec::new(),
            max: max.max(1),
            next_victim: 1,
        }
    }

    /// What a PUBLISH to `topic` would use; nothing changes until
    /// [`commit`](Self::commit) (a packet that is not sent must not create a
    /// mapping the client never learns).
    pub fn plan(&self, topic: &str) -> AliasUse {
        if let Some(&a) = self.by_topic.get(topic) {
            return NonZeroU16::new(a).map_or(AliasUse::None, AliasUse::Known);
        }
        let next = if self.topics.len() < usize::from(self.max) {
            self.topics.len() as u16 + 1
        } else {
            self.next_victim
        };
        NonZeroU16::new(next).map_or(AliasUse::None, AliasUse::New)
    }

    /// Records the mapping a sent PUBLISH established.
    pub fn commit(&mut self, topic: &ByteString, used: AliasUse) {
        let AliasUse::New(alias) = used else {
            return;
        };
        let a = alias.get();
        let idx = usize::from(a - 1);
        // One compact copy (the routed topic may be a slice of a large read
        // buffer), shared by the table and the map.
        let copy = ByteString::from(&**topic);
        if idx < self.topics.len() {
            let old = std::mem::replace(&mut self.topics[idx], copy.clone());
            self.by_topic.remove(&old);
            self.next_victim = if a >= self.max { 1 } else { a + 1 };
        } else {
            self.topics.push(copy.clone());
        }
        self.by_topic.insert(copy, a);
    }

    /// Number of aliases in use.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// No alias in use yet.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(n: u16) -> NonZeroU16 {
        NonZeroU16::new(n).unwrap()
    }

    // [MQTT5-3.3.2-11] never above the maximum; [MQTT5-3.3.2-8] never 0.
    #[test]
    fn assigns_up_to_the_maximum_then_reuses_round_robin() {
        let mut a = OutboundAliases::new(2);
        let t = |s: &'static str| ByteString::from_static(s);
        for (topic, want) in [("a", 1), ("b", 2)] {
            let u = a.plan(topic);
            assert_eq!(u, AliasUse::New(nz(want)));
            a.commit(&t(topic), u);
        }
        assert_eq!(a.plan("a"), AliasUse::Known(nz(1)));
        assert!(a.plan("a").omits_topic());
        let u = a.plan("c");
        assert_eq!(u, AliasUse::New(nz(1)), "the oldest assignment is reused");
        a.commit(&t("c"), u);
        assert_eq!(a.plan("c"), AliasUse::Known(nz(1)));
        assert_eq!(a.plan("a"), AliasUse::New(nz(2)), "a lost its alias");
        let u = a.plan("d");
        a.commit(&t("d"), u);
        assert_eq!(a.plan("b"), AliasUse::New(nz(1)));
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn a_plan_not_committed_changes_nothing() {
        let a = OutboundAliases::new(4);
        assert_eq!(a.plan("x"), AliasUse::New(nz(1)));
        assert_eq!(a.plan("x"), AliasUse::New(nz(1)));
        assert!(a.is_empty());
        assert_eq!(AliasUse::None.alias(), None);
        assert!(!AliasUse::New(nz(1)).omits_topic());
    }
}
