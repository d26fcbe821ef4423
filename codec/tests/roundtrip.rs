//! Property tests: arbitrary packets round-trip through encode/decode in every
//! version, streams decode across arbitrary chunk boundaries, the fan-out
//! template equals the plain encoder, and no input makes the decoder panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::BytesMut;
use bytestring::ByteString;
use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use std::num::NonZeroU16;
use tern_codec::*;

fn arb_versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    arb_version().prop_flat_map(|v| arb_packet(v).prop_map(move |p| (v, p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_packets_round_trip((v, packet) in arb_versioned_packet()) {
        let bytes = enc(&packet, v);
        prop_assert_eq!(encoded_len(&packet, v), bytes.len());
        let mut buf = bytes.clone();
        let got = Decoder::with_version(v, u32::MAX).decode(&mut buf);
        prop_assert_eq!(got, Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn streams_decode_across_chunk_boundaries(
        (v, packets) in arb_version().prop_flat_map(|v| vec(arb_packet(v), 1..6).prop_map(move |p| (v, p))),
        chunk in 1usize..64,
    ) {
        let mut wire = BytesMut::new();
        for p in &packets {
            encode(p, v, &mut wire).unwrap();
        }
        let mut d = Decoder::with_version(v, u32::MAX);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in wire.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = d.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        prop_assert_eq!(got, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn template_equals_encode(
        (v, publish) in arb_version().prop_flat_map(|v| arb_publish(v).prop_map(move |p| (v, p))),
        qos in arb_qos(),
        pid in arb_pid(),
        dup in any::<bool>(),
        retain in any::<bool>(),
        alias in proptest::option::of(1u16..),
        omit_topic in any::<bool>(),
        ids in vec(arb_sub_id(), 0..4),
        expiry in proptest::option::of(any::<u32>()),
    ) {
        let qos0 = qos == QoS::AtMostOnce;
        let alias = alias.and_then(NonZeroU16::new);
        let d = Delivery {
            qos,
            packet_id: (!qos0).then_some(pid),
            dup: dup && !qos0,
            retain,
            topic_alias: alias,
            omit_topic: omit_topic && alias.is_some(),
            subscription_identifiers: &ids,
            message_expiry_interval: expiry,
        };
        let template = PublishTemplate::new(&publish, v);
        let mut header = BytesMut::new();
        if publish.topic.is_empty() {
            // An incoming alias must be resolved before fan-out.
            prop_assert_eq!(template.write_header(&publish, &d, &mut header), Err(EncodeError::EmptyTopic));
            return Ok(());
        }
        let total = template.write_header(&publish, &d, &mut header).unwrap();
        prop_assert_eq!(template.packet_len(&publish, &d), total);
        prop_assert_eq!(total, header.len() + publish.payload.len());

        // The same message built as a plain PUBLISH for this receiver.
        let mut want = publish.clone();
        want.dup = d.dup;
        want.qos = d.qos;
        want.retain = d.retain;
        want.packet_id = d.packet_id;
        if v.is_v5() {
            want.properties.topic_alias = d.topic_alias;
            want.properties.subscription_identifiers = ids.clone();
            if expiry.is_some() {
                want.properties.message_expiry_interval = expiry;
            }
            if d.omit_topic {
                want.topic = ByteString::new();
            }
        }
        let mut wire = header;
        wire.extend_from_slice(&publish.payload);
        prop_assert_eq!(&wire, &enc(&Packet::Publish(want), v));
    }

    #[test]
    fn random_bytes_never_panic(data in vec(any::<u8>(), 0..512)) {
        check_all_decoders(&data);
    }

    #[test]
    fn mutated_frames_never_panic_and_round_trip(
        (v, packet) in arb_versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = enc(&packet, v).to_vec();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_all_decoders(&bytes);
        // A server decoder fed a valid CONNECT first, then the mutation.
        let connect = enc(&Packet::Connect(Box::new(Connect {
            protocol: v,
            clean_start: true,
            keep_alive: 0,
            client_id: ByteString::from_static("c"),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        })), v);
        let mut stream = connect.to_vec();
        stream.extend_from_slice(&bytes);
        prop_assert!(check_round_trips(&mut Decoder::new(1 << 20), &stream) >= 1);
    }
}
