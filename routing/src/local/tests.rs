use super::*;

fn sub(qos: QoS, id: Option<u32>) -> SubEntry {
    SubEntry {
        options: SubscriptionOptions {
            qos,
            ..Default::default()
        },
        subscription_identifier: id,
    }
}

fn sub_flags(qos: QoS, no_local: bool, rap: bool) -> SubEntry {
    SubEntry {
        options: SubscriptionOptions {
            qos,
            no_local,
            retain_as_published: rap,
            ..Default::default()
        },
        subscription_identifier: None,
    }
}

fn collect(subs: &LocalSubscriptions<u32>, topic: &str) -> Vec<Target<u32>> {
    let mut out = Vec::new();
    subs.collect(topic, &mut out);
    out.sort_by_key(|t| t.key);
    for t in &mut out {
        t.subscription_identifiers.sort();
    }
    out
}

fn ids(t: &Target<u32>) -> Vec<u32> {
    t.subscription_identifiers.to_vec()
}

#[test]
fn subscribe_and_unsubscribe_report_route_changes() {
    let mut subs = LocalSubscriptions::new();
    let out = subs.subscribe(1, "a/+", sub(QoS::AtMostOnce, None));
    assert_eq!(
        out,
        SubscribeOutcome {
            existed: false,
            filter_added: true
        }
    );
    let out = subs.subscribe(2, "a/+", sub(QoS::AtMostOnce, None));
    assert_eq!(
        out,
        SubscribeOutcome {
            existed: false,
            filter_added: false
        }
    );
    // Same key and filter: replaced, not added ([MQTT-3.8.4-3]).
    let out = subs.subscribe(1, "a/+", sub(QoS::ExactlyOnce, Some(9)));
    assert_eq!(
        out,
        SubscribeOutcome {
            existed: true,
            filter_added: false
        }
    );
    assert_eq!(subs.get(1, "a/+").unwrap().options.qos, QoS::ExactlyOnce);
    assert_eq!(subs.get(1, "a/b"), None);
    assert_eq!(subs.filter_count(), 1);
    assert_eq!(subs.subscription_count(), 2);

    assert_eq!(subs.unsubscribe(3, "a/+"), UnsubscribeOutcome::default());
    assert_eq!(subs.unsubscribe(1, "a/b"), UnsubscribeOutcome::default());
    assert_eq!(
        subs.unsubscribe(1, "a/+"),
        UnsubscribeOutcome {
            existed: true,
            filter_removed: false
        }
    );
    assert_eq!(
        subs.unsubscribe(2, "a/+"),
        UnsubscribeOutcome {
            existed: true,
            filter_removed: true
        }
    );
    assert_eq!(subs.unsubscribe(2, "a/+"), UnsubscribeOutcome::default());
    assert_eq!(subs.filter_count(), 0);
    assert_eq!(subs.subscription_count(), 0);
    assert!(collect(&subs, "a/b").is_empty());
}

#[test]
fn overlapping_subscriptions_fold_at_the_highest_qos() {
    let mut subs = LocalSubscriptions::new();
    subs.subscribe(1, "a/b", sub(QoS::AtMostOnce, Some(1)));
    subs.subscribe(1, "a/+", sub(QoS::ExactlyOnce, Some(2)));
    subs.subscribe(1, "#", sub(QoS::AtLeastOnce, None));
    subs.subscribe(1, "a/#", sub(QoS::AtLeastOnce, Some(2)));
    subs.subscribe(2, "a/b", sub(QoS::AtLeastOnce, None));
    let got = collect(&subs, "a/b");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].key, 1);
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
    assert_eq!(ids(&got[0]), vec![1, 2], "identifiers collected once each");
    assert_eq!(got[1].key, 2);
    assert_eq!(got[1].qos, QoS::AtLeastOnce);
    assert!(got[1].subscription_identifiers.is_empty());
    // Only the wildcards match elsewhere.
    let got = collect(&subs, "a/c");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
    assert_eq!(ids(&got[0]), vec![2]);
    let got = collect(&subs, "z");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert!(collect(&subs, "$SYS/x").is_empty());
}

