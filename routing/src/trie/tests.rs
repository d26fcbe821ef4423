use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Obviously-correct reference matcher built on vectors of levels.
fn naive_matches(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let mut i = 0;
    loop {
        if i < f.len() && f[i] == "#" {
            return true;
        }
        if i == f.len() || i == t.len() {
            return i == f.len() && i == t.len();
        }
        if f[i] != "+" && f[i] != t[i] {
            return false;
        }
        i += 1;
    }
}

fn matched(trie: &Trie<String>, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    trie.for_each_match(topic, |v| out.push(v.clone()));
    out.sort();
    out
}

fn trie_of(filters: &[&str]) -> Trie<String> {
    let mut trie = Trie::new();
    for f in filters {
        trie.insert(f, (*f).to_owned());
    }
    trie
}

/// (filter, topic, matches)
const TABLE: &[(&str, &str, bool)] = &[
    ("a", "a", true),
    ("a", "b", false),
    ("a", "a/b", false),
    ("a/b", "a", false),
    ("a/b", "a/b", true),
    ("a/b/c", "a/b/c", true),
    ("A", "a", false),
    ("+", "a", true),
    ("+", "a/b", false),
    ("+", "", true),
    ("+", "/", false),
    ("+/+", "/", true),
    ("+/+", "a/b", true),
    ("+/+", "a", false),
    ("+/+", "a/b/c", false),
    ("/+", "/a", true),
    ("/+", "a", false),
    ("+/a", "/a", true),
    ("#", "a", true),
    ("#", "a/b/c", true),
    ("#", "/", true),
    ("#", "/a", true),
    ("a/#", "a", true),
    ("a/#", "a/", true),
    ("a/#", "a/b", true),
    ("a/#", "a/b/c", true),
    ("a/#", "b", false),
    ("a/#", "ab", false),
    ("a/+/#", "a", false),
    ("a/+/#", "a/b", true),
    ("a/+/#", "a/b/c/d", true),
    ("a/+/c", "a/b/c", true),
    ("a/+/c", "a//c", true),
    ("a/+/c", "a/b/d", false),
    ("a//b", "a//b", true),
    ("a//b", "a/b", false),
    ("a/+/b", "a//b", true),
    ("/", "/", true),
    ("/", "", false),
    ("//", "//", true),
    ("a/", "a/", true),
    ("a/", "a", false),
    ("a/+", "a/", true),
    ("+/#", "a", true),
    ("+/#", "/", true),
    // [MQTT-4.7.2-1] leading wildcards never match `$` topics.
    ("#", "$SYS", false),
    ("#", "$SYS/broker/uptime", false),
    ("+", "$SYS", false),
    ("+/broker/uptime", "$SYS/broker/uptime", false),
    ("+/#", "$SYS/a", false),
    ("$SYS/#", "$SYS/broker/uptime", true),
    ("$SYS/#", "$SYS", true),
    ("$SYS/+/uptime", "$SYS/broker/uptime", true),
    ("$SYS/broker/uptime", "$SYS/broker/uptime", true),
    ("a/#", "a/$b", true),
    ("a/+", "a/$b", true),
    ("$share/g/a", "$share/g/a", true),
    ("#", "a$", true),
    ("sport/tennis/player1/#", "sport/tennis/player1", true),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/ranking",
        true,
    ),
    (
        "sport/tennis/player1/#",
        "sport/tennis/player1/score/wimbledon",
        true,
    ),
    ("sport/+", "sport", false),
    ("sport/+", "sport/", true),
    ("+/+", "/finance", true),
    ("/+", "/finance", true),
    ("+", "/finance", false),
    ("é/+", "é/ü", true),
    ("e/+", "é/ü", false),
];

#[test]
fn table_single_filter() {
    for &(filter, topic, expected) in TABLE {
        let trie = trie_of(&[filter]);
        let got = matched(&trie, topic);
        assert_eq!(
            !got.is_empty(),
            expected,
            "filter {filter:?} topic {topic:?} got {got:?}"
        );
        assert!(got.len() <= 1, "{filter:?} visited twice for {topic:?}");
        assert_eq!(
            naive_matches(filter, topic),
            expected,
            "reference matcher disagrees on {filter:?} / {topic:?}"
        );
    }
}

#[test]
fn table_all_filters_in_one_trie() {
    let filters: BTreeSet<&str> = TABLE.iter().map(|(f, _, _)| *f).collect();
    let filters: Vec<&str> = filters.into_iter().collect();
    let trie = trie_of(&filters);
    assert_eq!(trie.len(), filters.len());
    for &(_, topic, _) in TABLE {
        let expected: Vec<String> = filters
            .iter()
            .filter(|f| naive_matches(f, topic))
            .map(|f| (*f).to_owned())
            .collect();
        assert_eq!(matched(&trie, topic), expected, "topic {topic:?}");
    }
}

