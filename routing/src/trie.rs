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
/// Most nodes are leaves (the last level of one filter): a leaf is stored in
/// its parent's map entry as [`Child::Leaf`], its value only, without a node
/// allocation of its own. A node exists for the root and for every level that
/// has children; it holds its value and one pointer, the edges (`hash`,
/// `plus`, literal children) living in an [`Edges`] box.
#[derive(Clone)]
struct Node<V> {
    /// The value of the filter ending at this node.
    value: Option<V>,
    /// Everything below this node; `None` only for an empty root (a node
    /// left without edges becomes a leaf or is removed).
    edges: Option<Box<Edges<V>>>,
}

/// A child of a node: a leaf (a filter's last level, with its value and no
/// children) stored inline in the parent's map entry, or a shared node.
///
/// A leaf that gets a child is promoted to a node holding its value; a node
/// left with a value and no edges is demoted back to a leaf.
#[derive(Clone)]
enum Child<V> {
    /// The value of the filter ending here; nothing below. `None` only
    /// while a removal is under way (the leaf is then pruned).
    Leaf(Option<V>),
    /// A level with children (and maybe a value).
    Node(Arc<Node<V>>),
}

/// The outgoing edges of an inner [`Node`].
#[derive(Clone)]
struct Edges<V> {
    /// The value of the filter `<this node>/#`.
    hash: Option<V>,
    /// The `+` child.
    plus: Option<Child<V>>,
    /// Literal children.
    children: Children<Child<V>>,
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

    /// The child reached by one filter level other than a final `#`.
    fn child(&self, level: &str) -> Option<&Child<V>> {
        if level == "+" {
            self.plus.as_ref()
        } else {
            self.children.get(level)
        }
    }
}

impl<V: Clone> Edges<V> {
    /// Mutable form of [`Edges::child`].
    fn child_mut(&mut self, level: &str) -> Option<&mut Child<V>> {
        if level == "+" {
            self.plus.as_mut()
        } else {
            self.children.get_mut(level)
        }
    }

    /// The child for `level`, inserting `f()` first when there is none.
    fn child_or_insert_with(&mut self, level: &str, f: impl FnOnce() -> Child<V>) -> &mut Child<V> {
        if level == "+" {
            self.plus.get_or_insert_with(f)
        } else {
            self.children.get_or_insert_with(level, f)
        }
    }

    /// Removes the child for `level`.
    fn remove_child(&mut self, level: &str) -> Option<Child<V>> {
        if level == "+" {
            self.plus.take()
        } else {
            self.children.remove(level)
        }
    }
}

