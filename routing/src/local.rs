//! A worker's own subscriptions and the per-message fan-out plan.

use crate::trie::Trie;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use subscribers::Subscribers;
use tern_codec::topic::split_shared;
use tern_codec::{QoS, SubscriptionOptions};

pub(crate) mod subscribers;
#[cfg(test)]
mod tests;

/// Up to this many candidate entries, overlapping subscriptions are folded
/// with a linear scan of the targets found so far; past it, with a reused
/// key → target map.
const LINEAR_FOLD_MAX: usize = 16;

/// One subscription as the worker stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SubEntry {
    /// Subscription options; `options.qos` is the QoS granted in the SUBACK.
    pub options: SubscriptionOptions,
    /// The v5 Subscription Identifier of the SUBSCRIBE that made it.
    pub subscription_identifier: Option<u32>,
}

/// What [`LocalSubscriptions::subscribe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SubscribeOutcome {
    /// The key already had this exact filter: it was replaced ([MQTT-3.8.4-3]).
    pub existed: bool,
    /// The worker had no subscriber for this filter before: send
    /// `RouteOp::Add` for it to the route writer.
    pub filter_added: bool,
}

/// What [`LocalSubscriptions::unsubscribe`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UnsubscribeOutcome {
    /// The key had this exact filter ([MQTT-3.10.4-1]); otherwise nothing changed.
    pub existed: bool,
    /// That was the worker's last subscriber for this filter: send
    /// `RouteOp::Remove` for it to the route writer.
    pub filter_removed: bool,
}

/// One delivery to plan: every subscription of `key` matching the topic,
/// folded into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target<K> {
    /// The subscriber.
    pub key: K,
    /// The highest QoS granted among the matching subscriptions
    /// ([MQTT-3.3.4-2], [MQTT-3.3.5-1] in 3.1.1). The message goes out at the
    /// lower of this and its own QoS.
    pub qos: QoS,
    /// No Local of the subscription that gave `qos`; see [`LocalSubscriptions::collect`].
    pub no_local: bool,
    /// Retain As Published of the subscription that gave `qos`.
    pub retain_as_published: bool,
    /// Every distinct Subscription Identifier of the matching subscriptions
    /// ([MQTT-3.3.4-3], [MQTT-3.3.4-4]), in no significant order.
    pub subscription_identifiers: SmallVec<[u32; 2]>,
}

impl<K> Target<K> {
    fn new(key: K, entry: &SubEntry) -> Self {
        Self {
            key,
            qos: entry.options.qos,
            no_local: entry.options.no_local,
            retain_as_published: entry.options.retain_as_published,
            subscription_identifiers: entry.subscription_identifier.into_iter().collect(),
        }
    }

    /// Folds one more matching subscription of the same key into this target.
    fn fold(&mut self, entry: &SubEntry) {
        let o = &entry.options;
        if o.qos > self.qos {
            self.qos = o.qos;
            self.no_local = o.no_local;
            self.retain_as_published = o.retain_as_published;
        } else if o.qos == self.qos {
            // A tie keeps the more permissive flags: deliver unless every such
            // subscription asked for No Local, and keep RETAIN if any asked.
            self.no_local &= o.no_local;
            self.retain_as_published |= o.retain_as_published;
        }
        if let Some(id) = entry.subscription_identifier {
            if !self.subscription_identifiers.contains(&id) {
                self.subscription_identifiers.push(id);
            }
        }
    }
}

/// The subscriptions of one worker's clients, keyed by the worker's own
/// connection/session key `K`. Worker-private: not `Sync`.
///
/// Call order: on SUBSCRIBE call [`subscribe`](Self::subscribe) per filter and
/// send `RouteOp::Add` to the route writer when `filter_added`; on UNSUBSCRIBE
/// (or when a session ends) call [`unsubscribe`](Self::unsubscribe) and send
/// `RouteOp::Remove` when `filter_removed`. For each PUBLISH routed to this
/// worker call [`collect`](Self::collect) (or
/// [`collect_from`](Self::collect_from)) for the ordinary subscribers, and
/// [`collect_shared`](Self::collect_shared) for each shared group the route
/// snapshot picked this worker for.
///
/// Shared subscriptions (`$share/{group}/{filter}`) are kept apart, keyed by
/// their full filter: they are delivered to one member per group, never by
/// `collect`.
pub struct LocalSubscriptions<K> {
    normal: Trie<Subscribers<K>>,
    shared: HashMap<Box<str>, Subscribers<K>, ahash::RandomState>,
    subscriptions: usize,
    /// Reused key → index in `out` map for folding large overlapping sets;
    /// keeps its capacity between calls so `collect` does not allocate.
    scratch: RefCell<HashMap<K, usize, ahash::RandomState>>,
}

impl<K> fmt::Debug for LocalSubscriptions<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSubscriptions")
            .field("filters", &(self.normal.len() + self.shared.len()))
            .field("subscriptions", &self.subscriptions)
            .finish()
    }
}

impl<K: Copy + Eq + Hash> Default for LocalSubscriptions<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> LocalSubscriptions<K> {
    /// No subscriptions.
    pub fn new() -> Self {
        Self {
            normal: Trie::new(),
            shared: HashMap::default(),
            subscriptions: 0,
            scratch: RefCell::new(HashMap::default()),
        }
    }

