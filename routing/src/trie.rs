//! The subscription trie: topic filters mapped to values, matched by topic name.

use children::Children;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

mod children;
#[cfg(test)]
mod tests;

/// One level of the trie.
///
/// A `#` level can only be the last one of a filter, so it never has children:
/// its value lives in the parent's `hash` slot. A `+` level has its own child
/// slot; every other level, including the empty one, is a literal key.
///
/// Most nodes are leaves (the last level of one filter), so a node holds its
/// value and one pointer: the edges (`hash`, `plus`, literal children) live
/// in a [`Edges`] box that only inner nodes allocate. A leaf of the route
/// table costs 24 bytes plus its `Arc` header, a leaf of a worker's table 56.
#[derive(Clone)]
struct Node<V> {
    /// The value of the filter ending at this node.
    value: Option<V>,
    /// Everything below this node; `None` for a leaf.
    edges: Option<Box<Edges<V>>>,
}

/// The outgoing edges of an inner [`Node`].
#[derive(Clone)]
struct Edges<V> {
    /// The value of the filter `<this node>/#`.
    hash: Option<V>,
    /// The `+` child.
    plus: Option<Arc<Node<V>>>,
    /// Literal children.
    children: Children<Arc<Node<V>>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            value: None,
            edges: None,
        }
    }
}

impl<V> Default for Edges<V> {
    fn default() -> Self {
        Self {
            hash: None,
            plus: None,
            children: Children::default(),
        }
    }
}

impl<V> Edges<V> {
    /// Number of outgoing edges, counting the `#` slot.
    fn degree(&self) -> usize {
        self.children.len() + usize::from(self.plus.is_some()) + usize::from(self.hash.is_some())
    }
}

impl<V> Node<V> {
    /// The child reached by one filter level other than a final `#`.
    fn child(&self, level: &str) -> Option<&Arc<Self>> {
        let edges = self.edges.as_deref()?;
        if level == "+" {
            edges.plus.as_ref()
        } else {
            edges.children.get(level)
        }
    }

    /// The `#` slot, if this node has edges.
    fn hash(&self) -> Option<&Option<V>> {
        self.edges.as_deref().map(|e| &e.hash)
    }

    /// The edges, created empty when missing.
    fn edges_mut(&mut self) -> &mut Edges<V> {
        self.edges.get_or_insert_with(Box::default)
    }

    /// Number of outgoing edges, counting the `#` slot.
    fn degree(&self) -> usize {
        self.edges.as_deref().map_or(0, Edges::degree)
    }

    /// Frees the edges box once it holds nothing.
    fn shrink(&mut self) {
        if self.edges.as_deref().is_some_and(|e| e.degree() == 0) {
            self.edges = None;
        }
    }
}

impl<V: Clone> Node<V> {
    /// Mutable form of [`Node::child`].
    fn child_mut(&mut self, level: &str) -> Option<&mut Arc<Self>> {
        let edges = self.edges.as_deref_mut()?;
        if level == "+" {
            edges.plus.as_mut()
        } else {
            edges.children.get_mut(level)
        }
    }
}

impl<V> Drop for Node<V> {
    /// Drops the subtree without recursion: a filter may have 32k levels and
    /// a recursive drop of such a chain would overflow a worker's stack.
    fn drop(&mut self) {
        let Some(edges) = self.edges.as_deref_mut() else {
            return;
        };
        if edges.children.is_empty() && edges.plus.is_none() {
            return;
        }
        let mut stack: SmallVec<[Arc<Self>; 8]> = SmallVec::new();
        edges.children.drain_into(&mut stack);
        stack.extend(edges.plus.take());
        while let Some(child) = stack.pop() {
            // A child still shared with another snapshot is only released.
            if let Some(mut node) = Arc::into_inner(child) {
                if let Some(edges) = node.edges.as_deref_mut() {
                    edges.children.drain_into(&mut stack);
                    stack.extend(edges.plus.take());
                }
            }
        }
    }
}

/// Iterates a filter's levels, telling whether each one is the last.
fn levels(filter: &str) -> impl Iterator<Item = (&str, bool)> {
    let mut split = filter.split('/').peekable();
    std::iter::from_fn(move || {
        let level = split.next()?;
        Some((level, split.peek().is_none()))
    })
}