impl<V> Node<V> {
    /// The child reached by one filter level other than a final `#`.
    fn child(&self, level: &str) -> Option<&Child<V>> {
        self.edges.as_deref()?.child(level)
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

impl<V> Child<V> {
    /// The value of the filter ending here.
    fn value(&self) -> Option<&V> {
        match self {
            Self::Leaf(v) => v.as_ref(),
            Self::Node(n) => n.value.as_ref(),
        }
    }

    /// The edges below this level; `None` for a leaf.
    fn edges(&self) -> Option<&Edges<V>> {
        match self {
            Self::Leaf(_) => None,
            Self::Node(n) => n.edges.as_deref(),
        }
    }

    /// The child reached by one more filter level other than a final `#`.
    fn child(&self, level: &str) -> Option<&Self> {
        self.edges()?.child(level)
    }

    /// Number of outgoing edges, counting the `#` slot (0 for a leaf).
    #[cfg(test)]
    fn degree(&self) -> usize {
        self.edges().map_or(0, Edges::degree)
    }
}

impl<V: Clone> Child<V> {
    /// The node of this level, copied if shared; a leaf is promoted to a
    /// node holding its value first.
    fn node_mut(&mut self) -> &mut Node<V> {
        match self {
            Self::Node(n) => Arc::make_mut(n),
            Self::Leaf(v) => {
                let value = v.take();
                *self = Self::Node(Arc::new(Node { value, edges: None }));
                // Now a node: this second call returns at the first arm.
                self.node_mut()
            }
        }
    }

    /// The value slot of the filter ending here (copying a shared node).
    fn slot_mut(&mut self) -> &mut Option<V> {
        match self {
            Self::Leaf(v) => v,
            Self::Node(n) => &mut Arc::make_mut(n).value,
        }
    }

    /// The edges of an existing node, mutably (copying it if shared);
    /// `None` for a leaf, which has none.
    fn edges_mut(&mut self) -> Option<&mut Edges<V>> {
        match self {
            Self::Leaf(_) => None,
            Self::Node(n) => Arc::make_mut(n).edges.as_deref_mut(),
        }
    }

    /// Turns a node left with a value and no edges back into a leaf.
    fn demote_if_bare(&mut self) {
        if let Self::Node(n) = self {
            if n.degree() == 0 && n.value.is_some() {
                let value = Arc::make_mut(n).value.take();
                *self = Self::Leaf(value);
            }
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
        let mut stack: SmallVec<[Child<V>; 8]> = SmallVec::new();
        edges.children.drain_into(&mut stack);
        stack.extend(edges.plus.take());
        while let Some(child) = stack.pop() {
            // A leaf only drops its value; a node still shared with another
            // snapshot is only released.
            let Child::Node(child) = child else { continue };
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
/// node's number of children, leaves included since they are stored in the
/// parent), and nothing else. Filters are expected to have been validated as
/// topic filters; a `#` that is not the last level would be stored as a
/// literal level that no topic name can match.
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

/// A level being walked: its value and its edges (`None` for a leaf).
type View<'a, V> = (Option<&'a V>, Option<&'a Edges<V>>);

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

    /// The value stored for exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&V> {
        let mut levels = levels(filter);
        let (level, mut last) = levels.next()?;
        if last && level == "#" {
            return self.root.edges.as_deref()?.hash.as_ref();
        }
        let mut child = self.root.child(level)?;
        while !last {
            let (level, l) = levels.next()?;
            last = l;
            if last && level == "#" {
                return child.edges()?.hash.as_ref();
            }
            child = child.child(level)?;
        }
        child.value()
    }

    /// Calls `f` once for every stored filter that matches `topic`.
    ///
    /// Does not allocate unless the walk needs more than 16 pending branches
    /// (very deep topics with many `+` filters).
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        // A frame is the edges of a level whose filter prefix matched, and
        // the byte offset of the next topic level to match against them.
        // Levels matching the topic's last level are reported at once.
        let mut stack: SmallVec<[(&'a Edges<V>, usize); 16]> = SmallVec::new();
        if let Some(edges) = self.root.edges.as_deref() {
            stack.push((edges, 0));
        }
        let dollar = topic.starts_with('$');
        while let Some((edges, start)) = stack.pop() {
            let rest = &topic[start..];
            // A byte scan: levels are short, and `str::find` pays a searcher setup per call.
            let (level, next) = match rest.bytes().position(|b| b == b'/') {
                Some(i) => (&rest[..i], Some(start + i + 1)),
                None => (rest, None),
            };
            // [MQTT-4.7.2-1] a leading wildcard never matches a `$` topic.
            let wildcards = !(dollar && start == 0);
            if wildcards {
                f_opt(edges.hash.as_ref(), &mut f);
                if let Some(plus) = &edges.plus {
                    visit(&mut stack, plus, next, &mut f);
                }
            }
            if let Some(child) = edges.children.get(level) {
                visit(&mut stack, child, next, &mut f);
            }
        }
    }

    /// Every `(filter, value)` pair, in no particular order. Allocates one
    /// `String` per filter: meant for takeover and debugging, not the hot path.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter {
            stack: vec![((None, self.root.edges.as_deref()), 0, None)],
            path: String::new(),
            pending: None,
        }
    }
}

/// A child whose level matched the topic's level: with `next`, the offset
/// of the topic's next level, its edges are pushed for the walk (a leaf is a
/// dead end); without, the topic ends here and its value and `#` value
/// (`a/#` also matches `a`) go to `f`.
fn visit<'a, V>(
    stack: &mut SmallVec<[(&'a Edges<V>, usize); 16]>,
    child: &'a Child<V>,
    next: Option<usize>,
    f: &mut impl FnMut(&'a V),
) {
    match (child, next) {
        (Child::Leaf(v), None) => f_opt(v.as_ref(), f),
        (Child::Leaf(_), Some(_)) => {}
        (Child::Node(n), None) => {
            f_opt(n.value.as_ref(), f);
            if let Some(edges) = n.edges.as_deref() {
                f_opt(edges.hash.as_ref(), f);
            }
        }
        (Child::Node(n), Some(next)) => {
            if let Some(edges) = n.edges.as_deref() {
                stack.push((edges, next));
            }
        }
    }
}

/// Calls `f` with the value in `slot`, if any.
fn f_opt<'a, V>(slot: Option<&'a V>, f: &mut impl FnMut(&'a V)) {
    if let Some(v) = slot {
        f(v);
    }
}

impl<V: Clone> Trie<V> {
    /// The value slot of `filter`, copying shared nodes on its path; `None`
    /// when the path does not exist (nodes before the missing level may have
    /// been copied, which leaves the contents unchanged).
    fn slot_mut(&mut self, filter: &str) -> Option<&mut Option<V>> {
        let mut levels = levels(filter);
        let (level, mut last) = levels.next()?;
        let root = Arc::make_mut(&mut self.root);
        if last && level == "#" {
            return Some(&mut root.edges.as_deref_mut()?.hash);
        }
        let mut child = root.edges.as_deref_mut()?.child_mut(level)?;
        while !last {
            let (level, l) = levels.next()?;
            last = l;
            let edges = child.edges_mut()?;
            if last && level == "#" {
                return Some(&mut edges.hash);
            }
            child = edges.child_mut(level)?;
        }
        Some(child.slot_mut())
    }

    /// The value stored for exactly `filter`, mutably. Copies the shared
    /// nodes on the filter's path.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        self.get(filter)?;
        self.slot_mut(filter)?.as_mut()
    }

    /// The value slot of `filter`, creating the missing levels of its path:
    /// a new last level as a leaf, the leaves it passes promoted to nodes.
    fn slot_or_create<'a>(root: &'a mut Arc<Node<V>>, filter: &str) -> &'a mut Option<V> {
        let (prefix, last) = match filter.rsplit_once('/') {
            Some((prefix, last)) => (Some(prefix), last),
            None => (None, filter),
        };
        let mut node = Arc::make_mut(root);
        for level in prefix.into_iter().flat_map(|p| p.split('/')) {
            node = node
                .edges_mut()
                .child_or_insert_with(level, || Child::Node(Arc::default()))
                .node_mut();
        }
        let edges = node.edges_mut();
        if last == "#" {
            return &mut edges.hash;
        }
        edges
            .child_or_insert_with(last, || Child::Leaf(None))
            .slot_mut()
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

    /// Removes `filter`, pruning the levels left empty and demoting the node
    /// left with a value only to a leaf. Returns its value.
    pub fn remove(&mut self, filter: &str) -> Option<V> {
        self.get(filter)?;
        let value = self.slot_mut(filter)?.take()?;
        self.len -= 1;
        self.prune(filter);
        Some(value)
    }

    /// After a removal from `filter`'s path: cuts the chain of levels left
    /// without value or edge at its end, then demotes the level where the
    /// path now ends to a leaf if it has a value and no edge left (or frees
    /// the root's empty edges box).
    fn prune(&mut self, filter: &str) {
        // Read-only pass: the deepest level on the path that must stay.
        let mut view: View<'_, V> = (None, self.root.edges.as_deref());
        let mut depth = 0;
        let mut keep = 0;
        for (level, last) in levels(filter) {
            if last && level == "#" {
                break;
            }
            let degree = view.1.map_or(0, Edges::degree);
            if view.0.is_some() || degree > 1 {
                keep = depth;
            }
            let Some(child) = view.1.and_then(|e| e.child(level)) else {
                return;
            };
            view = (child.value(), child.edges());
            depth += 1;
        }
        let degree = view.1.map_or(0, Edges::degree);
        let cut = depth > 0 && view.0.is_none() && degree == 0;
        // Where the path ends once the cut is made; the walk below copies
        // nothing, the nodes on the path were unshared by the removal.
        let end = if cut { keep } else { depth };
        let mut path = filter.split('/');
        let root = Arc::make_mut(&mut self.root);
        if end == 0 {
            if let (true, Some(edges), Some(level)) = (cut, root.edges.as_deref_mut(), path.next())
            {
                edges.remove_child(level);
            }
            root.shrink();
            return;
        }
        let Some(mut child) = path
            .next()
            .and_then(|level| root.edges.as_deref_mut()?.child_mut(level))
        else {
            return;
        };
        for _ in 1..end {
            let Some(next) = path
                .next()
                .and_then(|level| child.edges_mut()?.child_mut(level))
            else {
                return;
            };
            child = next;
        }
        if cut {
            if let (Some(edges), Some(level)) = (child.edges_mut(), path.next()) {
                edges.remove_child(level);
            }
        }
        child.demote_if_bare();
    }
}

/// A level to visit, the length of its parent's prefix, and its level with
/// whether a `/` precedes it (`None` for the root).
type IterFrame<'a, V> = (View<'a, V>, usize, Option<(&'a str, bool)>);

/// Iterator over `(filter, &value)`; see [`Trie::iter`].
pub struct Iter<'a, V> {
    /// Levels still to visit.
    stack: Vec<IterFrame<'a, V>>,
    /// The filter prefix of the level visited last. Depth-first order keeps
    /// the parent's prefix of every popped level intact, so each filter costs
    /// its own length once, however deep the trie.
    path: String,
    /// A `#` filter found while visiting a level, yielded next.
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
            let ((value, edges), parent_len, level) = self.stack.pop()?;
            self.path.truncate(parent_len);
            if let Some((level, separator)) = level {
                if separator {
                    self.path.push('/');
                }
                self.path.push_str(level);
            }
            let is_root = level.is_none();
            let len = self.path.len();
            if let Some(edges) = edges {
                for (level, child) in edges.children.iter() {
                    self.stack
                        .push(((child.value(), child.edges()), len, Some((level, !is_root))));
                }
                if let Some(plus) = &edges.plus {
                    self.stack
                        .push(((plus.value(), plus.edges()), len, Some(("+", !is_root))));
                }
                if let Some(v) = &edges.hash {
                    let filter = if is_root {
                        "#".to_owned()
                    } else {
                        format!("{}/#", self.path)
                    };
                    self.pending = Some((filter, v));
                }
            }
            if let (false, Some(v)) = (is_root, value) {
                return Some((self.path.clone(), v));
            }
        }
    }
}
