//! Unit tests of the worker counters and histograms.

use super::*;
use std::time::Duration;
use tern_codec::topic::TopicError;

#[test]
fn values_fall_in_the_first_bucket_at_or_above_them() {
    let bounds = QUEUE_DEPTH.bounds; // 0, 1, 10, 100, 1000, 10000
    let cases = [
        (0, 0),
        (1, 1),
        (2, 2),
        (10, 2),
        (11, 3),
        (100, 3),
        (9_999, 5),
        (10_000, 5),
        (10_001, 6),
        (u64::MAX, 6),
    ];
    for (value, bucket) in cases {
        assert_eq!(bucket_index(bounds, value), bucket, "value {value}");
    }
    assert_eq!(bucket_index(LATENCY.bounds, 0), 0);
    assert_eq!(bucket_index(LATENCY.bounds, 50_000), 0, "le is inclusive");
    assert_eq!(bucket_index(LATENCY.bounds, 50_001), 1);
    assert_eq!(bucket_index(LATENCY.bounds, 2_000_000_000), 14, "+Inf");
    assert!(LATENCY.bounds.windows(2).all(|w| w[0] < w[1]));
    assert!(QUEUE_DEPTH.bounds.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn latency_is_recorded_in_its_bucket_and_published() {
    let stats = WorkerStats::default();
    stats.delivered_after(Duration::from_micros(30));
    stats.delivered_after(Duration::from_micros(700));
    stats.delivered_after(Duration::from_micros(700));
    stats.delivered_after(Duration::from_secs(3));
    let shared = SharedWorkerStats::default();
    stats.publish_to(&shared);
    let (counts, sum) = shared.delivery_latency.snapshot();
    assert_eq!(counts.len(), LATENCY.bounds.len() + 1);
    assert_eq!(counts[0], 1, "30 µs ≤ 50 µs");
    assert_eq!(counts[4], 2, "700 µs ≤ 1 ms");
    assert_eq!(counts[14], 1, "3 s: +Inf");
    assert_eq!(counts.iter().sum::<u64>(), 4);
    assert_eq!(sum, 30_000 + 2 * 700_000 + 3_000_000_000);

    stats.queue_depth.record(5);
    stats.queue_depth.reset();
    stats.queue_depth.record(0);
    stats.publish_to(&shared);
    let (counts, sum) = shared.queue_depth.snapshot();
    assert_eq!((counts[0], counts.iter().sum::<u64>(), sum), (1, 1, 0));
}

#[test]
fn decode_errors_map_to_a_fixed_reason_set() {
    let cases = [
        (
            DecodeError::PacketTooLarge { size: 10, max: 5 },
            "packet_too_large",
        ),
        (DecodeError::MalformedVarInt, "bad_remaining_length"),
        (DecodeError::InvalidUtf8, "bad_utf8"),
        (DecodeError::NullCharacter, "bad_utf8"),
        (DecodeError::TopicName(TopicError::Empty), "bad_topic"),
        (DecodeError::TopicFilter(TopicError::Empty), "bad_topic"),
        (
            DecodeError::UnsupportedProtocol {
                name_ok: true,
                level: 9,
            },
            "unsupported_protocol",
        ),
        (DecodeError::PacketIdZero, "protocol"),
        (
            DecodeError::DuplicateProperty {
                id: 1,
                packet: "PUBLISH",
            },
            "protocol",
        ),
        (DecodeError::ReservedPacketType(0), "other"),
        (DecodeError::Truncated { packet: "PUBLISH" }, "other"),
        (DecodeError::PublishQoS3, "other"),
    ];
    let stats = WorkerStats::default();
    for (e, reason) in &cases {
        assert_eq!(MalformedReason::of(e).as_str(), *reason, "{e}");
        stats.malformed(e);
    }
    // Every reason has its counter, and each error counted under it.
    let shared = SharedWorkerStats::default();
    stats.publish_to(&shared);
    let values = shared.values();
    for reason in MalformedReason::ALL {
        let name = format!("malformed_{}", reason.as_str());
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let want = cases.iter().filter(|(_, r)| *r == reason.as_str()).count() as u64;
        assert_eq!(value, Some(want), "{name}");
    }
}

#[test]
fn connack_refusals_map_to_reasons() {
    let cases = [
        (ReasonCode::BAD_USER_NAME_OR_PASSWORD, "auth", true),
        (ReasonCode::NOT_AUTHORIZED, "auth", true),
        (ReasonCode::BAD_AUTHENTICATION_METHOD, "auth", false),
        (ReasonCode::USE_ANOTHER_SERVER, "redirected", false),
        (ReasonCode::SERVER_MOVED, "redirected", false),
        (ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, "protocol", false),
        (ReasonCode::UNSUPPORTED_PROTOCOL_VERSION, "protocol", false),
        (ReasonCode::PROTOCOL_ERROR, "protocol", false),
        (ReasonCode::QOS_NOT_SUPPORTED, "protocol", false),
        (ReasonCode::SERVER_UNAVAILABLE, "other", false),
        (ReasonCode::SERVER_BUSY, "other", false),
    ];
    let stats = WorkerStats::default();
    for (code, reason, auth_failure) in cases {
        assert_eq!(RejectReason::of_connack(code).as_str(), reason, "{code:?}");
        assert_eq!(
            RejectReason::is_auth_failure(code),
            auth_failure,
            "{code:?}"
        );
        stats.refused(code);
    }
    let shared = SharedWorkerStats::default();
    stats.publish_to(&shared);
    let values = shared.values();
    for reason in RejectReason::ALL {
        let name = format!("rejected_{}", reason.as_str());
        let value = values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let want = cases.iter().filter(|c| c.1 == reason.as_str()).count() as u64;
        assert_eq!(value, Some(want), "{name}");
    }
    assert_eq!(shared.auth_failures.load(Relaxed), 2);
}
