//! Decoding a PUBLISH (v3, and v5 without user properties) performs no heap
//! allocation once the read buffer is shared; writing a fan-out header on the
//! fast path performs none either when the output buffer has room.
//!
//! A counting global allocator makes this observable; the counter is
//! per-thread so parallel tests do not disturb each other.
#![allow(clippy::unwrap_used, clippy::expect_used, unsafe_code)]

mod common;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tern_codec::*;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn publish(v: ProtocolVersion) -> Packet {
    let mut p = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: ByteString::from_static("sensors/room-1/temperature"),
        packet_id: std::num::NonZeroU16::new(42),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(&[7u8; 512]),
    };
    if v.is_v5() {
        p.properties.message_expiry_interval = Some(60);
        p.properties.content_type = Some(ByteString::from_static("application/json"));
        p.properties.correlation_data = Some(Bytes::from_static(b"corr"));
        p.properties.subscription_identifiers = Vec::new();
    }
    Packet::Publish(p)
}

#[test]
fn decoding_a_publish_does_not_allocate() {
    for v in common::VERSIONS {
        let frame = common::enc(&publish(v), v);
        let mut decoder = Decoder::with_version(v, u32::MAX);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        // The first split makes the buffer shared (one allocation); the
        // steady state is what a connection sees for every later packet.
        buf.extend_from_slice(&frame);
        let warm = decoder.decode(&mut buf).unwrap().unwrap();
        drop(warm);
        for _ in 0..8 {
            buf.extend_from_slice(&frame);
        }
        for _ in 0..8 {
            let before = allocations();
            let packet = decoder.decode(&mut buf).unwrap();
            let after = allocations();
            assert!(matches!(packet, Some(Packet::Publish(_))));
            assert_eq!(after - before, 0, "{v:?}: decoding a PUBLISH allocated");
            drop(packet);
        }
    }
}

#[test]
fn the_counter_sees_allocations() {
    // User properties live in a Vec: decoding them must show up, which
    // proves the counter observes the decoder's allocations.
    let Packet::Publish(mut p) = publish(ProtocolVersion::V5) else {
        unreachable!()
    };
    p.properties.user_properties =
        vec![(ByteString::from_static("k"), ByteString::from_static("v"))];
    let frame = common::enc(&Packet::Publish(p), ProtocolVersion::V5);
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&frame);
    buf.extend_from_slice(&frame);
    let mut decoder = Decoder::with_version(ProtocolVersion::V5, u32::MAX);
    drop(decoder.decode(&mut buf).unwrap());
    let before = allocations();
    let packet = decoder.decode(&mut buf).unwrap();
    assert!(allocations() > before);
    drop(packet);
}

#[test]
fn fast_path_header_does_not_allocate() {
    for v in common::VERSIONS {
        let Packet::Publish(p) = publish(v) else {
            unreachable!()
        };
        let template = PublishTemplate::new(&p, v);
        let mut out = BytesMut::with_capacity(4096);
        let before = allocations();
        for id in 1..=16u16 {
            let d = Delivery::simple(
                QoS::AtLeastOnce,
                std::num::NonZeroU16::new(id),
                false,
                false,
            );
            template.write_header(&p, &d, &mut out).unwrap();
        }
        assert_eq!(allocations() - before, 0, "{v:?}: header writes allocated");
    }
}
