//! A resumable position in the retained store's topic order: what a new
//! subscription's retained replay remembers between batches.
//!
//! The store keeps its messages ordered by topic name (bytewise), so a
//! replay is "every topic matching the filter, in order, after the last one
//! sent". The cursor holds only the filter, the literal prefix every match
//! starts with (the filter's levels before its first wildcard) and the last
//! topic handed out: its size does not depend on the number of matches, and
//! a message set, replaced or deleted between two batches is seen as the
//! store holds it when the cursor gets there. Any ordered index (the
//! persistent store's range scan) can serve the same cursor.

use bytestring::ByteString;
use std::ops::Bound;
use tern_codec::topic;

/// Where a retained replay stands. Made by [`RetainedCursor::new`],
/// advanced by [`RetainedStore::next_matches`](crate::RetainedStore::next_matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetainedCursor {
    filter: ByteString,
    /// Every matching topic starts with these bytes.
    prefix: ByteString,
    /// The filter has no wildcard: at most one topic matches.
    exact: bool,
    /// The last topic looked at; the next batch starts after it.
    after: Option<ByteString>,
    done: bool,
}

impl RetainedCursor {
    /// A cursor before the first topic matching `filter` (a valid topic
    /// filter; for a shared subscription pass the inner filter).
    pub fn new(filter: &str) -> Self {
        let (prefix, exact) = literal_prefix(filter);
        Self {
            filter: ByteString::from(filter),
            prefix: ByteString::from(prefix),
            exact,
            after: None,
            done: false,
        }
    }

    /// The filter being replayed.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// True once every matching topic has been looked at.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// True when `topic` matches the filter and the cursor has not reached
    /// it yet: a replay that goes on will look at it.
    pub fn is_ahead(&self, topic: &str) -> bool {
        !self.done
            && self.after.as_deref().is_none_or(|after| topic > after)
            && topic::matches(&self.filter, topic)
    }

    /// The range of topics still to look at.
    pub(crate) fn start(&self) -> Bound<&str> {
        match &self.after {
            Some(after) => Bound::Excluded(after),
            None => Bound::Included(&self.prefix),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn is_exact(&self) -> bool {
        self.exact
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        topic::matches(&self.filter, topic)
    }

    /// Records that everything up to and including `topic` was looked at.
    pub(crate) fn advance(&mut self, topic: &ByteString) {
        self.after = Some(topic.clone());
    }

    pub(crate) fn finish(&mut self) {
        self.done = true;
    }
}

/// The bytes every topic matching `filter` starts with, and whether the
/// filter is a plain topic name. `a/b/#` → `a/b` (it matches `a/b` itself);
/// `a/+/c` → `a/`; `+/x` and `#` → empty.
fn literal_prefix(filter: &str) -> (&str, bool) {
    let mut end = 0;
    for level in filter.split('/') {
        match level {
            "#" => return (filter[..end].strip_suffix('/').unwrap_or(""), false),
            "+" => return (&filter[..end], false),
            _ => end += level.len() + 1,
        }
    }
    (filter, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_stop_at_the_first_wildcard() {
        assert_eq!(literal_prefix("a/b/#"), ("a/b", false));
        assert_eq!(literal_prefix("a/#"), ("a", false));
        assert_eq!(literal_prefix("#"), ("", false));
        assert_eq!(literal_prefix("a/+/c"), ("a/", false));
        assert_eq!(literal_prefix("+"), ("", false));
        assert_eq!(literal_prefix("+/x"), ("", false));
        assert_eq!(literal_prefix("/+"), ("/", false));
        assert_eq!(literal_prefix("a/b"), ("a/b", true));
        assert_eq!(literal_prefix("/"), ("/", true));
        assert_eq!(literal_prefix(""), ("", true));
    }

    #[test]
    fn ahead_means_matching_and_not_yet_reached() {
        let mut c = RetainedCursor::new("a/#");
        assert!(c.is_ahead("a/x"));
        assert!(!c.is_ahead("b/x"));
        c.advance(&ByteString::from("a/m"));
        assert!(!c.is_ahead("a/b"));
        assert!(!c.is_ahead("a/m"));
        assert!(c.is_ahead("a/z"));
        c.finish();
        assert!(!c.is_ahead("a/z"));
    }
}
