//! A session's subscriptions: topic filter → options and identifier.
//!
//! One client may hold 100,000 subscriptions, so an entry is kept to 32
//! bytes: the filter as an owned compact string (inline up to
//! [`INLINE_MAX`](tern_codec::INLINE_MAX) bytes, which covers most filters; a slice of the
//! SUBSCRIBE's read buffer would keep that buffer alive), and the options
//! with the identifier packed in 8 bytes, in a hash map (denser than a
//! B-tree filled in ascending order, whose nodes stay about half full).

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::OnceLock;
#[cfg(test)]
use tern_codec::INLINE_MAX;
use tern_codec::{InlineStr, SubscriptionOptions};

/// A subscription as the session stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub(crate) options: SubscriptionOptions,
    /// The Subscription Identifier, [`NO_ID`] for none.
    id: u32,
}

/// No identifier: above the largest one the four-byte variable byte integer
/// of a SUBSCRIBE can carry (268,435,455, 3.8.2.1.2).
const NO_ID: u32 = u32::MAX;

impl Subscription {
    pub(crate) fn new(options: SubscriptionOptions, id: Option<u32>) -> Self {
        Self {
            options,
            id: id.unwrap_or(NO_ID),
        }
    }

    /// The v5 Subscription Identifier.
    pub(crate) fn id(&self) -> Option<u32> {
        (self.id != NO_ID).then_some(self.id)
    }
}

/// A topic filter as a map key (inline up to [`INLINE_MAX`](tern_codec::INLINE_MAX) bytes).
type FilterKey = InlineStr;

/// A zero-sized hasher builder seeded once per process at random: filters
/// are chosen by clients, so they must not be able to craft collisions, and
/// a per-map random state would cost every session 16 bytes more.
#[derive(Clone, Copy, Default, Debug)]
struct FilterHasher;

impl BuildHasher for FilterHasher {
    type Hasher = ahash::AHasher;

    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: OnceLock<ahash::RandomState> = OnceLock::new();
        STATE.get_or_init(ahash::RandomState::new).build_hasher()
    }
}

type Map = HashMap<FilterKey, Subscription, FilterHasher>;

/// The subscriptions of one session, in no particular order. The map is
/// boxed so that a session without subscriptions costs one pointer and no
/// heap; it is freed when the last subscription goes.
#[derive(Clone, Default)]
pub(crate) struct Subscriptions {
    map: Option<Box<Map>>,
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Subscriptions {
    /// Number of subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.map.as_ref().map_or(0, |m| m.len())
    }

    /// The subscription for exactly `filter`.
    pub(crate) fn get(&self, filter: &str) -> Option<&Subscription> {
        self.map.as_ref()?.get(filter.as_bytes())
    }

    /// The subscription for exactly `filter`, mutably.
    pub(crate) fn get_mut(&mut self, filter: &str) -> Option<&mut Subscription> {
        self.map.as_mut()?.get_mut(filter.as_bytes())
    }

    /// Stores `sub` for `filter` (a copy of it), returning the one it replaces.
    pub(crate) fn insert(&mut self, filter: &str, sub: Subscription) -> Option<Subscription> {
        let map = self.map.get_or_insert_with(Box::default);
        match map.get_mut(filter.as_bytes()) {
            Some(old) => Some(std::mem::replace(old, sub)),
            None => map.insert(FilterKey::new(filter), sub),
        }
    }

    /// Removes the subscription for exactly `filter`.
    pub(crate) fn remove(&mut self, filter: &str) -> Option<Subscription> {
        let map = self.map.as_mut()?;
        let removed = map.remove(filter.as_bytes());
        if map.is_empty() {
            self.map = None;
        }
        removed
    }

    /// Every `(filter, subscription)`, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Subscription)> {
        self.map
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, s)| (k.as_str(), s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_codec::QoS;

    fn sub(qos: QoS, id: Option<u32>) -> Subscription {
        let options = SubscriptionOptions {
            qos,
            ..Default::default()
        };
        Subscription::new(options, id)
    }

    // The layout the memory figures in BENCHMARKS.md rely on.
    #[test]
    fn entries_are_32_bytes() {
        assert_eq!(size_of::<FilterKey>(), 24);
        assert_eq!(size_of::<Subscription>(), 8);
        assert_eq!(size_of::<(FilterKey, Subscription)>(), 32);
    }

    #[test]
    fn identifiers_round_trip() {
        for id in [None, Some(1), Some(268_435_455)] {
            assert_eq!(sub(QoS::AtMostOnce, id).id(), id);
        }
    }

    // Short and long filters (inline and boxed, multi-byte UTF-8 included)
    // are stored, found, replaced, listed and removed by their exact bytes.
    #[test]
    fn inline_and_boxed_filters() {
        let exact = "x".repeat(INLINE_MAX);
        let long = format!("{}/é/#", "y".repeat(INLINE_MAX));
        assert!(matches!(FilterKey::new(&exact), FilterKey::Inline { .. }));
        assert!(matches!(FilterKey::new(&long), FilterKey::Boxed(_)));
        let filters = ["", "a/b", "ünï/+/🐦", "A/B", exact.as_str(), long.as_str()];
        let mut subs = Subscriptions::default();
        for (i, f) in filters.iter().enumerate() {
            assert_eq!(
                subs.insert(f, sub(QoS::AtMostOnce, Some(i as u32 + 1))),
                None
            );
        }
        assert_eq!(subs.len(), filters.len());
        for (i, f) in filters.iter().enumerate() {
            assert_eq!(
                subs.get(f).and_then(Subscription::id),
                Some(i as u32 + 1),
                "{f:?}"
            );
        }
        assert!(subs.get("a/B").is_none());
        assert!(subs.get(&"x".repeat(INLINE_MAX - 1)).is_none());
        let old = subs.insert(&long, sub(QoS::ExactlyOnce, None));
        assert_eq!(old.and_then(|s| s.id()), Some(6));
        assert_eq!(subs.len(), filters.len());
        subs.get_mut("a/b").unwrap().options.qos = QoS::AtLeastOnce;
        let mut listed: Vec<(String, QoS, Option<u32>)> = subs
            .iter()
            .map(|(f, s)| (f.to_owned(), s.options.qos, s.id()))
            .collect();
        listed.sort();
        let mut want: Vec<(String, QoS, Option<u32>)> = filters
            .iter()
            .enumerate()
            .map(|(i, f)| ((*f).to_owned(), QoS::AtMostOnce, Some(i as u32 + 1)))
            .collect();
        want[1].1 = QoS::AtLeastOnce;
        want[5] = (long.clone(), QoS::ExactlyOnce, None);
        want.sort();
        assert_eq!(listed, want);
        assert_eq!(
            subs.remove(&long).map(|s| s.options.qos),
            Some(QoS::ExactlyOnce)
        );
        assert_eq!(subs.remove(&long), None);
        assert_eq!(subs.len(), filters.len() - 1);
        for f in &filters[..5] {
            assert!(subs.remove(f).is_some());
        }
        assert!(subs.map.is_none(), "the emptied map is freed");
        assert_eq!(subs.iter().count(), 0);
        assert!(subs.get("a/b").is_none());
    }
}