/// A map from topic filters to values of type `V`, matched against topic names.
///
/// Matching follows MQTT 4.7: `+` matches exactly one level, `#` matches the
/// remaining levels including none (`a/#` matches `a`), empty levels are real
/// levels (`a//b`, `/a`), and a topic name starting with `$` is never matched by
/// a filter whose first level is a wildcard ([MQTT-4.7.2-1]). Levels are compared
/// byte for byte ([MQTT-4.7.3-4]).
///
/// Nodes are persistent: they sit behind `Arc` and are changed through
/// `Arc::make_mut`. Cloning a `Trie` is O(1); the first change after a clone
/// copies the nodes along the changed filter's path (each copy costs that
/// node's number of children), and nothing else. Filters are expected to have
/// been validated as topic filters; a `#` that is not the last level would be
/// stored as a literal level that no topic name can match.
pub struct Trie<V> {
    root: Arc<Node<V>>,
    len: usize,
}

impl<V> Clone for Trie<V> {
    fn clone(&self) -> Self {
        Self {
            root: Arc::clone(&self.root),
            len: self.len,
        }
    }
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Self {
            root: Arc::default(),
            len: 0,
        }
    }
}

impl<V> fmt::Debug for Trie<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trie")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<V> Trie<V> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of filters stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no filter is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value slot of `filter`, if its path exists.
    fn slot(&self, filter: &str) -> Option<&Option<V>> {
        let mut node: &Node<V> = &self.root;
        for (level, last) in levels(filter) {
            if last && level == "#" {
                return node.hash();
            }
            node = node.child(level)?;
        }
        Some(&node.value)
    }

    /// The value stored for exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&V> {
        self.slot(filter)?.as_ref()
    }

    /// Calls `f` once for every stored filter that matches `topic`.
    ///
    /// Does not allocate unless the walk needs more than 16 pending branches
    /// (very deep topics with many `+` filters).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        // A frame is a node and the byte offset of the next topic level to
        // consume, or `None` once every level has been consumed.
        let mut stack: SmallVec<[(&'a Node<V>, Option<usize>); 16]> = SmallVec::new();
        stack.push((&self.root, Some(0)));
        let dollar = topic.starts_with('$');
        while let Some((node, pos)) = stack.pop() {
            let Some(start) = pos else {
                f_opt(&node.value, &mut f);
                // `a/#` also matches `a`: `#` stands for the parent level too.
                if let Some(edges) = node.edges.as_deref() {
                    f_opt(&edges.hash, &mut f);
                }
                continue;
            };
            let Some(edges) = node.edges.as_deref() else {
                // A leaf: the topic has more levels than its filter.
                continue;
            };
            let rest = &topic[start..];
            // A byte scan: levels are short, and `str::find` pays a searcher setup per call.
            let (level, next) = match rest.bytes().position(|b| b == b'/') {
                Some(i) => (&rest[..i], Some(start + i + 1)),
                None => (rest, None),
            };
            // [MQTT-4.7.2-1] a leading wildcard never matches a `$` topic.
            let wildcards = !(dollar && start == 0);
            if wildcards {
                f_opt(&edges.hash, &mut f);
                if let Some(plus) = &edges.plus {
                    stack.push((plus, next));
                }
            }
            if let Some(child) = edges.children.get(level) {
                stack.push((child, next));
            }
        }
    }

    /// Every `(filter, value)` pair, in no particular order. Allocates one
    /// `String` per filter: meant for takeover and debugging, not the hot path.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            stack: vec![(&*self.root, 0, None)],
            path: String::new(),
            pending: None,
        }
    }
}

/// Calls `f` with the value in `slot`, if any.
fn f_opt<'a, V>(slot: &'a Option<V>, f: &mut impl FnMut(&'a V)) {
    if let Some(v) = slot {
        f(v);
    }
}

impl<V: Clone> Trie<V> {
    /// The value slot of `filter`, copying shared nodes on its path; `None`
    /// when the path does not exist (nodes before the missing level may have
    /// been copied, which leaves the contents unchanged).
    fn slot_mut(&mut self, filter: &str) -> Option<&mut Option<V>> {
        let mut node = Arc::make_mut(&mut self.root);
        for (level, last) in levels(filter) {
            if last && level == "#" {
                return Some(&mut node.edges.as_deref_mut()?.hash);
            }
            node = Arc::make_mut(node.child_mut(level)?);
        }
        Some(&mut node.value)
    }