#[test]
fn wildcard_and_exact_subscriptions_of_different_clients() {
    let mut subs = LocalSubscriptions::new();
    subs.subscribe(1, "sensors/+/temp", sub(QoS::AtLeastOnce, None));
    subs.subscribe(2, "sensors/kitchen/temp", sub(QoS::AtMostOnce, Some(5)));
    subs.subscribe(3, "sensors/#", sub(QoS::ExactlyOnce, None));
    let got = collect(&subs, "sensors/kitchen/temp");
    let summary: Vec<(u32, QoS)> = got.iter().map(|t| (t.key, t.qos)).collect();
    assert_eq!(
        summary,
        vec![
            (1, QoS::AtLeastOnce),
            (2, QoS::AtMostOnce),
            (3, QoS::ExactlyOnce)
        ]
    );
    assert_eq!(ids(&got[1]), vec![5]);
    let got = collect(&subs, "sensors/hall/temp");
    assert_eq!(got.iter().map(|t| t.key).collect::<Vec<_>>(), vec![1, 3]);
    let got = collect(&subs, "sensors");
    assert_eq!(got.iter().map(|t| t.key).collect::<Vec<_>>(), vec![3]);
}

#[test]
fn flags_come_from_the_highest_qos_subscription() {
    let mut subs = LocalSubscriptions::new();
    subs.subscribe(1, "a/b", sub_flags(QoS::AtMostOnce, false, true));
    subs.subscribe(1, "a/+", sub_flags(QoS::AtLeastOnce, true, false));
    let got = collect(&subs, "a/b");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].qos, QoS::AtLeastOnce);
    assert!(got[0].no_local);
    assert!(!got[0].retain_as_published);
    // A tie takes the permissive flags.
    subs.subscribe(1, "a/#", sub_flags(QoS::AtLeastOnce, false, true));
    let got = collect(&subs, "a/b");
    assert!(!got[0].no_local);
    assert!(got[0].retain_as_published);
}

#[test]
fn collect_from_skips_the_publishers_no_local_subscriptions() {
    let mut subs = LocalSubscriptions::new();
    subs.subscribe(1, "a/+", sub_flags(QoS::ExactlyOnce, true, false));
    subs.subscribe(1, "a/b", sub_flags(QoS::AtMostOnce, false, false));
    subs.subscribe(2, "a/+", sub_flags(QoS::AtLeastOnce, true, false));
    let mut out = Vec::new();
    subs.collect_from("a/b", Some(1), &mut out);
    out.sort_by_key(|t| t.key);
    let summary: Vec<(u32, QoS)> = out.iter().map(|t| (t.key, t.qos)).collect();
    // Key 1 still gets the message through its QoS 0 subscription
    // ([MQTT-3.8.3-3]); key 2 is not the publisher.
    assert_eq!(summary, vec![(1, QoS::AtMostOnce), (2, QoS::AtLeastOnce)]);
    out.clear();
    subs.collect_from("a/c", Some(2), &mut out);
    assert_eq!(out.iter().map(|t| t.key).collect::<Vec<_>>(), vec![1]);
    // Single-filter path too.
    out.clear();
    subs.collect_from("a/c", Some(1), &mut out);
    assert_eq!(out.iter().map(|t| t.key).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn collect_appends_after_existing_targets() {
    let mut subs = LocalSubscriptions::new();
    subs.subscribe(1, "a", sub(QoS::AtMostOnce, None));
    subs.subscribe(1, "+", sub(QoS::AtLeastOnce, None));
    let mut out = Vec::new();
    subs.collect("a", &mut out);
    subs.collect("a", &mut out);
    // Folding only looks at the targets of the current call.
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|t| t.key == 1 && t.qos == QoS::AtLeastOnce));
}