#[test]
fn get_insert_and_len() {
    let mut trie: Trie<u32> = Trie::new();
    assert!(trie.is_empty());
    assert_eq!(trie.insert("a/+/#", 1), None);
    assert_eq!(trie.insert("a/+/#", 2), Some(1));
    assert_eq!(trie.len(), 1);
    assert_eq!(trie.get("a/+/#"), Some(&2));
    // Exact lookup, not matching.
    assert_eq!(trie.get("a/b/#"), None);
    assert_eq!(trie.get("a/+"), None);
    assert_eq!(trie.get("a"), None);
    *trie.entry_or_insert_with("a", || 10) += 1;
    *trie.entry_or_insert_with("a", || 100) += 1;
    assert_eq!(trie.get("a"), Some(&12));
    *trie.get_mut("a/+/#").unwrap() = 7;
    assert_eq!(trie.get("a/+/#"), Some(&7));
    assert_eq!(trie.get_mut("nope"), None);
    assert_eq!(trie.len(), 2);
    // `#` as a whole filter and a `#` that is not last (stored literally).
    trie.insert("#", 3);
    trie.insert("x/#/y", 4);
    assert_eq!(trie.get("#"), Some(&3));
    assert_eq!(trie.get("x/#/y"), Some(&4));
    let mut hits = Vec::new();
    trie.for_each_match("x/q/y", |v| hits.push(*v));
    assert_eq!(hits, vec![3]);
}

#[test]
fn remove_prunes_and_keeps_siblings() {
    let mut trie = trie_of(&["a/b/c", "a/b", "a/+/d", "a/#", "#", "/x", "a//b"]);
    assert_eq!(trie.remove("a/b/c").as_deref(), Some("a/b/c"));
    assert_eq!(trie.remove("a/b/c"), None);
    assert_eq!(trie.remove("a/b/c/d"), None);
    assert_eq!(trie.get("a/b").map(String::as_str), Some("a/b"));
    assert_eq!(matched(&trie, "a/b"), vec!["#", "a/#", "a/b"]);
    assert_eq!(trie.remove("a/#").as_deref(), Some("a/#"));
    assert_eq!(matched(&trie, "a/b"), vec!["#", "a/b"]);
    assert_eq!(trie.remove("#").as_deref(), Some("#"));
    assert_eq!(trie.len(), 4);
    for f in ["a/b", "a/+/d", "/x", "a//b"] {
        assert_eq!(trie.remove(f).as_deref(), Some(f));
    }
    assert!(trie.is_empty());
    // Every node was pruned: the root has no edge left.
    assert_eq!(trie.root.degree(), 0);
    assert!(trie.iter().next().is_none());
}

#[test]
fn remove_prunes_only_the_empty_tail() {
    let mut trie = trie_of(&["a/b/c/d", "a/x"]);
    trie.remove("a/b/c/d");
    let a = trie.root.child("a").unwrap();
    assert!(a.child("b").is_none(), "empty chain below a was not pruned");
    assert!(a.child("x").is_some());
    let mut trie = trie_of(&["a/b/c/d", "a/b"]);
    trie.remove("a/b/c/d");
    let b = trie.root.child("a").unwrap().child("b").unwrap();
    assert!(matches!(b, Child::Leaf(Some(_))), "a/b demoted to a leaf");
    let mut trie = trie_of(&["a/+/#", "a/+"]);
    trie.remove("a/+");
    assert_eq!(trie.get("a/+/#").map(String::as_str), Some("a/+/#"));
    trie.remove("a/+/#");
    assert_eq!(trie.root.degree(), 0);
}

