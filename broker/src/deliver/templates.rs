//! The template cache: a PUBLISH's per-layout encoding, built once per
//! message and worker and reused for every receiver (see `Cached`).

use std::rc::Rc;
use std::sync::Arc;
use tern_codec::{Publish, PublishTemplate, QoS};

/// Sets of the template cache per protocol layout (two ways each).
const TEMPLATE_SETS: usize = 128;

type TemplateEntry = Option<(std::sync::Weak<Publish>, Cached)>;

/// Payloads up to this size are sent to QoS 0 receivers of a fan-out as one
/// frame encoded once per worker (one copy of the payload per message, not
/// per receiver); larger ones keep the header + shared payload form. A cache
/// entry keeps its frame until it is replaced, so the cache holds at most
/// 2 × 256 frames of about 4 KiB (2 MiB) per worker.
const SHARED_FRAME_MAX: usize = 4096;

/// A message's template for one protocol layout, and its shared QoS 0 frame.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) template: PublishTemplate,
    /// Deliveries through this entry so far.
    uses: u32,
    /// The whole 3.1.1 QoS 0 frame (RETAIN and DUP clear), built on the
    /// second QoS 0 delivery so a message with one receiver is not copied.
    frame: Option<Rc<bytes::Bytes>>,
}

impl Cached {
    /// The frame every plain 3.1/3.1.1 QoS 0 receiver of `msg` gets, once the
    /// message has more than one such receiver here; `None` means "encode a
    /// header and share the payload" instead.
    pub(crate) fn shared_qos0_frame(&mut self, msg: &Publish) -> Option<&Rc<bytes::Bytes>> {
        if msg.payload.len() > SHARED_FRAME_MAX {
            return None;
        }
        self.uses = self.uses.saturating_add(1);
        if self.frame.is_none() && self.uses >= 2 {
            let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
            let mut buf = bytes::BytesMut::with_capacity(self.template.packet_len(msg, &d));
            if self.template.write_header(msg, &d, &mut buf).is_err() {
                return None;
            }
            buf.extend_from_slice(&msg.payload);
            self.frame = Some(Rc::new(buf.freeze()));
        }
        self.frame.as_ref()
    }
}

/// The PUBLISH layouts of the messages being fanned out, per protocol layout
/// (3.1/3.1.1 share one encoding, 5.0 has its own), so subscribers of mixed
/// versions do not evict each other's templates. Paced subscribers release
/// their queues at different positions (up to the queue's high-water mark
/// plus the inflight window apart), so the cache holds a few hundred
/// messages: a two-way set-associative table keyed by the message's
/// address. An entry holds a `Weak` to its message, which keeps the
/// allocation (the key) from being reused under it without keeping the
/// message alive; the template copies the topic of a large message, and only
/// shared QoS 0 frames of at most `SHARED_FRAME_MAX` bytes are kept (see
/// there).
#[derive(Debug)]
pub(crate) struct TemplateCache {
    /// `[layout][set]` → two ways.
    sets: [Vec<[TemplateEntry; 2]>; 2],
    /// Per layout and set, the way replaced next (the one used least recently).
    victim: [Vec<u8>; 2],
    /// Templates built so far (what the cache exists to keep low).
    builds: u64,
}

impl Default for TemplateCache {
    fn default() -> Self {
        let sets = || (0..TEMPLATE_SETS).map(|_| [None, None]).collect();
        Self {
            sets: [sets(), sets()],
            victim: [vec![0; TEMPLATE_SETS], vec![0; TEMPLATE_SETS]],
            builds: 0,
        }
    }
}