    /// The value stored for exactly `filter`, mutably. Copies the shared
    /// nodes on the filter's path.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        self.get(filter)?;
        self.slot_mut(filter)?.as_mut()
    }

    /// The value slot of `filter`, creating the missing nodes of its path.
    fn slot_or_create<'a>(root: &'a mut Arc<Node<V>>, filter: &str) -> &'a mut Option<V> {
        let mut node = Arc::make_mut(root);
        for (level, last) in levels(filter) {
            if last && level == "#" {
                return &mut node.edges_mut().hash;
            }
            let edges = node.edges_mut();
            let child = if level == "+" {
                edges.plus.get_or_insert_with(Arc::default)
            } else {
                edges.children.get_or_insert_with(level, Arc::default)
            };
            node = Arc::make_mut(child);
        }
        &mut node.value
    }

    /// The value stored for `filter`, inserting `f()` first when there is none.
    pub fn entry_or_insert_with(&mut self, filter: &str, f: impl FnOnce() -> V) -> &mut V {
        let slot = Self::slot_or_create(&mut self.root, filter);
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(f)
    }

    /// Stores `value` for `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: V) -> Option<V> {
        let old = Self::slot_or_create(&mut self.root, filter).replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `filter`, pruning nodes left empty. Returns its value.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        self.get(filter)?;
        let value = self.slot_mut(filter)?.take()?;
        self.len -= 1;
        self.prune(filter);
        Some(value)
    }

    /// Removes the chain of nodes left empty at the end of `filter`'s path,
    /// and frees the edges box of the node left without edges.
    fn prune(&mut self, filter: &str) {
        // Read-only pass: the deepest node on the path that must stay.
        let mut node: &Node<V> = &self.root;
        let mut depth = 0;
        let mut keep = 0;
        for (level, last) in levels(filter) {
            if last && level == "#" {
                break;
            }
            if node.value.is_some() || node.degree() > 1 {
                keep = depth;
            }
            let Some(child) = node.child(level) else {
                return;
            };
            node = child;
            depth += 1;
        }
        let cut = depth > 0 && node.value.is_none() && node.degree() == 0;
        let empty_edges = node.edges.is_some() && node.degree() == 0;
        if !(cut || empty_edges) {
            return;
        }
        // Cut the edge below `keep` (or, when nothing is cut, walk to the
        // end); the nodes on the path are already unshared, so this walk
        // copies nothing.
        let steps = if cut { keep } else { depth };
        let mut node = Arc::make_mut(&mut self.root);
        let mut path = filter.split('/');
        for _ in 0..steps {
            let Some(child) = path.next().and_then(|level| node.child_mut(level)) else {
                return;
            };
            node = Arc::make_mut(child);
        }
        if cut {
            if let (Some(edges), Some(level)) = (node.edges.as_deref_mut(), path.next()) {
                if level == "+" {
                    edges.plus = None;
                } else {
                    edges.children.remove(level);
                }
            }
        }
        node.shrink();
    }
}

/// A node to visit, the length of its parent's prefix, and its level with
/// whether a `/` precedes it (`None` for the root).
type IterFrame<'a, V> = (&'a Node<V>, usize, Option<(&'a str, bool)>);

/// Iterator over `(filter, &value)`; see [`Trie::iter`].
pub struct Iter<'a, V> {
    /// Nodes still to visit.
    stack: Vec<IterFrame<'a, V>>,
    /// The filter prefix of the node visited last. Depth-first order keeps the
    /// parent's prefix of every popped node intact, so each filter costs its
    /// own length once, however deep the trie.
    path: String,
    /// A `#` filter found while visiting a node, yielded next.
    pending: Option<(String, &'a V)>,
}

impl<V> fmt::Debug for Iter<'_, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("pending_nodes", &self.stack.len())
            .finish_non_exhaustive()
    }
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (String, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.take() {
                return Some(item);
            }
            let (node, parent_len, level) = self.stack.pop()?;
            self.path.truncate(parent_len);
            if let Some((level, separator)) = level {
                if separator {
                    self.path.push('/');
                }
                self.path.push_str(level);
            }
            let is_root = level.is_none();
            let len = self.path.len();
            if let Some(edges) = node.edges.as_deref() {
                for (level, child) in edges.children.iter() {
                    self.stack.push((child, len, Some((level, !is_root))));
                }
                if let Some(plus) = &edges.plus {
                    self.stack.push((plus, len, Some(("+", !is_root))));
                }
            }
            if let Some(Some(v)) = node.hash() {
                let filter = if is_root {
                    "#".to_owned()
                } else {
                    format!("{}/#", self.path)
                };
                self.pending = Some((filter, v));
            }
            if let (false, Some(v)) = (is_root, &node.value) {
                return Some((self.path.clone(), v));
            }
        }
    }
}
