use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

fn add(worker: u16, filter: &str) -> RouteUpdate {
    RouteUpdate {
        worker,
        filter: filter.into(),
        op: RouteOp::Add,
    }
}

fn remove(worker: u16, filter: &str) -> RouteUpdate {
    RouteUpdate {
        worker,
        filter: filter.into(),
        op: RouteOp::Remove,
    }
}

fn workers(m: &RouteMatch) -> Vec<u16> {
    m.workers.iter().collect()
}

#[test]
fn batches_bump_the_version_once() {
    let table = RouteTable::new();
    assert_eq!(table.load().version(), 0);
    let v = table.apply(&[add(0, "a/b"), add(1, "a/+"), add(2, "#"), add(1, "x")]);
    assert_eq!(v, 1);
    assert_eq!(table.load().version(), 1);
    assert_eq!(table.load().filter_count(), 4);
    assert_eq!(table.apply(&[]), 1, "an empty batch publishes nothing");
    assert_eq!(table.apply(&[remove(1, "x")]), 2);
    assert_eq!(table.load_full().version(), 2);
    let snap = table.load();
    assert_eq!(workers(&snap.matches("a/b")), vec![0, 1, 2]);
    assert_eq!(workers(&snap.matches("a/c")), vec![1, 2]);
    assert_eq!(workers(&snap.matches("x")), vec![2]);
    assert!(snap.matches("$SYS/x").is_empty());
    assert_eq!(snap.filter_count(), 3);
}

#[test]
fn add_and_remove_are_idempotent_and_last_remove_drops_the_filter() {
    let table = RouteTable::new();
    table.apply(&[add(3, "a"), add(3, "a"), add(4, "a")]);
    assert_eq!(table.load().workers_for("a"), [3, 4].into_iter().collect());
    table.apply(&[
        remove(3, "a"),
        remove(3, "a"),
        remove(7, "a"),
        remove(3, "zzz"),
    ]);
    assert_eq!(table.load().workers_for("a"), WorkerSet::single(4));
    assert_eq!(table.load().filter_count(), 1);
    table.apply(&[remove(4, "a")]);
    assert_eq!(table.load().filter_count(), 0);
    assert!(table.load().matches("a").is_empty());
    // Add then Remove within one batch cancels out.
    table.apply(&[add(1, "b/#"), remove(1, "b/#")]);
    assert_eq!(table.load().filter_count(), 0);
    // Out-of-range workers are ignored.
    table.apply(&[add(64, "c")]);
    assert_eq!(table.load().filter_count(), 0);
}

#[test]
fn readers_holding_an_old_snapshot_see_old_data() {
    let table = RouteTable::new();
    table.apply(&[add(0, "a/#"), add(1, "b")]);
    let old = table.load_full();
    let guard = table.load();
    table.apply(&[remove(0, "a/#"), add(2, "b"), add(5, "a/x")]);
    assert_eq!(old.version(), 1);
    assert_eq!(workers(&old.matches("a/x")), vec![0]);
    assert_eq!(workers(&old.matches("b")), vec![1]);
    assert_eq!(workers(&guard.matches("a/x")), vec![0]);
    assert_eq!(old.filter_count(), 2);
    let new = table.load();
    assert_eq!(new.version(), 2);
    assert_eq!(workers(&new.matches("a/x")), vec![5]);
    assert_eq!(workers(&new.matches("b")), vec![1, 2]);
    assert_eq!(workers(&new.matches("a/y")), Vec::<u16>::new());
}