/// The splitmix64 finalizer: spreads allocation addresses (which come in
/// power-of-two strides) over the sets.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TemplateCache {
    pub(crate) fn get(&mut self, msg: &Arc<Publish>, v5: bool) -> &mut Cached {
        let layout = usize::from(v5);
        let key = Arc::as_ptr(msg);
        let set = (mix(key.addr() as u64) % TEMPLATE_SETS as u64) as usize;
        let ways = &mut self.sets[layout][set];
        let victim = &mut self.victim[layout][set];
        let hit = ways
            .iter()
            .position(|e| matches!(e, Some((w, _)) if std::ptr::eq(w.as_ptr(), key)));
        let way = match hit {
            Some(way) => way,
            None => {
                let way = usize::from(*victim & 1);
                ways[way] = None;
                self.builds += 1;
                way
            }
        };
        *victim = u8::from(way == 0);
        let version = if v5 {
            tern_codec::ProtocolVersion::V5
        } else {
            tern_codec::ProtocolVersion::V311
        };
        let (_, cached) = ways[way].get_or_insert_with(|| {
            let cached = Cached {
                template: PublishTemplate::new(msg, version),
                uses: 0,
                frame: None,
            };
            (Arc::downgrade(msg), cached)
        });
        cached
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;

    fn message(topic: &'static str) -> Arc<Publish> {
        Arc::new(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: ByteString::from_static(topic),
            packet_id: None,
            properties: Default::default(),
            payload: bytes::Bytes::from_static(b"payload"),
        })
    }

    #[test]
    fn mixed_versions_keep_their_templates() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        // Receivers in trie order alternate between protocol versions.
        for v5 in [false, true, false, true, false, true] {
            cache.get(&msg, v5);
        }
        assert_eq!(
            cache.builds, 2,
            "one template per version, not one per receiver"
        );
        assert_eq!(
            cache.get(&msg, true).template.version(),
            tern_codec::ProtocolVersion::V5
        );
        assert_eq!(
            cache.get(&msg, false).template.version(),
            tern_codec::ProtocolVersion::V311
        );
    }

    #[test]
    fn receivers_at_different_queue_positions_reuse_templates() {
        const MESSAGES: usize = 32;
        const ROUNDS: usize = 10;
        let messages: Vec<_> = (0..MESSAGES).map(|_| message("a/b")).collect();
        let mut cache = TemplateCache::default();
        // Paced subscribers release their queues at different positions:
        // each round, every receiver takes a different one of the messages.
        for _round in 0..ROUNDS {
            for m in &messages {
                cache.get(m, false);
            }
        }
        // Every message misses once. Sets are chosen by address, so a few
        // sets may get three of these messages and miss every round (a
        // triple costs 30 builds here, likely in about one run in four);
        // a cache that thrashes rebuilds on every access (a one-slot or
        // 8-entry cache: 320 builds). Half of that separates the two.
        assert!(
            (cache.builds as usize) < MESSAGES * ROUNDS / 2,
            "{} builds for {MESSAGES} messages over {ROUNDS} rounds",
            cache.builds
        );
    }

    #[test]
    fn qos0_receivers_share_one_frame_from_the_second_on() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        assert!(
            cache.get(&msg, false).shared_qos0_frame(&msg).is_none(),
            "a single receiver gets header + shared payload, no copy"
        );
        let first = Rc::clone(cache.get(&msg, false).shared_qos0_frame(&msg).unwrap());
        let again = Rc::clone(cache.get(&msg, false).shared_qos0_frame(&msg).unwrap());
        assert!(Rc::ptr_eq(&first, &again), "built once, shared after");
        let mut expected = bytes::BytesMut::new();
        let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
        cache
            .get(&msg, false)
            .template
            .write_header(&msg, &d, &mut expected)
            .unwrap();
        expected.extend_from_slice(b"payload");
        assert_eq!(&first[..], &expected[..], "header then payload");

        let big = Arc::new(Publish {
            payload: bytes::Bytes::from(vec![7u8; SHARED_FRAME_MAX + 1]),
            ..(*message("a/b")).clone()
        });
        for _ in 0..3 {
            assert!(
                cache.get(&big, false).shared_qos0_frame(&big).is_none(),
                "large payloads are never copied"
            );
        }
    }

    #[test]
    fn a_dropped_message_does_not_pin_its_payload() {
        let msg = message("a/b");
        let mut cache = TemplateCache::default();
        cache.get(&msg, false);
        assert_eq!(
            Arc::strong_count(&msg),
            1,
            "the cache holds no strong reference"
        );
    }

    #[test]
    fn a_new_message_replaces_the_template() {
        let first = message("a");
        let second = message("b");
        let mut cache = TemplateCache::default();
        cache.get(&first, false);
        let mut out = bytes::BytesMut::new();
        let d = tern_codec::Delivery::simple(QoS::AtMostOnce, None, false, false);
        cache
            .get(&second, false)
            .template
            .write_header(&second, &d, &mut out)
            .unwrap();
        assert_eq!(
            &out[2..5],
            b"\x00\x01b",
            "header written for the second message's topic"
        );
    }
}