#[test]
fn a_thousand_subscribers_on_one_filter() {
    let mut subs = LocalSubscriptions::new();
    for k in 0..1000u32 {
        let outcome = subs.subscribe(k, "news/#", sub(QoS::AtLeastOnce, Some(k + 1)));
        assert_eq!(outcome.filter_added, k == 0);
    }
    assert_eq!(subs.subscription_count(), 1000);
    let mut out = Vec::with_capacity(1000);
    let ptr = out.as_ptr();
    subs.collect("news/today", &mut out);
    assert_eq!(out.len(), 1000);
    assert_eq!(out.as_ptr(), ptr, "out was not reallocated");
    let mut keys: Vec<u32> = out.iter().map(|t| t.key).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 1000);

    // The same thousand also on an overlapping filter, half at a higher QoS:
    // the folding map path.
    for k in 0..1000u32 {
        let qos = if k % 2 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtMostOnce
        };
        subs.subscribe(k, "news/+", sub(qos, Some(5000)));
    }
    subs.subscribe(5000, "news/today", sub(QoS::AtMostOnce, None));
    for _ in 0..2 {
        out.clear();
        subs.collect("news/today", &mut out);
        assert_eq!(out.len(), 1001);
        for t in &out {
            if t.key == 5000 {
                assert!(t.subscription_identifiers.is_empty());
                continue;
            }
            let want = if t.key % 2 == 0 {
                QoS::ExactlyOnce
            } else {
                QoS::AtLeastOnce
            };
            assert_eq!(t.qos, want, "key {}", t.key);
            let mut got = t.subscription_identifiers.to_vec();
            got.sort_unstable();
            assert_eq!(got, vec![t.key + 1, 5000]);
        }
    }
    for k in 0..1000u32 {
        assert!(subs.unsubscribe(k, "news/#").existed);
    }
    out.clear();
    subs.collect("news/today", &mut out);
    assert_eq!(out.len(), 1001);
    assert_eq!(subs.filter_count(), 2);
}

#[test]
fn shared_subscriptions_are_kept_apart() {
    let mut subs = LocalSubscriptions::new();
    let o = subs.subscribe(1, "$share/g/a/+", sub(QoS::AtLeastOnce, Some(3)));
    assert!(o.filter_added);
    let o = subs.subscribe(2, "$share/g/a/+", sub(QoS::AtMostOnce, None));
    assert!(!o.filter_added);
    subs.subscribe(3, "$share/h/a/+", sub(QoS::AtMostOnce, None));
    subs.subscribe(4, "a/+", sub(QoS::AtMostOnce, None));
    assert_eq!(subs.filter_count(), 3);
    assert_eq!(subs.subscription_count(), 4);
    // `collect` only sees the ordinary subscription, even for a topic that
    // spells the shared filter.
    assert_eq!(
        collect(&subs, "a/b")
            .iter()
            .map(|t| t.key)
            .collect::<Vec<_>>(),
        vec![4]
    );
    assert!(collect(&subs, "$share/g/a/b").is_empty());
    let mut members = Vec::new();
    subs.collect_shared("$share/g/a/+", &mut members);
    members.sort_by_key(|m| m.0);
    assert_eq!(members.iter().map(|m| m.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(members[0].1.subscription_identifier, Some(3));
    members.clear();
    subs.collect_shared("$share/x/a/+", &mut members);
    assert!(members.is_empty());
    assert_eq!(
        subs.get(3, "$share/h/a/+").map(|e| e.options.qos),
        Some(QoS::AtMostOnce)
    );
    let o = subs.unsubscribe(1, "$share/g/a/+");
    assert!(o.existed && !o.filter_removed);
    let o = subs.unsubscribe(2, "$share/g/a/+");
    assert!(o.existed && o.filter_removed);
    assert_eq!(
        subs.unsubscribe(2, "$share/g/a/+"),
        UnsubscribeOutcome::default()
    );
    assert_eq!(subs.filter_count(), 2);
    assert_eq!(subs.subscription_count(), 2);
}