#[test]
fn shared_groups_are_reported_per_group_and_filter() {
    let table = RouteTable::new();
    table.apply(&[
        add(0, "$share/g1/a/+"),
        add(1, "$share/g1/a/+"),
        add(2, "$share/g2/a/+"),
        add(3, "$share/g1/a/#"),
        add(4, "a/b"),
    ]);
    let snap = table.load();
    assert_eq!(snap.filter_count(), 4);
    let m = snap.matches("a/b");
    assert_eq!(workers(&m), vec![4], "shared members are not in `workers`");
    let mut shared: Vec<(String, Vec<u16>)> = m
        .shared
        .iter()
        .map(|t| (t.group.to_string(), t.workers.iter().collect()))
        .collect();
    shared.sort();
    assert_eq!(
        shared,
        vec![
            ("$share/g1/a/#".to_owned(), vec![3]),
            ("$share/g1/a/+".to_owned(), vec![0, 1]),
            ("$share/g2/a/+".to_owned(), vec![2]),
        ]
    );
    // The shared trie is matched by the inner filter, not the `$share` string.
    assert!(snap.matches("$share/g1/a/b").is_empty());
    assert_eq!(snap.matches("a").shared.len(), 1);
    drop(snap);

    table.apply(&[remove(0, "$share/g1/a/+"), remove(2, "$share/g2/a/+")]);
    let snap = table.load();
    assert_eq!(snap.filter_count(), 3);
    assert_eq!(snap.workers_for("$share/g1/a/+"), WorkerSet::single(1));
    assert_eq!(snap.workers_for("$share/g2/a/+"), WorkerSet::new());
    table.apply(&[
        remove(1, "$share/g1/a/+"),
        remove(3, "$share/g1/a/#"),
        remove(3, "$share/g1/a/#"),
        remove(4, "a/b"),
    ]);
    let snap = table.load();
    assert_eq!(snap.filter_count(), 0);
    assert!(snap.matches("a/b").is_empty());
}

#[test]
fn malformed_share_filters_are_ordinary_filters() {
    let table = RouteTable::new();
    table.apply(&[add(1, "$share/g")]);
    let snap = table.load();
    assert_eq!(workers(&snap.matches("$share/g")), vec![1]);
    assert!(snap.matches("$share/g").shared.is_empty());
}

#[test]
fn a_reader_runs_while_the_writer_applies_ten_thousand_updates() {
    let table = Arc::new(RouteTable::new());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let table = Arc::clone(&table);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut last = 0;
            let mut loads = 0u64;
            while !done.load(Ordering::Acquire) {
                let snap = table.load();
                assert!(snap.version() >= last, "version went backwards");
                last = snap.version();
                // `t/+/x` (worker 63) is added first and never removed.
                if last > 0 {
                    assert!(snap.matches("t/3/x").workers.contains(63));
                }
                // At most one batch of adds is live at a time.
                assert!(snap.filter_count() <= 1 + 5, "{}", snap.filter_count());
                loads += 1;
            }
            (last, loads)
        })
    };
    table.apply(&[add(63, "t/+/x")]);
    let mut version = 1;
    let update = |i: u16| {
        let filter = format!("t/{}/#", i % 50);
        (i % 64, filter)
    };
    for batch in 0..1000u16 {
        // Even updates add a filter, odd ones remove the one added by the
        // previous batch.
        let updates: Vec<RouteUpdate> = (0..10u16)
            .filter_map(|j| {
                let i = batch * 10 + j;
                if i % 2 == 0 {
                    let (w, f) = update(i);
                    Some(add(w, &f))
                } else if i >= 11 {
                    let (w, f) = update(i - 11);
                    Some(remove(w, &f))
                } else {
                    None
                }
            })
            .collect();
        let v = table.apply(&updates);
        assert_eq!(v, version + 1);
        version = v;
    }
    done.store(true, Ordering::Release);
    let (last, loads) = reader.join().unwrap();
    assert!(loads > 0);
    assert!(last <= version);
    let snap = table.load();
    assert_eq!(snap.version(), 1001);
    assert_eq!(snap.filter_count(), 1 + 5);
    assert_eq!(snap.workers_for("t/48/#"), WorkerSet::single(9998 % 64));
    assert_eq!(snap.workers_for("t/38/#"), WorkerSet::new());
}
