//! A tree keyed by topic names (no wildcards), queried with a topic filter.

use crate::child_map::ChildMap;
use smallvec::SmallVec;

/// One topic level.
struct TopicNode<V> {
    value: Option<V>,
    children: ChildMap<Box<Self>>,
}

impl<V> Default for TopicNode<V> {
    fn default() -> Self {
        Self {
            value: None,
            children: ChildMap::default(),
        }
    }
}

impl<V> Drop for TopicNode<V> {
    /// Drops the subtree without recursion (a topic may have 32k levels).
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut stack: SmallVec<[Box<Self>; 8]> = SmallVec::new();
        self.children.drain_into(&mut stack);
        while let Some(mut node) = stack.pop() {
            node.children.drain_into(&mut stack);
        }
    }
}

/// Values keyed by topic name. `+` and `#` in a key are ordinary characters;
/// topic names never contain them.
pub(crate) struct TopicTree<V> {
    root: TopicNode<V>,
    len: usize,
}

impl<V> Default for TopicTree<V> {
    fn default() -> Self {
        Self {
            root: TopicNode::default(),
            len: 0,
        }
    }
}

/// A pending step of [`TopicTree::for_each_match`].
enum Frame<'a, V> {
    /// Match the filter from byte `pos` (or the end, when `None`) at `node`.
    Match(&'a TopicNode<V>, Option<usize>),
    /// Everything at and below the node matches (a `#`).
    All(&'a TopicNode<V>),
}

impl<V> TopicTree<V> {
    /// Number of stored topics.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The value stored for `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<&V> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.value.as_ref()
    }

    /// The value stored for `topic`, mutably.
    pub(crate) fn get_mut(&mut self, topic: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_mut(level)?;
        }
        node.value.as_mut()
    }

    /// Stores `value` for `topic`, returning the value it replaces.
    pub(crate) fn insert(&mut self, topic: &str, value: V) -> Option<V> {
        let mut node = &mut self.root;
        for level in topic.split('/') {
            node = node.children.get_or_insert_with(level, Box::default);
        }
        let old = node.value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `topic`, pruning nodes left empty.
    pub(crate) fn remove(&mut self, topic: &str) -> Option<V> {
        // Find the deepest node on the path that must stay once the value is gone.
        let mut node = &self.root;
        let mut keep = 0;
        for (depth, level) in topic.split('/').enumerate() {
            if node.value.is_some() || node.children.len() > 1 {
                keep = depth;
            }
            node = node.children.get(level)?;
        }
        node.value.as_ref()?;
        let prune = node.children.is_empty();
        let mut node = &mut self.root;
        let mut levels = topic.split('/');
        let value = if prune {
            for _ in 0..keep {
                node = node.children.get_mut(levels.next()?)?;
            }
            let mut chain = node.children.remove(levels.next()?)?;
            // The removed chain has one child per level down to the value.
            let mut tail = &mut chain;
            for level in levels {
                tail = tail.children.get_mut(level)?;
            }
            tail.value.take()
        } else {
            for level in levels {
                node = node.children.get_mut(level)?;
            }
            node.value.take()
        };
        if value.is_some() {
            self.len -= 1;
        }
        value
    }

    /// Calls `f` with the value of every topic matching `filter`.
    ///
    /// A topic starting with `$` is not matched by a filter starting with a
    /// wildcard ([MQTT-4.7.2-1]); `a/#` matches `a` itself.
    pub(crate) fn for_each_match<'a>(&'a self, filter: &str, mut f: impl FnMut(&'a V)) {
        let mut stack: SmallVec<[Frame<'a, V>; 16]> = SmallVec::new();
        stack.push(Frame::Match(&self.root, Some(0)));
        while let Some(frame) = stack.pop() {
            let (node, start) = match frame {
                Frame::All(node) => {
                    if let Some(v) = &node.value {
                        f(v);
                    }
                    for (_, child) in node.children.iter() {
                        stack.push(Frame::All(child));
                    }
                    continue;
                }
                Frame::Match(node, None) => {
                    if let Some(v) = &node.value {
                        f(v);
                    }
                    continue;
                }
                Frame::Match(node, Some(start)) => (node, start),
            };
            let rest = &filter[start..];
            let (level, next) = match rest.find('/') {
                Some(i) => (&rest[..i], Some(start + i + 1)),
                None => (rest, None),
            };
            let at_root = start == 0;
            match level {
                "#" if next.is_none() => {
                    // `#` also stands for the parent level; the root itself
                    // is no topic.
                    if let (false, Some(v)) = (at_root, &node.value) {
                        f(v);
                    }
                    for (name, child) in node.children.iter() {
                        if !(at_root && name.starts_with('$')) {
                            stack.push(Frame::All(child));
                        }
                    }
                }
                "+" => {
                    for (name, child) in node.children.iter() {
                        if !(at_root && name.starts_with('$')) {
                            stack.push(Frame::Match(child, next));
                        }
                    }
                }
                _ => {
                    if let Some(child) = node.children.get(level) {
                        stack.push(Frame::Match(child, next));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(tree: &TopicTree<String>, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        tree.for_each_match(filter, |v| out.push(v.clone()));
        out.sort();
        out
    }

    #[test]
    fn filters_query_topics() {
        let topics = [
            "a", "a/b", "a/b/c", "a/c", "/a", "", "/", "a//c", "$SYS/x", "$SYS", "b",
        ];
        let mut tree = TopicTree::default();
        for t in topics {
            assert_eq!(tree.insert(t, t.to_owned()), None);
        }
        assert_eq!(tree.len(), topics.len());
        let all: Vec<String> = {
            let mut v: Vec<String> = topics
                .iter()
                .filter(|t| !t.starts_with('$'))
                .map(|t| (*t).to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(matching(&tree, "#"), all);
        assert_eq!(
            matching(&tree, "a/#"),
            vec!["a", "a//c", "a/b", "a/b/c", "a/c"]
        );
        assert_eq!(matching(&tree, "a/+"), vec!["a/b", "a/c"]);
        assert_eq!(matching(&tree, "a/+/c"), vec!["a//c", "a/b/c"]);
        assert_eq!(matching(&tree, "+"), vec!["", "a", "b"]);
        assert_eq!(matching(&tree, "+/+"), vec!["/", "/a", "a/b", "a/c"]);
        assert_eq!(matching(&tree, "/+"), vec!["/", "/a"]);
        assert_eq!(matching(&tree, "+/#"), all);
        assert_eq!(matching(&tree, "$SYS/#"), vec!["$SYS", "$SYS/x"]);
        assert_eq!(matching(&tree, "$SYS/+"), vec!["$SYS/x"]);
        assert_eq!(matching(&tree, "a/b"), vec!["a/b"]);
        assert_eq!(matching(&tree, "a/b/c/d"), Vec::<String>::new());
        assert_eq!(matching(&tree, "a/b/c/#"), vec!["a/b/c"]);
    }

    #[test]
    fn remove_prunes_the_empty_tail() {
        let mut tree = TopicTree::default();
        tree.insert("a/b/c/d", 1);
        tree.insert("a/x", 2);
        tree.insert("a", 3);
        assert_eq!(tree.remove("a/b/c"), None);
        assert_eq!(tree.remove("a/b/c/d/e"), None);
        assert_eq!(tree.remove("a/b/c/d"), Some(1));
        assert!(tree
            .root
            .children
            .get("a")
            .unwrap()
            .children
            .get("b")
            .is_none());
        assert_eq!(tree.remove("a"), Some(3));
        assert_eq!(tree.get("a/x"), Some(&2));
        *tree.get_mut("a/x").unwrap() += 1;
        assert_eq!(tree.remove("a/x"), Some(3));
        assert_eq!(tree.len(), 0);
        assert!(tree.root.children.is_empty());
    }

    #[test]
    fn deep_topics_do_not_overflow_the_stack() {
        let deep = "/".repeat(65_535);
        let mut tree = TopicTree::default();
        tree.insert(&deep, 1u8);
        tree.insert("x", 2u8);
        let mut hits = Vec::new();
        tree.for_each_match("#", |v| hits.push(*v));
        hits.sort();
        assert_eq!(hits, vec![1, 2]);
        assert_eq!(tree.remove(&deep), Some(1));
        tree.insert(&deep, 1u8);
        drop(tree);
    }
}
