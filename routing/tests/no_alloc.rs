//! Checks that the per-message paths do not allocate: trie matching, the
//! route snapshot lookup and the local fan-out plan (once `out` and the
//! folding map have room).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tern_codec::{QoS, SubscriptionOptions};
use tern_routing::{LocalSubscriptions, RouteOp, RouteTable, RouteUpdate, SubEntry, Trie};

/// Counts allocations made by the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const FILTERS: &[&str] = &[
    "a/b/c", "a/+/c", "a/#", "#", "+/+/+", "a/b/+", "$SYS/#", "a//c", "+/b/#", "x/y",
];

#[test]
fn matching_and_collecting_do_not_allocate() {
    let counted = allocations_during(|| {
        std::hint::black_box(Vec::<u8>::with_capacity(10));
    });
    assert_eq!(counted, 1, "the counting allocator does not count");
    let mut trie = Trie::new();
    for (i, f) in FILTERS.iter().enumerate() {
        trie.insert(f, i);
    }
    for i in 0..100 {
        trie.insert(&format!("wide/{i}"), i);
    }
    let mut hits = 0;
    let n = allocations_during(|| {
        for topic in [
            "a/b/c",
            "a//c",
            "$SYS/x/y",
            "wide/42",
            "no/match/here/at/all",
        ] {
            trie.for_each_match(topic, |_| hits += 1);
        }
    });
    assert_eq!(n, 0, "Trie::for_each_match allocated");
    assert!(hits > 5);

    let table = RouteTable::new();
    let updates: Vec<RouteUpdate> = FILTERS
        .iter()
        .chain(&["$share/g/a/b/c", "$share/h/a/#"])
        .enumerate()
        .map(|(i, f)| RouteUpdate {
            worker: i as u16,
            filter: (*f).into(),
            op: RouteOp::Add,
        })
        .collect();
    table.apply(&updates);
    let n = allocations_during(|| {
        let snapshot = table.load();
        let m = snapshot.matches("a/b/c");
        assert_eq!(m.shared.len(), 2);
        assert!(m.workers.len() >= 5);
    });
    assert_eq!(n, 0, "RouteSnapshot::matches allocated");

    let mut local = LocalSubscriptions::new();
    let entry = |qos, id| SubEntry {
        options: SubscriptionOptions {
            qos,
            ..Default::default()
        },
        subscription_identifier: Some(id),
    };
    for k in 0..1000u32 {
        local.subscribe(k, "big/#", entry(QoS::AtLeastOnce, 1));
    }
    for k in 0..500u32 {
        local.subscribe(k, "big/+", entry(QoS::ExactlyOnce, 2));
    }
    for k in 0..3u32 {
        local.subscribe(k, "small/a", entry(QoS::AtMostOnce, 3));
        local.subscribe(k, "small/+", entry(QoS::AtLeastOnce, 4));
    }
    let mut out = Vec::with_capacity(2000);
    // Warm-up sizes the folding map once.
    local.collect("big/x", &mut out);
    assert_eq!(out.len(), 1000);
    let n = allocations_during(|| {
        for topic in ["big/x", "big/x/y", "small/a", "none"] {
            out.clear();
            local.collect(topic, &mut out);
        }
    });
    assert_eq!(n, 0, "LocalSubscriptions::collect allocated");
}
