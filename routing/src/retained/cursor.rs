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

    /// For a `topic` the filter does not match: the first topic after it
    /// that could match, skipping in one seek every topic in between (all
    /// of which share the level that failed and so fail too). Topics sort
    /// bytewise, so the topics whose level `L` is `x` under a prefix `P/`
    /// are `P/x` and the block from `P/x/` to `P/x0` (`0` follows `/`).
    /// `None`: no skip is known, look at the next topic; `Some(Skip::Done)`:
    /// nothing after `topic` can match.
    pub(crate) fn skip_after(&self, topic: &str) -> Option<Skip> {
        let mut filter = self.filter.split('/');
        let mut at = 0; // byte offset of the topic's current level
        let mut level = 0;
        let mut rest = Some(topic);
        loop {
            let f = filter.next();
            let Some(t) = rest else {
                // The topic ran out first: a longer one may match.
                return None;
            };
            let (value, next) = match t.find('/') {
                Some(i) => (&t[..i], Some(&t[i + 1..])),
                None => (t, None),
            };
            match f {
                Some("#") => return None,
                Some("+") => {
                    if level == 0 && topic.starts_with('$') {
                        return None;
                    }
                }
                Some(lit) if lit == value => {}
                Some(lit) => {
                    // `P/` is the topic up to this level.
                    let p = &topic[..at];
                    let want = format!("{p}{lit}");
                    if topic < want.as_str() {
                        return Some(Skip::To(want));
                    }
                    let block = format!("{want}/");
                    if topic < block.as_str() {
                        return Some(Skip::To(block));
                    }
                    return Some(past_prefix(p));
                }
                // The filter ended and the topic goes on: every topic under
                // `P/` (the topic up to this level) is too long as well.
                None => return Some(past_prefix(&topic[..at])),
            }
            at += value.len() + 1;
            level += 1;
            rest = next;
        }
    }

    /// Records that everything up to and including `topic` was looked at.
    pub(crate) fn advance(&mut self, topic: &ByteString) {
        self.after = Some(topic.clone());
    }

    pub(crate) fn finish(&mut self) {
        self.done = true;
    }
}

/// Where a replay goes on after a topic that did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Skip {
    /// At the first topic at or after this one.
    To(String),
    /// Nowhere: no later topic can match.
    Done,
}

/// The first topic after every topic that starts with `p` (`p` is empty or
/// ends with `/`): `a/b/` → `a/b0`; the empty prefix has no end.
fn past_prefix(p: &str) -> Skip {
    match p.strip_suffix('/') {
        Some(q) => Skip::To(format!("{q}0")),
        None => Skip::Done,
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
    fn skips_jump_over_topics_sharing_the_failed_level() {
        let c = RetainedCursor::new("a/+/c/#");
        let to = |s: &str| Some(Skip::To(s.to_owned()));
        assert_eq!(
            c.skip_after("a/5/7"),
            to("a/5/c"),
            "forward to the wanted value"
        );
        assert_eq!(
            c.skip_after("a/5/c!"),
            to("a/5/c/"),
            "its block follows `c!`"
        );
        assert_eq!(c.skip_after("a/5/d"), to("a/50"), "past every a/5/… topic");
        assert_eq!(
            c.skip_after("a/5"),
            None,
            "too short: a longer one may match"
        );
        assert_eq!(c.skip_after("b"), Some(Skip::Done), "past every a/… topic");
        assert_eq!(c.skip_after("A"), to("a"), "before them");
        let top = RetainedCursor::new("x/+");
        assert_eq!(top.skip_after("x/1/2"), to("x/10"), "too long: past x/1/…");
        assert_eq!(top.skip_after("y/1"), Some(Skip::Done));
        let dollar = RetainedCursor::new("+/a");
        assert_eq!(dollar.skip_after("$SYS/a"), None);
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