    /// Number of distinct filters (ordinary and shared) with a subscriber.
    pub fn filter_count(&self) -> usize {
        self.normal.len() + self.shared.len()
    }

    /// Number of `(key, filter)` subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions
    }

    /// The subscription of `key` to exactly `filter`.
    pub fn get(&self, key: K, filter: &str) -> Option<&SubEntry> {
        let subs = match split_shared(filter) {
            Some(_) => self.shared.get(filter),
            None => self.normal.get(filter),
        };
        subs?.get(key)
    }

    /// Adds the subscription of `key` to `filter`, replacing its previous
    /// options and identifier if it had one ([MQTT-3.8.4-3]).
    pub fn subscribe(&mut self, key: K, filter: &str, entry: SubEntry) -> SubscribeOutcome {
        let subs = match split_shared(filter) {
            Some(_) => self.shared.entry(filter.into()).or_default(),
            None => self
                .normal
                .entry_or_insert_with(filter, Subscribers::default),
        };
        let filter_added = subs.is_empty();
        let existed = subs.upsert(key, entry);
        if !existed {
            self.subscriptions += 1;
        }
        SubscribeOutcome {
            existed,
            filter_added,
        }
    }

    /// Removes the subscription of `key` to exactly `filter` ([MQTT-3.10.4-1]).
    pub fn unsubscribe(&mut self, key: K, filter: &str) -> UnsubscribeOutcome {
        let (existed, filter_removed) = match split_shared(filter) {
            Some(_) => {
                let Some(subs) = self.shared.get_mut(filter) else {
                    return UnsubscribeOutcome::default();
                };
                let existed = subs.remove(key).is_some();
                let empty = subs.is_empty();
                if empty {
                    self.shared.remove(filter);
                }
                (existed, empty)
            }
            None => {
                if self.normal.get(filter).and_then(|s| s.get(key)).is_none() {
                    return UnsubscribeOutcome::default();
                }
                let Some(subs) = self.normal.get_mut(filter) else {
                    return UnsubscribeOutcome::default();
                };
                let existed = subs.remove(key).is_some();
                let empty = subs.is_empty();
                if empty {
                    self.normal.remove(filter);
                }
                (existed, empty)
            }
        };
        if existed {
            self.subscriptions -= 1;
        }
        UnsubscribeOutcome {
            existed,
            filter_removed,
        }
    }

    /// Appends to `out` one [`Target`] per key with an ordinary subscription
    /// matching `topic`; same as [`collect_from`](Self::collect_from) with no
    /// local publisher.
    ///
    /// Overlapping subscriptions of one key are folded into one target: the
    /// highest granted QoS, every Subscription Identifier, and the No Local /
    /// Retain As Published flags of the subscription that gave that QoS (on a
    /// tie: No Local only if all tied subscriptions have it, Retain As
    /// Published if any has it). When the publisher is known, prefer
    /// `collect_from`, which drops the publisher's No Local subscriptions
    /// before folding, so that an overlapping subscription without No Local
    /// still delivers at its own QoS.
    pub fn collect(&self, topic: &str, out: &mut Vec<Target<K>>) {
        self.collect_from(topic, None, out);
    }

    /// Like [`collect`](Self::collect), but the subscriptions of `publisher`
    /// with No Local set are skipped ([MQTT-3.8.3-3]).
    ///
    /// Does not allocate when `out` has room (barring more than 8 matching
    /// filters or more than 2 identifiers on one target). Folding costs a
    /// linear scan for up to 16 candidate entries, one reused hash map
    /// lookup per entry above that, and nothing when one filter matches.
    pub fn collect_from(&self, topic: &str, publisher: Option<K>, out: &mut Vec<Target<K>>) {
        let mut hits: SmallVec<[&Subscribers<K>; 8]> = SmallVec::new();
        self.normal.for_each_match(topic, |subs| hits.push(subs));
        let skip = |key: K, entry: &SubEntry| entry.options.no_local && Some(key) == publisher;
        let entries = hits
            .iter()
            .flat_map(|subs| subs.as_slice())
            .filter(|(k, e)| !skip(*k, e));
        if hits.len() <= 1 {
            // Keys are unique within one filter: nothing to fold.
            out.extend(entries.map(|(k, e)| Target::new(*k, e)));
            return;
        }
        let start = out.len();
        let candidates: usize = hits.iter().map(|s| s.len()).sum();
        if candidates <= LINEAR_FOLD_MAX {
            for (key, entry) in entries {
                match out[start..].iter_mut().find(|t| t.key == *key) {
                    Some(target) => target.fold(entry),
                    None => out.push(Target::new(*key, entry)),
                }
            }
            return;
        }
        let mut seen = self.scratch.borrow_mut();
        seen.clear();
        for (key, entry) in entries {
            match seen.entry(*key) {
                Entry::Occupied(i) => out[*i.get()].fold(entry),
                Entry::Vacant(slot) => {
                    slot.insert(out.len());
                    out.push(Target::new(*key, entry));
                }
            }
        }
    }

    /// Appends the members of the shared subscription `group_filter` (the
    /// full `$share/{group}/{filter}`) on this worker to `out`, for the broker
    /// to pick one.
    pub fn collect_shared(&self, group_filter: &str, out: &mut Vec<(K, SubEntry)>) {
        if let Some(subs) = self.shared.get(group_filter) {
            out.extend_from_slice(subs.as_slice());
        }
    }
}