#[test]
fn iter_yields_every_filter_once() {
    let filters = [
        "a", "a/b", "a/#", "#", "+", "+/+", "/", "", "a//", "$SYS/#", "x/+/y/#",
    ];
    let trie = trie_of(&filters);
    let mut got: Vec<(String, String)> = trie.iter().map(|(f, v)| (f, v.clone())).collect();
    got.sort();
    let mut want: Vec<(String, String)> = filters
        .iter()
        .map(|f| ((*f).to_owned(), (*f).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn clone_then_mutate_leaves_the_original_unchanged() {
    let mut original = trie_of(&["a/b", "a/+", "c/#", "d"]);
    let before: BTreeSet<(String, String)> = original.iter().map(|(f, v)| (f, v.clone())).collect();
    let mut copy = original.clone();
    assert!(Arc::ptr_eq(&original.root, &copy.root));
    copy.insert("a/b/c", "new".into());
    copy.insert("a/b", "changed".into());
    copy.remove("c/#");
    *copy.get_mut("d").unwrap() = "d2".into();
    let after: BTreeSet<(String, String)> = original.iter().map(|(f, v)| (f, v.clone())).collect();
    assert_eq!(before, after);
    assert_eq!(original.len(), 4);
    assert_eq!(matched(&original, "c/x"), vec!["c/#"]);
    assert_eq!(matched(&original, "a/b"), vec!["a/+", "a/b"]);
    assert_eq!(matched(&copy, "a/b"), vec!["a/+", "changed"]);
    assert_eq!(matched(&copy, "c/x"), Vec::<String>::new());
    assert_eq!(copy.len(), 4);
    // And the other way round: mutating the original leaves the copy alone.
    original.remove("a/+");
    assert_eq!(matched(&copy, "a/z"), vec!["a/+"]);
    // The leaf d is stored in the root, so each copy has its own.
    assert_eq!(original.root.child("d").unwrap().value().unwrap(), "d");
    assert_eq!(copy.root.child("d").unwrap().value().unwrap(), "d2");
    // Untouched subtrees are still shared between the two.
    let mut third = copy.clone();
    third.insert("zzz", "z".into());
    assert!(Arc::ptr_eq(
        node(third.root.child("a").unwrap()),
        node(copy.root.child("a").unwrap())
    ));
}

#[test]
fn very_deep_filters_do_not_overflow_the_stack() {
    // 65,535 bytes of `/` is the longest filter MQTT allows: 65,536 levels.
    let deep = "/".repeat(65_535);
    let deep_hash = format!("{}#", "/".repeat(65_534));
    let deep_plus = "+/".repeat(30_000) + "+";
    let mut trie = Trie::new();
    trie.insert(&deep, 1u8);
    trie.insert(&deep_hash, 2u8);
    trie.insert(&deep_plus, 3u8);
    let mut hits = Vec::new();
    trie.for_each_match(&deep, |v| hits.push(*v));
    hits.sort();
    assert_eq!(hits, vec![1, 2]);
    let topic = "a/".repeat(30_000) + "a";
    hits.clear();
    trie.for_each_match(&topic, |v| hits.push(*v));
    assert_eq!(hits, vec![3]);
    assert_eq!(trie.iter().count(), 3);
    let copy = trie.clone();
    assert_eq!(trie.remove(&deep), Some(1));
    drop(copy);
    drop(trie);
}

fn level() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b"), Just(""), Just("$s"), Just("c")]
}

fn topic() -> impl Strategy<Value = String> {
    prop::collection::vec(level(), 1..5).prop_map(|l| l.join("/"))
}

fn filter() -> impl Strategy<Value = String> {
    let filter_level = prop_oneof![3 => level(), 2 => Just("+")];
    (prop::collection::vec(filter_level, 1..5), any::<bool>()).prop_map(|(mut l, hash)| {
        if hash {
            l.push("#");
        }
        l.join("/")
    })
}

proptest! {
    #[test]
    fn matches_like_the_reference(
        filters in prop::collection::vec(filter(), 0..40),
        topics in prop::collection::vec(topic(), 1..20),
    ) {
        let unique: BTreeSet<String> = filters.iter().cloned().collect();
        let mut trie = Trie::new();
        for f in &filters {
            trie.insert(f, f.clone());
        }
        prop_assert_eq!(trie.len(), unique.len());
        check_shape(&trie);
        for t in &topics {
            let expected: Vec<String> =
                unique.iter().filter(|f| naive_matches(f, t)).cloned().collect();
            prop_assert_eq!(matched(&trie, t), expected, "topic {:?}", t);
        }
    }

    #[test]
    fn removal_keeps_the_rest_and_clones_are_isolated(
        filters in prop::collection::vec(filter(), 1..40),
        remove_mask in prop::collection::vec(any::<bool>(), 40),
        topics in prop::collection::vec(topic(), 1..10),
    ) {
        let unique: Vec<String> = filters.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let mut trie = Trie::new();
        for f in &unique {
            trie.insert(f, f.clone());
        }
        let snapshot = trie.clone();
        let mut kept = BTreeSet::new();
        for (f, remove) in unique.iter().zip(&remove_mask) {
            if *remove {
                prop_assert_eq!(trie.remove(f), Some(f.clone()));
            } else {
                kept.insert(f.clone());
            }
        }
        prop_assert_eq!(trie.len(), kept.len());
        check_shape(&trie);
        check_shape(&snapshot);
        let listed: BTreeSet<String> = trie.iter().map(|(f, _)| f).collect();
        prop_assert_eq!(&listed, &kept);
        let listed_snapshot: BTreeSet<String> = snapshot.iter().map(|(f, _)| f).collect();
        prop_assert_eq!(listed_snapshot, unique.iter().cloned().collect::<BTreeSet<_>>());
        for t in &topics {
            let expected: Vec<String> =
                kept.iter().filter(|f| naive_matches(f, t)).cloned().collect();
            prop_assert_eq!(matched(&trie, t), expected);
            let expected_snapshot: Vec<String> =
                unique.iter().filter(|f| naive_matches(f, t)).cloned().collect();
            prop_assert_eq!(matched(&snapshot, t), expected_snapshot);
        }
    }
}

/// The layout the memory figures in BENCHMARKS.md rely on: a leaf is its
/// value in the parent's map entry, a node its value and one pointer.
#[test]
fn leaves_stay_small() {
    assert_eq!(size_of::<Child<crate::WorkerSet>>(), 16, "route table leaf");
    assert_eq!(
        size_of::<Child<crate::local::subscribers::Subscribers<u64>>>(),
        24,
        "worker table leaf"
    );
    assert_eq!(size_of::<Node<crate::WorkerSet>>(), 24, "route table node");
    assert!(size_of::<Node<u64>>() <= 24);
}

/// The node behind an inner level.
fn node<V>(child: &Child<V>) -> &Arc<Node<V>> {
    match child {
        Child::Node(n) => n,
        Child::Leaf(_) => panic!("a leaf, not a node"),
    }
}

/// The shape invariants: below the root, a level without edges is a leaf
/// holding a value, and a node has at least one edge.
fn check_shape<V>(trie: &Trie<V>) {
    if let Some(e) = trie.root.edges.as_deref() {
        assert!(e.degree() > 0, "empty edges box kept at the root");
    }
    let mut pending: Vec<&Child<V>> = trie
        .root
        .edges
        .as_deref()
        .map(|e| {
            e.children
                .iter()
                .map(|(_, c)| c)
                .chain(e.plus.as_ref())
                .collect()
        })
        .unwrap_or_default();
    while let Some(child) = pending.pop() {
        match child {
            Child::Leaf(v) => assert!(v.is_some(), "leaf without value"),
            Child::Node(n) => {
                let edges = n.edges.as_deref().expect("a node has edges");
                assert!(edges.degree() > 0, "a node without edges is a leaf");
                pending.extend(edges.children.iter().map(|(_, c)| c));
                pending.extend(edges.plus.as_ref());
            }
        }
    }
}

// A leaf that gets a child becomes a node keeping its value; a node that
// loses its last edge becomes a leaf again, and one without value goes.
#[test]
fn leaves_are_promoted_and_nodes_demoted() {
    let mut trie = trie_of(&["a/b"]);
    assert!(matches!(trie.root.child("a"), Some(Child::Node(_))));
    assert!(matches!(
        trie.root.child("a").unwrap().child("b"),
        Some(Child::Leaf(Some(_)))
    ));
    for (filter, below) in [("a/b/c", "c"), ("a/b/+", "+"), ("a/b/#", "#")] {
        trie.insert(filter, filter.to_owned());
        let b = trie.root.child("a").unwrap().child("b").unwrap();
        assert!(matches!(b, Child::Node(_)), "a/b promoted by {filter}");
        assert_eq!(b.value().map(String::as_str), Some("a/b"));
        assert_eq!(trie.get("a/b").map(String::as_str), Some("a/b"));
        assert_eq!(matched(&trie, "a/b"), {
            let mut m = vec!["a/b".to_owned()];
            if below == "#" {
                m.push("a/b/#".to_owned());
            }
            m
        });
        check_shape(&trie);
        assert_eq!(trie.remove(filter).as_deref(), Some(filter));
        let b = trie.root.child("a").unwrap().child("b").unwrap();
        assert!(
            matches!(b, Child::Leaf(Some(_))),
            "a/b demoted after {filter}"
        );
        check_shape(&trie);
    }
    // A node without value is removed with its last child.
    trie.insert("a/b/c", "a/b/c".into());
    trie.remove("a/b");
    assert!(matches!(
        trie.root.child("a").unwrap().child("b"),
        Some(Child::Node(_))
    ));
    trie.remove("a/b/c");
    assert!(trie.root.child("a").is_none());
    assert!(trie.root.edges.is_none());
    // A `+` leaf and a root-level leaf behave the same way.
    let mut trie = trie_of(&["+", "+/x", "x"]);
    assert!(matches!(trie.root.child("+"), Some(Child::Node(_))));
    assert!(matches!(trie.root.child("x"), Some(Child::Leaf(_))));
    trie.remove("+/x");
    assert!(matches!(trie.root.child("+"), Some(Child::Leaf(Some(_)))));
    assert_eq!(matched(&trie, "y"), ["+"]);
    check_shape(&trie);
}

// A snapshot taken before a promotion or demotion keeps its own shape and
// values; the nodes off the changed path stay shared.
#[test]
fn snapshots_survive_promotion_and_demotion() {
    let mut trie = trie_of(&["s/a", "s/b", "t/x/y"]);
    let before = trie.clone();
    trie.insert("s/a/deeper", "s/a/deeper".into());
    assert!(matches!(
        before.root.child("s").unwrap().child("a"),
        Some(Child::Leaf(_))
    ));
    assert!(matches!(
        trie.root.child("s").unwrap().child("a"),
        Some(Child::Node(_))
    ));
    assert!(Arc::ptr_eq(
        node(trie.root.child("t").unwrap()),
        node(before.root.child("t").unwrap())
    ));
    assert_eq!(matched(&before, "s/a/deeper"), Vec::<String>::new());
    assert_eq!(matched(&trie, "s/a/deeper"), ["s/a/deeper"]);
    let promoted = trie.clone();
    trie.remove("s/a/deeper");
    assert!(matches!(
        trie.root.child("s").unwrap().child("a"),
        Some(Child::Leaf(_))
    ));
    assert!(matches!(
        promoted.root.child("s").unwrap().child("a"),
        Some(Child::Node(_))
    ));
    assert_eq!(matched(&promoted, "s/a/deeper"), ["s/a/deeper"]);
    *trie.get_mut("s/b").unwrap() = "changed".into();
    assert_eq!(matched(&promoted, "s/b"), ["s/b"]);
    assert_eq!(matched(&before, "s/b"), ["s/b"]);
    assert_eq!(matched(&trie, "s/b"), ["changed"]);
    for t in [&before, &promoted, &trie] {
        check_shape(t);
    }
    trie.remove("t/x/y");
    assert!(trie.root.child("t").is_none());
    assert_eq!(matched(&promoted, "t/x/y"), ["t/x/y"]);
}

// Removing filters frees the edges of nodes left without any, so a trie
// emptied by removals holds no edge boxes.
#[test]
fn removal_frees_empty_edges() {
    let mut trie = trie_of(&["a/b", "a/b/c", "a/#", "a/+/d", "+", "#"]);
    for f in ["a/b/c", "a/#", "a/+/d"] {
        assert!(trie.remove(f).is_some(), "{f}");
    }
    let a = trie.root.child("a").unwrap();
    let b = a.child("b").unwrap();
    assert!(matches!(b, Child::Leaf(_)), "a/b lost its only child");
    assert_eq!(a.degree(), 1, "only b is left under a");
    assert_eq!(matched(&trie, "a/b"), ["#", "a/b"]);
    for f in ["a/b", "+", "#"] {
        assert!(trie.remove(f).is_some(), "{f}");
    }
    assert!(trie.root.edges.is_none());
    assert!(trie.is_empty());
}

// A node wide enough to be chunked matches, lists, clones and removes like
// any other: a snapshot taken before the changes keeps its view.
#[test]
fn wide_nodes_match_and_clone_like_narrow_ones() {
    let n = 3000;
    let mut trie: Trie<String> = Trie::new();
    for i in 0..n {
        trie.insert(&format!("w/{i}"), format!("w/{i}"));
        trie.insert(&format!("w/{i}/x"), format!("w/{i}/x"));
    }
    trie.insert("w/+", "w/+".into());
    let snapshot = trie.clone();
    assert_eq!(matched(&trie, "w/2999"), ["w/+", "w/2999"]);
    assert_eq!(matched(&trie, "w/17/x"), ["w/17/x"]);
    for i in 0..n {
        assert!(trie.remove(&format!("w/{i}")).is_some());
        assert!(trie.remove(&format!("w/{i}/x")).is_some());
    }
    assert_eq!(trie.len(), 1);
    assert_eq!(matched(&trie, "w/5"), ["w/+"]);
    assert_eq!(snapshot.len(), 2 * n + 1);
    assert_eq!(snapshot.iter().count(), 2 * n + 1);
    assert_eq!(matched(&snapshot, "w/5/x"), ["w/5/x"]);
    trie.remove("w/+");
    assert_eq!(trie.root.degree(), 0);
}
